"""What `digest check` says of an author's own templates beyond compiling and rendering them: files no
render reads, CSS premailer would leave out, and markup mail clients refuse, each found without sending."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from digest.templater.env import builtin_templates, environment, language_folders, template_path


def unused_overrides(user_folder: Path, languages: Iterable[str]) -> list[str]:
    """The files of the override folder that no render reads (paths relative to it): a name that is no
    built-in template's and that no template includes, imports or extends (`emial.txt.j2`), or one in a
    folder that is neither a language's (`languages`: the site's) nor named by an include (`kr/`). Empty
    when a template names what it includes with a variable: then nothing can be said."""
    from jinja2 import meta

    builtin = {p.name for p in builtin_templates().iterdir() if p.suffix in (".j2", ".css")}
    own = sorted(
        p.relative_to(user_folder).as_posix()
        for p in user_folder.rglob("*")
        if p.is_file() and p.suffix in (".j2", ".css")
    )
    env = environment.__wrapped__(user_folder)
    named: set[str] = set()
    for source in [builtin_templates() / n for n in builtin] + [user_folder / n for n in own]:
        found = meta.find_referenced_templates(env.parse(source.read_text("utf-8")))
        for name in found:
            if name is None:
                return []
            named.add(name)
    folders = {sub for lang in languages for sub in language_folders(lang)}
    unused = []
    for path in own:
        first, _, rest = path.partition("/")
        name = rest if rest and first in folders else path
        if name not in builtin and name not in named:
            unused.append(path)
    return unused


_JINJA_VALUE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_JINJA_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_CSS_NOISE = ("PropertyValue:", "No content to parse")  # the same problem again, at a lower level


def css_problems(css: str) -> list[str]:
    """What cssutils, which premailer inlines with, cannot read in `css` (an email.css): premailer leaves
    each of these out of the email without a word. A Jinja2 value counts as a number, a tag as nothing."""
    import cssutils

    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage().strip()
            if record.levelno >= logging.ERROR and not message.startswith(_CSS_NOISE):
                found.append(" ".join(message.split())[:160])

    logger = logging.getLogger("CSSUTILS")  # cssutils' own, with a handler that prints to stderr
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    logger.handlers, logger.propagate = [Collect()], False
    logger.setLevel(logging.ERROR)
    try:
        cssutils.parseString(_JINJA_TAG.sub("", _JINJA_VALUE.sub("0", css)), validate=False)
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)
    return list(dict.fromkeys(found))


# What a mail client removes or refuses in a message, as elements and attributes (never the words of a post
# about them): a post's own HTML loses all of it (bodies.py), so in a rendered email it came from a template.
_UNSAFE = (
    ("//script", "a <script>"),
    ("//form|//input|//button|//select|//textarea", "a form"),
    ("//iframe|//object|//embed", "an <iframe>, <object> or <embed>"),
    ("//@*[starts-with(name(), 'on')]", "an event attribute (onclick=…)"),
    (
        "//@href[starts-with(normalize-space(translate(., 'JAVSCRIPT', 'javscript')), 'javascript:')]"
        "|//@src[starts-with(normalize-space(translate(., 'JAVSCRIPT', 'javscript')), 'javascript:')]",
        "a javascript: link",
    ),
)


def unsafe_markup(html: str) -> list[str]:
    """What of `html` (a rendered email) mail clients strip or count against the message."""
    import lxml.html

    root = lxml.html.document_fromstring(html)
    return [what for path, what in _UNSAFE if root.xpath(path)]


def lint(user_folder: Path, languages: Iterable[str], emails: dict[str, str]) -> list[tuple[str, str]]:
    """(what, what to do) for each thing check warns of in `user_folder`; `languages`: the site's (as the
    issues speak them); `emails`: {language: the email's HTML as rendered} for the markup."""
    spoken = sorted(set(languages))
    found: list[tuple[str, str]] = []
    unused = unused_overrides(user_folder, spoken)
    if unused:
        shown = ", ".join(unused[:3]) + (f" and {len(unused) - 3} more" if len(unused) > 3 else "")
        found.append(
            (
                f"{len(unused)} file(s) in {user_folder} no render reads: {shown}",
                "check the names: a file replaces the built-in template of the same name, in the folder of a "
                "language of the site (e.g. ko/) for that language only, or is a part a template includes",
            )
        )
    sheets = dict.fromkeys(template_path(user_folder, "email.css", lang) for lang in spoken)
    for sheet in (s for s in sheets if s.is_relative_to(user_folder)):
        unread = css_problems(sheet.read_text("utf-8"))
        if unread:
            found.append(
                (
                    f"{sheet}: {len(unread)} rule(s) or declaration(s) premailer cannot read and leaves out of "
                    f"the email: {unread[0]}",
                    "fix the CSS there (premailer inlines it with cssutils)",
                )
            )
    for lang, html in sorted(emails.items()):
        unsafe = unsafe_markup(html)
        if unsafe:
            template = template_path(user_folder, "email.html.j2", lang)
            found.append(
                (
                    f"{template}: the email ({lang}) holds {', '.join(unsafe)}",
                    "remove it from the template: mail clients strip it, and spam filters count it against the message",
                )
            )
    return found
