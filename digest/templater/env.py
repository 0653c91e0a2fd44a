"""The Jinja2 environment: the user's template folder first, then the templates shipped with digest."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.errors import TemplateError
from digest.text import file_stamp, strip_controls

if TYPE_CHECKING:
    import jinja2

# Jinja2 is imported by the functions that compile or render (about 0.05 s): a preview or a publish whose
# pages, feed entries and email all come from the cache renders no template.

_REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_ESCAPED_SUFFIXES = (".html.j2", ".html", ".htm", ".xml.j2")


@functools.cache
def builtin_templates() -> Path:
    """The folder of the built-in templates, installed (package `digest.templates`) or in a source tree.
    Found by the package's spec: importlib.resources.files() imports zipfile for every start-up."""
    try:
        spec = importlib.util.find_spec("digest.templates")
    except (ModuleNotFoundError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) if locations else _REPO_TEMPLATES
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


def language_folders(language: str) -> list[str]:
    """The override subfolders a language looks in, most specific first: "zh-hant" -> ["zh-hant", "zh"]."""
    tag = language.strip().replace("_", "-").lower()
    primary = tag.split("-")[0]
    return [f for f in dict.fromkeys((tag, primary)) if f]


def template_path(user_folder: Path | None, name: str, language: str = "") -> Path:
    """The file a render of `name` in `language` reads: the language's override, the override, or the
    built-in template (for messages that name it)."""
    if user_folder is not None:
        for folder in [user_folder / sub for sub in language_folders(language)] + [user_folder]:
            if (folder / name).is_file():
                return folder / name
    return builtin_templates() / name


@functools.lru_cache(maxsize=32)
def environment(user_folder: Path | None, language: str = "") -> jinja2.Environment:
    """One cached environment per override folder and language; FileSystemLoader re-reads changed files
    itself. In the override folder, `<language>/name` (e.g. `ko/email.html.j2`) wins over `name`."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if user_folder is not None:
        for sub in language_folders(language):
            loaders.append(_loader_class()(str(user_folder / sub), encoding="utf-8"))
        loaders.append(_loader_class()(str(user_folder), encoding="utf-8"))
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


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    """The template file and line the error happened in: Jinja2 gives a failing template's frames the
    template's own file name and line, and the innermost is the one that failed (an included part, a macro
    of another file)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<") and os.path.isfile(filename):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _template_error(exc: BaseException, name: str) -> TemplateError:
    import jinja2

    if isinstance(exc, jinja2.TemplateNotFound):
        source, line = _template_frame(exc) or (name, None)  # the template whose include names it
        return TemplateError(
            f"template {exc.name!r} not found", "restore it or remove the override", source=source, line=line
        )
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(
            f"template syntax error: {exc.message}",
            "fix the template",
            source=exc.filename or exc.name or name,
            line=exc.lineno,
        )
    if isinstance(exc, UnicodeDecodeError):
        return TemplateError(f"the template is not UTF-8 (byte {exc.start})", "save it as UTF-8", source=name)
    where = _template_frame(exc)
    source, line = where if where is not None else (name, None)
    if isinstance(exc, RecursionError):
        return TemplateError(
            "the templates include each other without end",
            "remove the include or macro call that leads back to a template already being rendered",
            source=source,
            line=line,
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TemplateError(f"template failed: {first}", "check the variables the template uses", source=source, line=line)


@functools.cache
def _loader_class() -> type[jinja2.FileSystemLoader]:
    import jinja2

    class OwnLoader(jinja2.FileSystemLoader):
        """The author's templates. A file that cannot be decoded names itself (Jinja2 raises a bare
        UnicodeDecodeError), and a compiled template is used again only while its file keeps its size,
        both times and inode: Jinja2 looks at the modification time alone, so the weekly service (one
        environment for weeks) kept an edit that put the old time back (`cp -p`, `rsync -t`, `touch -r`)
        out of every email."""

        def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
            parts = jinja2.loaders.split_template_path(template)
            found = next((p for p in (Path(f).joinpath(*parts) for f in self.searchpath) if p.is_file()), None)
            stamp = file_stamp(found) if found is not None else None  # before reading: a write after it reloads
            try:
                source, filename, _ = super().get_source(environment, template)
            except UnicodeDecodeError as exc:
                raise TemplateError(
                    f"the template is not UTF-8 (byte {exc.start})",
                    "save it as UTF-8",
                    source=str(found or template),
                ) from exc
            return source, filename, lambda: stamp is not None and file_stamp(filename) == stamp

    return OwnLoader


def render(user_folder: Path | None, name: str, context: Mapping[str, Any], *, language: str = "") -> str:
    """Render a template by name (the override for `language` first); any template problem becomes a
    one-line TemplateError. Raw control characters never reach the output, whatever the values held."""
    import jinja2

    try:
        return strip_controls(environment(user_folder, language).get_template(name).render(context))
    except TemplateError:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, LookupError, RecursionError) as exc:
        raise _template_error(exc, name) from exc


@functools.lru_cache(maxsize=32)
def _from_string(source: str) -> jinja2.Template:
    # Compiled once per source: a publish of 500 issues renders the subject 1,500 times, and compiling it
    # each time was 28 % of that publish.
    return environment(None).from_string(source)


@functools.lru_cache(maxsize=32)
def names_in(source: str) -> frozenset[str]:
    """The variables a template given as a string reads (all it could read when it does not parse)."""
    import jinja2
    from jinja2 import meta

    try:
        return frozenset(meta.find_undeclared_variables(environment(None).parse(source)))
    except jinja2.TemplateError:
        return frozenset({"site", "week", "issue", "entries", "lang"})


def render_string(source: str, context: Mapping[str, Any], *, origin: str) -> str:
    """Render a template given as a string (the subject line); never HTML-escaped."""
    import jinja2

    try:
        return strip_controls(_from_string(source).render(context))
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(exc, origin) from exc


def check_templates(user_folder: Path | None) -> list[str]:
    """Compile every template a render can use (built-in and overrides); the names checked, in order.
    A syntax error in an override is a one-line TemplateError naming the file and line."""

    names = sorted(p.name for p in builtin_templates().iterdir() if p.suffix in (".j2", ".css"))
    checked = list(names)
    if user_folder is not None:
        names = sorted(set(names) | {p.name for p in user_folder.iterdir() if p.suffix in (".j2", ".css")})
        checked = list(names)
        for sub in sorted(p for p in user_folder.iterdir() if p.is_dir()):
            # a fresh environment: a cached one keeps serving the built-in template an override now replaces
            env = environment.__wrapped__(user_folder, sub.name)
            for path in sorted(sub.iterdir()):
                if path.suffix in (".j2", ".css"):
                    _compile(env, path.name, f"{sub.name}/{path.name}")
                    checked.append(f"{sub.name}/{path.name}")
    env = environment.__wrapped__(user_folder)
    for name in names:
        _compile(env, name, name)
    return checked


def _compile(env: jinja2.Environment, name: str, shown: str) -> None:
    import jinja2

    try:
        env.get_template(name)
    except TemplateError:
        raise
    except (jinja2.TemplateError, UnicodeDecodeError) as exc:
        raise _template_error(exc, shown) from exc
