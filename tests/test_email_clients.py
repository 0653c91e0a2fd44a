"""The delivered email as mail clients see it: doiuse-email (caniemail.com data, run with node) on the HTML
part of real messages, contrast of every text in light and dark mode computed from the email's own CSS,
line breaking per script, image widths, no element Outlook for Windows drops."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cssutils
import lxml.html
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.templater.bodies import EMAIL_COLUMN_PX

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / ".ci" / "node"
HOSTILE = """---
title: Everything a post may hold
date: 2026-11-18 10:00
tags: [test]
---

## Table of Contents

- [One](#one)

## One

<script>alert("x")</script>
<style>p { color: red }</style>
<iframe src="https://www.youtube.com/embed/aBcDeFgHiJk" width="560" height="315"></iframe>
<video src="https://media.example.org/clip.mp4" controls></video>
<form action="/subscribe"><input name="email"><button onclick="go()">Go</button></form>
<details><summary>More</summary>Hidden part.</details>
<figure><img src="https://media.example.org/wide.jpg" width="1600" height="900"><figcaption>Wide.</figcaption></figure>
<p>On <time datetime="2026-11-18">Wednesday</time>, <mark>marked</mark>,
<a href="#one" onmouseover="x()">a link</a>.</p>
<section><article><header>Nested HTML5</header></article></section>
<svg width="10" height="10"><circle r="4"/></svg>

```html
<script>keptAsCode()</script>
```
"""


def build_emails(tmp: Path) -> dict[str, str]:
    """{name: the HTML part of the message a subscriber gets} for the example sites and a hostile post."""
    runner = CliRunner()
    found: dict[str, str] = {}
    plans = [
        ("site", ROOT / "examples" / "site", "2026-11-23T09:00:00+09:00", [""]),
        ("multilang", ROOT / "examples" / "multilang", "2026-11-23T09:00:00+01:00", ["", "ko", "ja"]),
    ]
    for name, example, now, langs in plans:
        site = tmp / name
        shutil.copytree(example, site, ignore=shutil.ignore_patterns("_digest", ".digest"))
        if name == "site":
            (site / "posts" / "2026-11-18-hostile.md").write_text(HOSTILE, "utf-8")
        for lang in langs:
            args = ["preview", "--site", str(site), "--week", "2026-W47", "--json", *(["--lang", lang] if lang else [])]
            # a module-scoped fixture runs before the per-test state folder is set: give it its own
            state = {"XDG_STATE_HOME": str(tmp / "state-home")}
            result = runner.invoke(main, args, env={"DIGEST_NOW": now, **state})
            assert result.exit_code == 0, result.output
            eml = Path(json.loads(result.stdout)["files"][f"{lang}/email.eml" if lang else "email.eml"])
            message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            part = message.get_body(("html",))
            assert isinstance(part, email.message.EmailMessage)
            found[f"{name}-{lang or 'site'}"] = str(part.get_content())
    return found


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_emails(tmp_path_factory.mktemp("emails"))


@pytest.fixture(scope="module")
def doiuse() -> Iterator[Path]:
    """The doiuse-email script; `.ci/run` installs it (npm install --prefix .ci/node), and so does this
    fixture when npm is there but the package is not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run doiuse-email (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "doiuse-email").is_dir():
        done = subprocess.run(
            [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--no-package-lock"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install doiuse-email: {done.stderr.strip().splitlines()[-1:]}")
    yield NODE_DIR / "doiuse.mjs"


# client -> the most errors allowed (Outlook for Windows: @media for dark mode and small screens, and
# white-space for code blocks, which no alternative replaces)
CLIENTS = {"gmail.desktop-webmail": 0, "apple-mail.macos": 0, "outlook.windows": 3}


def test_doiuse_email_finds_nothing_the_clients_refuse(emails: dict[str, str], doiuse: Path, tmp_path: Path) -> None:
    files = []
    for name, html in emails.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html, "utf-8")
        files.append(str(path))
    done = subprocess.run(
        ["node", str(doiuse), ",".join(CLIENTS), *files], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout)
    for client, allowed in CLIENTS.items():
        for file, errors in report[client].items():
            assert len(errors) <= allowed, (client, Path(file).name, errors)


# -- contrast ------------------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rgb / #rrggbb colours."""
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _declarations(style: str) -> dict[str, str]:
    found = {}
    for item in style.split(";"):
        key, _, value = item.partition(":")
        if value.strip():
            found[key.strip().lower()] = value.strip().lower()
    return found


def _dark_rules(html: str) -> list[tuple[tuple[int, ...], str, dict[str, str]]]:
    """(specificity, selector, declarations) of the prefers-color-scheme: dark block, as cssutils reads it."""
    rules = []
    for block in re.findall(r"<style[^>]*>(.*?)</style>", html, re.S):
        sheet = cssutils.parseString(block, validate=False)
        for rule in sheet:
            if rule.type == rule.MEDIA_RULE and "prefers-color-scheme: dark" in rule.media.mediaText:
                for inner in rule:
                    decl = {p.name: p.value.lower() for p in inner.style}
                    for selector in inner.selectorList:
                        rules.append((selector.specificity, selector.selectorText, decl))
    return rules


def colours(html: str, dark: bool) -> Iterator[tuple[str, str, str]]:
    """(text, its colour, the background behind it) for every visible text of the email."""
    root = lxml.html.document_fromstring(html)
    styles: dict[lxml.html.HtmlElement, dict[str, str]] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        styles[element] = _declarations(element.get("style", ""))
        if element.get("bgcolor") and "background-color" not in styles[element]:
            styles[element]["background-color"] = element.get("bgcolor").lower()
    if dark:
        for _, selector, decl in sorted(_dark_rules(html), key=lambda rule: rule[0]):
            for element in root.cssselect(selector):
                styles.setdefault(element, {}).update(decl)  # !important beats inline; higher specificity last

    def inherited(element: lxml.html.HtmlElement, name: str, default: str) -> str:
        for node in [element, *element.iterancestors()]:
            value = styles.get(node, {}).get(name, "")
            if value.startswith("#"):
                return value.split()[0]
        return default

    for element in styles:
        if any("display:none" in (n.get("style") or "").replace(" ", "") for n in [element, *element.iterancestors()]):
            continue
        texts = [element.text or ""] + [child.tail or "" for child in element]
        text = " ".join(t.strip() for t in texts if t.strip())
        if text:
            yield text[:40], inherited(element, "color", "#000000"), inherited(element, "background-color", "#ffffff")


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_text_has_contrast_of_at_least_4_5(emails: dict[str, str], dark: bool) -> None:
    checked = 0
    for name, html in emails.items():
        for text, fg, bg in colours(html, dark):
            checked += 1
            assert contrast(fg, bg) >= 4.5, (
                name,
                "dark" if dark else "light",
                text,
                fg,
                bg,
                round(contrast(fg, bg), 2),
            )
    assert checked > 100


@pytest.mark.parametrize(("pair", "ratio"), [(("#000000", "#ffffff"), 21.0), (("#6b7280", "#f4f4f5"), 4.4)])
def test_the_contrast_formula(pair: tuple[str, str], ratio: float) -> None:
    assert round(contrast(*pair), 1) == ratio


# -- scripts, images, elements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("multilang-ko", "word-break:keep-all"),
        ("site-site", "word-break:keep-all"),  # the example site writes in Korean
        ("multilang-ja", "line-break:strict"),
        ("multilang-site", "word-wrap:break-word"),
    ],
)
def test_lines_break_as_the_script_wants(emails: dict[str, str], name: str, rule: str) -> None:
    body = re.search(r"<body[^>]*style='([^']*)'|<body[^>]*style=\"([^\"]*)\"", emails[name])
    assert body is not None and rule in (body[1] or body[2]).replace(" ", "")
    if "keep-all" not in rule:
        assert "keep-all" not in emails[name]


def test_images_elements_and_contents_suit_every_client(emails: dict[str, str]) -> None:
    for name, html in emails.items():
        root = lxml.html.document_fromstring(html)
        for img in root.iter("img"):
            assert img.get("width") and int(img.get("width")) <= EMAIL_COLUMN_PX, (name, img.get("src"))
            assert img.get("alt") is not None
        refused = {
            "time",
            "script",
            "iframe",
            "video",
            "form",
            "input",
            "button",
            "svg",
            "figure",
            "section",
            "details",
        }
        assert not [e.tag for e in root.iter() if e.tag in refused], name
        assert not [a for e in root.iter() for a in e.attrib if a.startswith("on")], name
    hostile = emails["site-site"]
    assert 'href="https://www.youtube.com/watch?v=aBcDeFgHiJk"' in hostile
    assert "&lt;script&gt;keptAsCode()&lt;/script&gt;" in hostile  # the code sample, as written
    assert "Table of Contents" not in hostile and ">One</a>" in hostile  # the outline, once
