"""The Jinja2 environment: the user's template folder first, then the templates shipped with digest."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from digest.errors import TemplateError

_REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_ESCAPED_SUFFIXES = (".html.j2", ".html", ".htm", ".xml.j2")


def builtin_templates() -> Path:
    """The folder of the built-in templates, installed (package `digest.templates`) or in a source tree."""
    try:
        folder = Path(str(resources.files("digest.templates")))
    except (ModuleNotFoundError, TypeError):
        folder = _REPO_TEMPLATES
    # A namespace package or a zipped install gives no usable folder: fall back to the source tree.
    return folder if (folder / "email.html.j2").is_file() else _REPO_TEMPLATES


def _autoescape(name: str | None) -> bool:
    # Text parts, CSS and the subject line must not be HTML-escaped; everything HTML is.
    return name is not None and name.endswith(_ESCAPED_SUFFIXES)


def fmt_date(moment_at: datetime, tz: Any) -> str:
    return moment_at.astimezone(tz).strftime("%Y-%m-%d")


def last_day(end_at: datetime, tz: Any) -> str:
    """The inclusive last day of a half-open window."""
    return fmt_date(end_at - timedelta(microseconds=1), tz)


@functools.lru_cache(maxsize=8)
def environment(user_folder: Path | None) -> jinja2.Environment:
    """One cached environment per override folder; FileSystemLoader re-reads changed files itself."""
    loaders: list[jinja2.BaseLoader] = []
    if user_folder is not None:
        loaders.append(jinja2.FileSystemLoader(str(user_folder), encoding="utf-8"))
    loaders.append(jinja2.FileSystemLoader(str(builtin_templates()), encoding="utf-8"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = fmt_date
    return env


def _template_error(exc: Exception, name: str) -> TemplateError:
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"template {exc.name!r} not found", "restore it or remove the override", source=name)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(
            f"template syntax error: {exc.message}",
            "fix the template",
            source=exc.filename or exc.name or name,
            line=exc.lineno,
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TemplateError(f"template failed: {first}", "check the variables the template uses", source=name)


def render(user_folder: Path | None, name: str, context: Mapping[str, Any]) -> str:
    """Render a template by name; any template problem becomes a one-line TemplateError."""
    try:
        return environment(user_folder).get_template(name).render(context)
    except TemplateError:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(exc, name) from exc


def render_string(source: str, context: Mapping[str, Any], *, origin: str) -> str:
    """Render a template given as a string (the subject line); never HTML-escaped."""
    try:
        return environment(None).from_string(source).render(context)
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(exc, origin) from exc


def check_templates(user_folder: Path | None) -> list[str]:
    """Compile every template a render can use (built-in and overrides); the names checked, in order.
    A syntax error in an override is a one-line TemplateError naming the file and line."""
    names = sorted(p.name for p in builtin_templates().iterdir() if p.suffix in (".j2", ".css"))
    if user_folder is not None:
        names = sorted(set(names) | {p.name for p in user_folder.iterdir() if p.suffix in (".j2", ".css")})
    env = environment(user_folder)
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateError as exc:
            raise _template_error(exc, name) from exc
    return names
