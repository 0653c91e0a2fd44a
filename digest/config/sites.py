"""What a site's own config says about it: Jekyll's `_config.yml`, Hugo's `hugo.*` / `config.*`, Pelican's
`pelicanconf.py` (read as text with `ast`, never executed) and `publishconf.py`.

Each reader also says where the generator finds posts and what it calls them (models.Generator): Jekyll
reads every `_posts` folder of the site, Hugo the main sections of every language's content folder,
Pelican its ARTICLE_PATHS but not its PAGE_PATHS. digest.toml overrides any of it (see digest.config)."""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from digest.errors import ConfigError
from digest.models import Generator
from digest.text import (
    LANGUAGE_HINT,
    PERMALINK_TOKENS,
    is_language_code,
    is_valid_language,
    language_tag,
    unknown_permalink_token,
)

# Site configs: what a Jekyll or Hugo site says about itself.

JEKYLL_PERMALINKS = {
    "date": "/:categories/:year/:month/:day/:title.html",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title.html",
    "weekdate": "/:categories/:year/W:week/:short_day/:title.html",
    "none": "/:categories/:title.html",
}
HUGO_CONFIG_NAMES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json", "config.toml", "config.yaml", "config.yml")
# Jekyll 4 always leaves these out, whatever `exclude` says; never worth walking.
JEKYLL_ALWAYS_EXCLUDED = frozenset({"node_modules", "vendor", "gemfiles", "_site"})
PELICAN_CONFIG_NAMES = ("pelicanconf.py", "publishconf.py")  # the second (the published site) wins


@dataclass(frozen=True)
class SiteDefaults:
    """What a site's own config contributes; digest.toml overrides any of it."""

    kind: str  # "jekyll" | "hugo" | "plain"
    file: Path | None = None
    title: str = ""
    url: str = ""
    timezone: str = ""
    permalink: str = ""
    source: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    description: str = ""
    language: str = ""
    author: str = ""
    generator: Generator = field(default_factory=Generator)
    notices: tuple[str, ...] = ()  # what could not be looked at, one line each


def _load_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the site config: {exc}", source=str(path)) from exc
    except (tomllib.TOMLDecodeError, yaml.YAMLError, ValueError) as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"the site config cannot be parsed: {first}", "fix the syntax", source=str(path), line=line
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the site config is not a mapping of keys", source=str(path))
    return {str(k).lower(): v for k, v in data.items()}


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else ""


def _checked(value: Any, path: Path, key: str, *, url: bool = False) -> str:
    """A text setting of the site config that digest cannot do without (its URL, its timezone), checked: a
    number, list or mapping there is an error naming the file and line (it was read as unset, and mail went
    out with localhost links, weeks counted in UTC), and so is a URL with no scheme."""
    if value is None:
        return ""
    if not isinstance(value, str):
        example = "'https://example.org'" if url else "'Asia/Seoul'"
        raise ConfigError(
            f"{key} = {value!r} is not text", f"write it in quotes, such as {example}", source=str(path),
            line=key_line(path, key),
        )  # fmt: skip
    text = value.strip()
    if url and text and not text.startswith("/") and "://" not in text:
        raise ConfigError(
            f"{key} = {text!r} has no scheme", f"write the whole address, such as 'https://{text}'", source=str(path),
            line=key_line(path, key),
        )  # fmt: skip
    return text


def key_line(path: Path | None, key: str, header: str = "") -> int | None:
    """The line of `key` in a site config (YAML, TOML, JSON or Python: `key:`, `key =`, `"key":`), or of
    the TOML table `[header]` when given and found; None when the file does not show it on a line of its
    own (a key written inline, in a flow mapping)."""
    if path is None:
        return None
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    patterns = [rf"^[ \t]*\[[ \t]*{re.escape(header)}[ \t]*\]"] if header else []
    patterns.append(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*(:|=)")
    for pattern in patterns:
        m = re.search(pattern, text, re.M | re.I)
        if m:
            return text.count("\n", 0, m.start()) + 1
    return None


def _language(value: Any, path: Path, key: str, header: str = "") -> str:
    """A language tag the site config gives, checked: a ConfigError naming the file and line when the
    value is no BCP 47 tag (a site's own mistake lands in every feed and email otherwise)."""
    tag = value.strip() if isinstance(value, str) else ""
    if tag and not is_valid_language(tag):
        shown = header or key
        raise ConfigError(
            f"{shown} = {tag!r} is not a language tag",
            LANGUAGE_HINT,
            source=str(path),
            line=key_line(path, key, header),
        )
    return tag


def _permalink(pattern: str, path: Path, key: str, label: str = "") -> str:
    token = unknown_permalink_token(pattern)
    if token:
        raise ConfigError(
            f"{label or key} {pattern!r} has the unknown token :{token}",
            "digest knows :" + ", :".join(PERMALINK_TOKENS),
            source=str(path),
            line=key_line(path, key),
        )
    return pattern


def _glob_to_regex(pattern: str) -> str:
    """Jekyll `exclude` entries are paths or globs relative to the site root."""
    body = re.escape(pattern.strip("/")).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return rf"(^|/){body}($|/)"


def read_site_config(root: Path) -> SiteDefaults:
    jekyll = root / "_config.yml"
    if not jekyll.is_file() and (root / "_config.yaml").is_file():
        jekyll = root / "_config.yaml"
    if jekyll.is_file():
        return _jekyll(root, jekyll, _load_mapping(jekyll))
    for name in HUGO_CONFIG_NAMES:
        hugo = root / name
        if hugo.is_file():
            return _hugo(root, hugo, _load_mapping(hugo))
    found = _hugo_config_dir(root)
    if found is not None:
        return _hugo(root, *found)
    pelican = [root / name for name in PELICAN_CONFIG_NAMES if (root / name).is_file()]
    if pelican:
        return _pelican(root, pelican)
    return SiteDefaults(kind="plain")


# -- Jekyll ------------------------------------------------------------------------------------------------


def _jekyll(root: Path, path: Path, data: dict[str, Any]) -> SiteDefaults:
    site_url = _checked(data.get("url"), path, "url", url=True)
    url = site_url.rstrip("/") + "/" + _checked(data.get("baseurl"), path, "baseurl").strip("/")
    permalink = _text(data.get("permalink")) or "date"
    lang = _language(data.get("lang"), path, "lang")
    _language(data.get("default_lang"), path, "default_lang")
    for value in data.get("languages") or () if isinstance(data.get("languages"), list) else ():
        _language(value, path, "languages")
    author = data.get("author")
    if isinstance(author, dict):
        author = author.get("name")
    ignore = tuple(_glob_to_regex(p) for p in data.get("exclude") or () if isinstance(p, str))
    collections = _text(data.get("collections_dir")).strip("/")
    unreadable: list[str] = []
    top = root / collections if collections else root
    folders = jekyll_posts_folders(top, [re.compile(p) for p in ignore], unreadable)
    prefix = f"{collections}/" if collections else ""
    sources = tuple(prefix + f for f in folders)
    listed = [language_tag(v) for v in data.get("languages") or () if isinstance(v, str)]
    languages = tuple(t for t in listed if t) or _folder_languages(folders)
    default = language_tag(data.get("default_lang")) or language_tag(data.get("lang"))
    roots: tuple[tuple[str, str], ...] = ()
    if listed and "default_lang" in data:
        # jekyll-polyglot: every language but the default one is built under /<lang>/.
        roots = tuple((lang, f"{lang}/") for lang in languages if lang != default)
    return SiteDefaults(
        kind="jekyll",
        file=path,
        title=_text(data.get("title")),
        url=url if site_url else "",
        timezone=_checked(data.get("timezone"), path, "timezone"),
        permalink=_permalink(JEKYLL_PERMALINKS.get(permalink, permalink), path, "permalink"),
        source=sources,
        ignore=ignore,
        description=_text(data.get("description")),
        language=lang or (default if "default_lang" in data else ""),  # jekyll-polyglot names only default_lang
        author=_text(author),
        notices=tuple(
            f"{os.path.relpath(path, root)}/: cannot read the folder: a _posts folder in it would not be read"
            for path in unreadable
        ),
        generator=Generator(
            kind="jekyll",
            languages=languages,
            default_language=default,
            language_roots=roots,
            defaults=_jekyll_defaults(data.get("defaults")),
            collections_dir=collections,
            heading_ids=_setting(data, "kramdown", "auto_ids") is not False,
        ),
    )


def jekyll_posts_folders(top: Path, ignore: list[re.Pattern[str]], unreadable: list[str] | None = None) -> list[str]:
    """Every `_posts` folder under ``top`` (relative, sorted), as Jekyll finds them: not inside folders whose
    name starts with `.` or `_`, nor inside excluded ones. Folders that cannot be listed go to ``unreadable``."""
    found: list[str] = []
    start = str(top)

    def failed(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(str(exc.filename))

    for dirpath, dirnames, _ in os.walk(start, onerror=failed):
        rel = dirpath[len(start) + 1 :].replace(os.sep, "/")
        keep = []
        for name in sorted(dirnames):
            path = f"{rel}/{name}" if rel else name
            if name == "_posts":
                found.append(path)
            elif (
                name[0] not in "._#~" and name not in JEKYLL_ALWAYS_EXCLUDED and not any(p.search(path) for p in ignore)
            ):
                keep.append(name)
        dirnames[:] = keep
    return found


def _folder_languages(folders: Iterable[str]) -> tuple[str, ...]:
    """Languages shown by the folders above `_posts` (`en/news/_posts`, `ja/news/_posts`): the first folder
    of each path named like a language code, when at least two languages show up that way."""
    seen: dict[str, None] = {}
    for folder in folders:
        code = next((p for p in folder.split("/")[:-1] if is_language_code(p)), "")
        if code:
            seen[language_tag(code)] = None
    return tuple(seen) if len(seen) >= 2 else ()


def _jekyll_defaults(value: Any) -> str:
    """`defaults:` entries that can apply to posts, as [[path, type, values], …] in JSON (hashable)."""
    rules = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            continue
        scope: dict[str, Any] = item["scope"] if isinstance(item.get("scope"), dict) else {}
        kind = _text(scope.get("type"))
        if kind and kind != "posts":
            continue
        values = {str(k).lower(): v for k, v in item["values"].items()}
        rules.append([_text(scope.get("path")).strip("/"), kind, values])
    return json.dumps(rules, default=str, ensure_ascii=False) if rules else ""


# -- Hugo --------------------------------------------------------------------------------------------------


HUGO_CONFIG_DIR = "config"  # Hugo's configDir
HUGO_ENVIRONMENT = "production"  # the environment `hugo` builds a site for: its folder overrides _default
_CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def _hugo_config_dir(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """Hugo's configuration directory, `config/_default/` and the production folder over it, as one
    mapping: `hugo.toml` (or `config.toml`) holds root keys, any other file the key it is named after
    (`languages.toml`, `params.toml`, `permalinks.toml`), and `params.ko.toml` that key of one language.
    None when the site has no such folder."""
    base = root / HUGO_CONFIG_DIR / "_default"
    if not base.is_dir():
        return None
    data: dict[str, Any] = {}
    first: Path | None = None
    for folder in (base, root / HUGO_CONFIG_DIR / HUGO_ENVIRONMENT):
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        for file in files:
            if file.suffix.lower() not in _CONFIG_SUFFIXES or not file.is_file():
                continue
            loaded = _load_mapping(file)
            key, _, language = file.stem.lower().partition(".")
            if key in ("hugo", "config"):
                piece = loaded
                first = first or file
            elif language:
                piece = {"languages": {language: {key: loaded}}}
            else:
                piece = {key: loaded}
            data = _merged(data, piece)
    return first or base, data


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`, tables into tables, keys compared without case (as Hugo does)."""
    out = dict(base)
    for key, value in over.items():
        same = next((k for k in out if str(k).lower() == str(key).lower()), key)
        if isinstance(value, dict) and isinstance(out.get(same), dict):
            out[same] = _merged(out[same], value)
        else:
            out[same] = value
    return out


def _hugo(root: Path, path: Path, data: dict[str, Any]) -> SiteDefaults:
    content = _text(data.get("contentdir")).strip("/") or "content"
    params: dict[str, Any] = data["params"] if isinstance(data.get("params"), dict) else {}
    default = language_tag(_language(data.get("defaultcontentlanguage"), path, "defaultContentLanguage")) or "en"
    code = _language(data.get("languagecode"), path, "languageCode")
    in_subdir = data.get("defaultcontentlanguageinsubdir") is True
    languages_table = _lower_keys(data.get("languages"))
    disabled = {language_tag(v) for v in data.get("disablelanguages") or () if isinstance(v, str)}
    content_dirs: dict[str, str] = {content: ""}
    languages: list[str] = []
    roots: list[tuple[str, str]] = []
    titles: list[tuple[str, str]] = []
    for key, settings in languages_table.items():
        lang = language_tag(_language(key, path, key, f"languages.{key}"))
        if not lang or lang in disabled:
            continue
        languages.append(lang)
        table = _lower_keys(settings)
        _language(table.get("languagecode"), path, "languageCode", f"languages.{key}")
        folder = _text(table.get("contentdir")).strip("/")
        if folder:
            content_dirs[folder] = lang
        if _text(table.get("title")):
            titles.append((lang, _text(table.get("title"))))
        base = _checked(table.get("baseurl"), path, "baseURL", url=True)
        if base:
            roots.append((lang, base.rstrip("/") + "/"))
        elif lang != default or in_subdir:
            roots.append((lang, f"{lang}/"))
    sections = params.get("mainSections") or params.get("mainsections") or data.get("mainsections")
    if not isinstance(sections, list) or not sections:
        sections = _hugo_main_sections(root, content_dirs)
    sources = tuple(
        f"{folder}/{s}"
        for folder in content_dirs
        for s in sections
        if isinstance(s, str) and (root / folder / s).is_dir()
    ) or (content,)
    permalinks: dict[str, Any] = data["permalinks"] if isinstance(data.get("permalinks"), dict) else {}
    # Hugo accepts `[permalinks] posts = …` and `[permalinks.page] posts = …`
    page: dict[str, Any] = permalinks["page"] if isinstance(permalinks.get("page"), dict) else {}
    patterns = {str(k): _text(v) for k, v in {**permalinks, **page}.items() if _text(v)}
    patterns = {k: _permalink(v, path, k, f"permalinks.{k}") for k, v in patterns.items()}
    first = str(sections[0]) if sections else ""
    ignore = data.get("ignorefiles") or ()
    return SiteDefaults(
        kind="hugo",
        file=path,
        title=_text(data.get("title")),
        url=_checked(data.get("baseurl"), path, "baseURL", url=True),
        timezone=_checked(data.get("timezone"), path, "timeZone"),
        permalink=patterns.get(first) or "/:path/",
        source=sources,
        ignore=tuple(p for p in ignore if isinstance(p, str)),
        description=_text(params.get("description")) if params else "",
        language=code or _text(data.get("defaultcontentlanguage")),
        author=_text(params.get("author")) if params else "",
        generator=Generator(
            kind="hugo",
            languages=tuple(languages),
            default_language=default,
            disabled_languages=tuple(sorted(disabled)),
            language_roots=tuple(roots),
            language_titles=tuple(titles),
            content_dirs=tuple(sorted(content_dirs.items(), key=lambda item: -len(item[0]))),
            permalinks=tuple(sorted(patterns.items())),
            lower_paths=data.get("disablepathtolower") is not True,
            heading_ids=_setting(data, "markup", "goldmark", "parser", "autoheadingid") is not False,
        ),
    )


def _setting(data: dict[str, Any], *keys: str) -> Any:
    """A nested setting, keys compared without case (`markup.goldmark.parser.autoHeadingID`); None when
    any level is missing."""
    value: Any = data
    for key in keys:
        value = _lower_keys(value).get(key)
        if value is None:
            return None
    return value


def _lower_keys(value: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def _hugo_main_sections(root: Path, content_dirs: dict[str, str]) -> list[str]:
    """Hugo's default mainSections: the section with the most pages, over every language's content folder.
    Only the sections that hold posts are read: a section of pages (`about/`, `docs/`) often carries dates
    too, and would put pages into the newsletter."""
    counts: dict[str, int] = {}
    nested = set(content_dirs)
    for folder in content_dirs:
        base = root / folder
        if not base.is_dir():
            continue
        for d in base.iterdir():
            rel = f"{folder}/{d.name}"
            if d.is_dir() and not d.name.startswith(".") and rel not in nested:
                counts[d.name] = counts.get(d.name, 0) + sum(1 for _ in d.rglob("*.md"))
    if not counts:
        return []
    return [max(sorted(counts), key=lambda n: counts[n])]


# -- Pelican -----------------------------------------------------------------------------------------------


def _pelican(root: Path, files: list[Path]) -> SiteDefaults:
    conf: dict[str, Any] = {}
    origin: dict[str, Path] = {}  # the file each setting comes from, for an error naming it
    for path in files:
        found = _python_settings(path)
        conf.update(found)
        origin.update(dict.fromkeys(found, path))
    folder = _text(conf.get("PATH")) or "."
    content = os.path.normpath(folder if not os.path.isabs(folder) else os.path.relpath(folder, root))

    def under(paths: Any, fallback: list[str]) -> list[str]:
        values = paths if isinstance(paths, list | tuple) else fallback
        found = []
        for p in values:
            if isinstance(p, str):
                found.append(os.path.normpath(os.path.join(content, p)).replace(os.sep, "/"))
        return found

    articles = under(conf.get("ARTICLE_PATHS"), [""])
    pages = under(conf.get("PAGE_PATHS"), ["pages"]) + under(conf.get("ARTICLE_EXCLUDES"), [])
    default = (
        language_tag(_language(conf.get("DEFAULT_LANG"), origin.get("DEFAULT_LANG", files[0]), "DEFAULT_LANG")) or "en"
    )
    return SiteDefaults(
        kind="pelican",
        file=files[0],
        title=_text(conf.get("SITENAME")),
        url=_checked(conf.get("SITEURL"), origin.get("SITEURL", files[0]), "SITEURL", url=True),
        timezone=_checked(conf.get("TIMEZONE"), origin.get("TIMEZONE", files[0]), "TIMEZONE"),
        permalink=_text(conf.get("ARTICLE_URL")) or "{slug}.html",
        source=tuple(dict.fromkeys(articles)),
        description=_text(conf.get("SITESUBTITLE")),
        language=default,
        author=_text(conf.get("AUTHOR")),
        generator=Generator(
            kind="pelican",
            default_language=default,
            content_dirs=((content.replace(os.sep, "/"), ""),),
            not_posts=tuple(p for p in dict.fromkeys(pages) if p not in articles),
            lang_permalink=_text(conf.get("ARTICLE_LANG_URL")) or "{slug}-{lang}.html",
            default_category=_text(conf.get("DEFAULT_CATEGORY")) or "misc",
            category_from_folder=conf.get("USE_FOLDER_AS_CATEGORY", True) is not False,
            slug_from_file=_text(conf.get("SLUGIFY_SOURCE")) == "basename",
            filename_date=_filename_metadata(conf.get("FILENAME_METADATA"), origin.get("FILENAME_METADATA", files[0])),
            # Python-Markdown gives headings ids only with its toc extension (or a toc plugin)
            heading_ids="toc" in repr(conf.get("MARKDOWN", "")) or "toc" in repr(conf.get("PLUGINS", "")),
        ),
    )


PELICAN_FILENAME_METADATA = r"(?P<date>\d{4}-\d{2}-\d{2}).*"  # Pelican's default


def _filename_metadata(value: Any, path: Path) -> str:
    """Pelican's FILENAME_METADATA (matched at the start of a file's name without its extension), when it
    has a `date` group; "" when it has none (it dates nothing)."""
    pattern = value if isinstance(value, str) else PELICAN_FILENAME_METADATA
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"FILENAME_METADATA is not a regular expression: {exc}",
            "fix it in the Pelican config (digest reads it, as Pelican does)",
            source=str(path),
        ) from exc
    return pattern if "date" in compiled.groupindex else ""


def _python_settings(path: Path) -> dict[str, Any]:
    """The UPPER_CASE settings of a Pelican config assigned a literal at the top level. The file is parsed,
    never run: a config may import plugins or read the environment, and none of that is ours to execute."""
    try:
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the site config: {exc}", source=str(path)) from exc
    except SyntaxError as exc:
        raise ConfigError(
            f"the site config cannot be parsed: {exc.msg}", "fix the syntax", source=str(path), line=exc.lineno
        ) from exc
    found: dict[str, Any] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and value is not None:
                try:
                    found[target.id] = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    found.pop(target.id, None)  # computed at run time: unknown, so the default applies
    return found
