"""What a site's own config says about it: Jekyll's `_config.yml`, Hugo's `hugo.*` / `config.*`.

digest.toml overrides any of it (see digest.config)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from digest.errors import ConfigError

# Site configs: what a Jekyll or Hugo site says about itself.

JEKYLL_PERMALINKS = {
    "date": "/:categories/:year/:month/:day/:title.html",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title.html",
    "weekdate": "/:categories/:year/W:week/:short_day/:title.html",
    "none": "/:categories/:title.html",
}
HUGO_CONFIG_NAMES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json", "config.toml", "config.yaml", "config.yml")


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


def _glob_to_regex(pattern: str) -> str:
    """Jekyll `exclude` entries are paths or globs relative to the site root."""
    body = re.escape(pattern.strip("/")).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return rf"(^|/){body}($|/)"


def read_site_config(root: Path) -> SiteDefaults:
    jekyll = root / "_config.yml"
    if not jekyll.is_file() and (root / "_config.yaml").is_file():
        jekyll = root / "_config.yaml"
    if jekyll.is_file():
        data = _load_mapping(jekyll)
        url = _text(data.get("url")).rstrip("/") + "/" + _text(data.get("baseurl")).strip("/")
        permalink = _text(data.get("permalink")) or "date"
        author = data.get("author")
        if isinstance(author, dict):
            author = author.get("name")
        return SiteDefaults(
            kind="jekyll",
            file=jekyll,
            title=_text(data.get("title")),
            url=url if _text(data.get("url")) else "",
            timezone=_text(data.get("timezone")),
            permalink=JEKYLL_PERMALINKS.get(permalink, permalink),
            source=("_posts",),
            ignore=tuple(_glob_to_regex(p) for p in data.get("exclude") or () if isinstance(p, str)),
            description=_text(data.get("description")),
            language=_text(data.get("lang")),
            author=_text(author),
        )
    for name in HUGO_CONFIG_NAMES:
        hugo = root / name
        if hugo.is_file():
            data = _load_mapping(hugo)
            content = _text(data.get("contentdir")) or "content"
            params = data.get("params") if isinstance(data.get("params"), dict) else {}
            sections = params.get("mainSections") or params.get("mainsections") if params else None
            source = (
                tuple(f"{content}/{s}" for s in sections)
                if isinstance(sections, list)
                else _hugo_main_section(root / content)
            )
            permalinks: dict[str, Any] = data["permalinks"] if isinstance(data.get("permalinks"), dict) else {}
            section_name = source[0].split("/", 1)[-1] if source else ""
            # Hugo accepts `[permalinks] posts = …` and `[permalinks.page] posts = …`
            page: dict[str, Any] = permalinks["page"] if isinstance(permalinks.get("page"), dict) else {}
            pattern = permalinks.get(section_name) or page.get(section_name)
            ignore = data.get("ignorefiles") or ()
            return SiteDefaults(
                kind="hugo",
                file=hugo,
                title=_text(data.get("title")),
                url=_text(data.get("baseurl")),
                timezone=_text(data.get("timezone")),
                permalink=_text(pattern) or "/:path/",
                source=source,
                ignore=tuple(p for p in ignore if isinstance(p, str)),
                description=_text(params.get("description")) if params else "",
                language=_text(data.get("languagecode")) or _text(data.get("defaultcontentlanguage")),
                author=_text(params.get("author")) if params else "",
            )
    return SiteDefaults(kind="plain")


def _hugo_main_section(content: Path) -> tuple[str, ...]:
    """Hugo's default mainSections: the section with the most pages."""
    if not content.is_dir():
        return ("content",)
    counts = {d.name: sum(1 for _ in d.rglob("*.md")) for d in content.iterdir() if d.is_dir()}
    if not counts:
        return (content.name,)
    return (f"{content.name}/{max(sorted(counts), key=lambda n: counts[n])}",)
