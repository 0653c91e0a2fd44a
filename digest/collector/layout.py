"""Where each Markdown file sits in its generator's scheme, before it is read: the path its URL is built
from, the language its folder or name gives it, the categories its folders give it, or why it is no post.

- Jekyll: every `_posts` folder is a source; the folders above it are the post's first categories (as
  Jekyll's `categories_from_path`), and one of them names the post's language when the site lists
  languages or its `_posts` folders sit under language-code folders (`ja/news/_posts/`).
- Hugo: the path under its content folder (each language may have its own `contentDir`), a language
  suffix (`index.ko.md`, `post.en.md`) naming the language and dropped from the path; the other Markdown
  files of a leaf bundle (a folder with an `index.md`) are its resources, not pages.
- Pelican: the path under PATH; files under PAGE_PATHS are pages; the folder is the category of a post
  that names none (USE_FOLDER_AS_CATEGORY).
- A plain folder: the path under the source folder's parent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from digest.models import Problem, Site
from digest.text import is_language_code, language_tag

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn")
_INDEX = re.compile(r"^index(?:\.[\w-]+)?\.\w+$")


@dataclass(frozen=True)
class Place:
    content_path: str  # what :path and file-name slugs are made from, POSIX, with extension
    language: str = ""  # the language its place gives it ("" when the place says none)
    categories: tuple[str, ...] = ()  # categories its folders give it
    not_a_post: str = ""  # why it is no post whatever it says ("" = it may be one)


@dataclass(frozen=True)
class Found:
    path: str  # absolute
    source: str  # relative to the site root, POSIX
    in_folder: str  # relative to its source folder
    place: Place


@dataclass
class Walk:
    files: list[Found] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # folders that could not be read


def walk(site: Site) -> Walk:
    """Every Markdown file of the site's source folders, sorted, hidden files and folders left out."""
    result = Walk()
    root = str(site.root.resolve()) + os.sep
    place = _PLACES.get(site.generator.kind, _plain)
    seen: set[str] = set()
    hugo = site.generator.kind == "hugo"
    for folder in site.source_dirs:
        top = str(folder)
        folder_name = folder.name

        def failed(exc: OSError) -> None:
            where = relative(str(exc.filename), root) + "/"
            result.problems.append(Problem(where, f"cannot read the folder ({exc.strerror}): its posts are left out"))

        # Hugo leaf bundles: folder -> the bundle folder it lies in (os.walk sees a parent before its children)
        bundle_of: dict[str, str | None] = {}
        for dirpath, dirnames, filenames in os.walk(top, onerror=failed):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            sub = dirpath[len(top) + 1 :].replace(os.sep, "/")
            names = sorted(n for n in filenames if n[0] != "." and n.lower().endswith(MARKDOWN_SUFFIXES))
            owner = None
            if hugo:
                owner = bundle_of.get(sub.rpartition("/")[0]) if sub else None
                if owner is None and any(_INDEX.match(n) for n in names):
                    owner = sub
                bundle_of[sub] = owner
            base = dirpath + os.sep
            for name in names:
                path = base + name
                if path in seen:  # nested source folders: a file is read once
                    continue
                seen.add(path)
                in_folder = f"{sub}/{name}" if sub else name
                source = path[len(root) :].replace(os.sep, "/") if path.startswith(root) else relative(path, root)
                spot = place(site, folder_name, source, in_folder)
                if owner is not None and (sub != owner or not _INDEX.match(name)):
                    spot = Place(spot.content_path, spot.language, spot.categories, "a resource of a page bundle")
                result.files.append(Found(path, source, in_folder, spot))
    return result


def relative(path: str, root: str) -> str:
    if path.startswith(root):
        return path[len(root) :].replace(os.sep, "/")
    return os.path.relpath(path, root).replace(os.sep, "/")


def _plain(site: Site, folder: str, source: str, in_folder: str) -> Place:
    return Place(f"{folder}/{in_folder}" if folder else in_folder)


def _jekyll(site: Site, folder: str, source: str, in_folder: str) -> Place:
    rel = source
    prefix = site.generator.collections_dir
    if prefix and rel.startswith(prefix + "/"):
        rel = rel[len(prefix) + 1 :]
    parts = rel.split("/")
    above = tuple(parts[: parts.index("_posts")]) if "_posts" in parts[:-1] else ()
    languages = site.generator.languages
    language = next((language_tag(p) for p in above if language_tag(p) in languages), "")
    return Place(f"{folder}/{in_folder}", language, above)


def _hugo(site: Site, folder: str, source: str, in_folder: str) -> Place:
    rel, language = source, ""
    for content, lang in site.generator.content_dirs:  # longest first
        if source.startswith(content + "/"):
            rel, language = source[len(content) + 1 :], lang
            break
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    base, _, suffix = stem.rpartition(".")
    if base and _is_site_language(site, suffix):
        language = language_tag(suffix)
        rel = f"{head}/{base}{dot}{ext}" if head else f"{base}{dot}{ext}"
    elif base and is_language_code(suffix) and language_tag(suffix) in site.generator.disabled_languages:
        return Place(rel, language_tag(suffix), (), f"in '{suffix}', which the site's disableLanguages turns off")
    elif base == "index" and is_language_code(suffix):
        # Hugo publishes `index.ja.md` of a language it does not know as the bundle's own page, in the
        # default language: the same page as `index.md`, which it stands in for when there is none
        if (site.root / source).with_name(f"index{dot}{ext}").is_file():
            why = f"a translation into '{suffix}', which the site's config does not list: add it to [languages]"
            return Place(rel, "", (), why)
        rel = f"{head}/index{dot}{ext}" if head else f"index{dot}{ext}"
    return Place(rel, language)


def _is_site_language(site: Site, suffix: str) -> bool:
    languages = site.generator.languages
    return language_tag(suffix) in languages if languages else is_language_code(suffix)


def _pelican(site: Site, folder: str, source: str, in_folder: str) -> Place:
    gen = site.generator
    content = gen.content_dirs[0][0] if gen.content_dirs else "."
    rel = source if content in (".", "") or not source.startswith(content + "/") else source[len(content) + 1 :]
    for pages in gen.not_posts:
        if pages in (".", "") or source.startswith(pages.rstrip("/") + "/"):
            return Place(rel, not_a_post="a page (Pelican PAGE_PATHS), not an article")
    parent = rel.rpartition("/")[0].rpartition("/")[2]
    category = parent if gen.category_from_folder and parent else gen.default_category
    return Place(rel, "", (category,) if category else ())


_PLACES: dict[str, Callable[[Site, str, str, str], Place]] = {
    "plain": _plain,
    "jekyll": _jekyll,
    "hugo": _hugo,
    "pelican": _pelican,
}
