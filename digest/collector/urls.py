"""A post's URL, categories, tags and language, by its generator's rules (see layout and permalink)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import urljoin

from digest.models import Site
from digest.text import same_language

from . import meta as m
from .permalink import PostPath, build_url, file_slug
from .reader import Post


def categories(site: Site, post: Post) -> tuple[str, ...]:
    """Jekyll: the folders above `_posts`, then the front matter's; Pelican: `Category` (one), else the
    folder or DEFAULT_CATEGORY; others: the front matter's."""
    kind = site.generator.kind
    own = m.terms(post.meta, "categories", "category", words=kind != "pelican")
    if kind == "jekyll":
        return tuple(dict.fromkeys(post.categories + own))
    if kind == "pelican":
        return own[:1] or post.categories
    return own


def tags(site: Site, post: Post) -> tuple[str, ...]:
    return m.terms(post.meta, "tags", "tag", words=site.generator.kind != "pelican")


def language_of(site: Site, post: Post) -> str:
    """The post's language as the generator sees it ("" = unknown: the site's default)."""
    return post.language or site.generator.default_language


def entry_language(site: Site, post: Post) -> str:
    """Entry.language: "" when the post is in the site's own language."""
    language = post.language
    if not language or same_language(language, site.language):
        return ""
    if site.generator.default_language and same_language(language, site.generator.default_language):
        return ""
    return language


def post_url(site: Site, post: Post, known: tuple[str, ...] | None = None) -> str:
    """``known``: the post's categories when the caller has them."""
    gen = site.generator
    language = language_of(site, post)
    override = _override(post)
    pattern = _pattern(site, post, language)
    title = m.title(post.meta, "", file_slug(post.source))
    slug = _text(post.meta.get("slug"))
    if gen.kind == "pelican" and not slug and gen.slug_from_file:
        slug = file_slug(post.content_path)
    pelican = gen.kind == "pelican"
    written = _text(post.meta.get("lang")).strip()
    if pelican and written and language and same_language(written, language):
        language = written  # Pelican fills {lang} with `Lang:` as written (ko-KR, not ko-kr)
    path = PostPath(
        rel_to_content=post.content_path,
        published_at=post.published_at,
        title=title,
        categories=(known if known is not None else categories(site, post))
        if pelican or ":categories" in (override or pattern)
        else (),
        slug=slug,
        override=override,
        kind=gen.kind,
        language=language,
        author=(m.authors(post.meta) or (site.author,))[0] if pelican else "",
        meta=post.meta if pelican else {},
        lower=gen.lower_paths,
        sections=hugo_sections(site.root / post.source, post.content_path) if gen.kind == "hugo" else None,
    )
    base = site.base_url
    root = dict(gen.language_roots).get(language, "")
    if root and not (gen.kind == "hugo" and override.startswith("/")):
        # Hugo: a url with a leading slash is relative to baseURL itself, every other path to the language's root
        base = urljoin(site.base_url, root)
    url = build_url(base, pattern, path)
    if (
        root
        and gen.kind == "jekyll"
        and build_url(site.base_url, pattern, path).startswith(urljoin(site.base_url, root))
    ):
        url = build_url(site.base_url, pattern, path)  # the path already starts with /<lang>/
    return url


def _override(post: Post) -> str:
    return _text(post.meta.get("permalink")) or _text(post.meta.get("url"))


def _pattern(site: Site, post: Post, language: str) -> str:
    gen = site.generator
    if gen.kind == "hugo":
        section = post.content_path.split("/", 1)[0] if "/" in post.content_path else ""
        return dict(gen.permalinks).get(section) or site.permalink
    if gen.kind == "pelican" and gen.default_language and language and language != gen.default_language:
        return gen.lang_permalink or site.permalink
    return site.permalink


def unwritable_in_url(site: Site, post: Post, known: tuple[str, ...]) -> str:
    """What a Pelican post's URL is made of that has no ASCII letter to write ("title", "category 'x'"), or
    "": Pelican transliterates it (unidecode), digest drops it (see permalink.pelican_slug), so the URL is
    not the blog's."""
    if site.generator.kind != "pelican" or _override(post):
        return ""
    pattern = _pattern(site, post, language_of(site, post))
    named = _text(post.meta.get("slug")) or site.generator.slug_from_file
    if "{slug" in pattern and not named and _untransliterated(m.title(post.meta, "", file_slug(post.source))):
        return "title"
    if "{category" in pattern and known and _untransliterated(known[0]):
        return f"category '{known[0]}'"
    return ""


def _untransliterated(text: str) -> bool:
    """Whether `text` has a letter with no ASCII form (Hangul, kana, Han; not é, whose base letter is e):
    Pelican writes it into a URL, where digest leaves it out (a mixed title, `키보드 리뷰 Keyboard 2`, too:
    keyboard-2 is not Pelican's URL)."""
    return any(ch.isalpha() and not unicodedata.normalize("NFKD", ch)[0].isascii() for ch in text)


def hugo_sections(file: Path, content_path: str) -> tuple[str, ...]:
    """The folders of a Hugo post that are sections: the top one, then each folder below it that holds an
    `_index` page, as long as they follow one another (a folder without one is only a folder)."""
    folders = content_path.split("/")[:-1]
    if folders and file.name.rsplit(".", 2)[0] == "index":
        folders = folders[:-1]  # a page bundle: its own folder is the page
    content_root = file.parents[len(content_path.split("/")) - 1]
    found = folders[:1]
    for depth in range(2, len(folders) + 1):
        if not _has_index(content_root.joinpath(*folders[:depth])):
            break
        found.append(folders[depth - 1])
    return tuple(found)


def _has_index(folder: Path) -> bool:
    # Looked at each time (a post's URL is worked out when the post is read, then kept with it), so the
    # weekly service sees an `_index` page added a year later.
    try:
        return any(name.startswith("_index.") for name in os.listdir(folder))
    except OSError:
        return False


def _text(value: object) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
