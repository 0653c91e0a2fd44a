"""What `digest check` says of an author's own templates (digest/templater/lint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.templater.env import builtin_templates
from digest.templater.lint import css_problems, lint, unsafe_markup, unused_overrides


def test_the_built_in_css_reads_clean() -> None:
    assert css_problems((builtin_templates() / "email.css").read_text("utf-8")) == []


@pytest.mark.parametrize(
    ("css", "first"),
    [
        (".banner { color: #zzz; font-weight: bold }", "color: #zzz"),
        ("a { background: ; }", "background:"),
        ("@media (max-width { }", "@media"),
    ],
)
def test_css_premailer_cannot_read_is_named(css: str, first: str) -> None:
    found = css_problems("body { color: #222; }\n" + css)
    assert found and first in found[0]


def test_jinja_in_css_is_no_problem_and_nothing_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert css_problems("a { color: {{ colour }}; }\n{% if dark %}b { margin: 0 }{% endif %}{# note #}") == []
    css_problems("a { color: #zzz }")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # cssutils' own handler stays quiet meanwhile


@pytest.mark.parametrize(
    ("html", "found"),
    [
        ("<p>A post about <code>&lt;script&gt;</code>, onclick= and href=javascript:x</p>", []),
        ("<script>track()</script>", ["a <script>"]),
        ('<a href=" JavaScript:alert(1)">x</a>', ["a javascript: link"]),
        ('<img src="https://x.example/p.gif" onload="x()">', ["an event attribute (onclick=…)"]),
        ("<form><input name=q></form>", ["a form"]),
        ('<iframe src="https://x.example/"></iframe>', ["an <iframe>, <object> or <embed>"]),
    ],
)
def test_markup_mail_clients_refuse_is_found_as_elements_not_words(html: str, found: list[str]) -> None:
    assert unsafe_markup(f"<html><body>{html}</body></html>") == found


def test_unused_overrides_and_what_is_used(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text("{% include 'parts/head.j2' %}{% import 'macros/m.j2' as m %}", "utf-8")
    for name in ("parts/head.j2", "macros/m.j2", "ko/email.html.j2", "emial.txt.j2", "kr/email.html.j2", "x.css"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", "utf-8")
    assert unused_overrides(tmp_path, ["ko"]) == ["emial.txt.j2", "kr/email.html.j2", "x.css"]
    (tmp_path / "email.html.j2").write_text("{% include part_name %}", "utf-8")  # named by a variable
    assert unused_overrides(tmp_path, ["ko"]) == []  # then nothing can be said


def test_lint_names_each_problem_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "email.css").write_text("a { color: #zzz }", "utf-8")
    (tmp_path / "ko").mkdir()
    (tmp_path / "ko" / "email.html.j2").write_text("<html></html>", "utf-8")
    found = lint(tmp_path, ["en", "ko"], {"ko": "<html><body><script>x</script></body></html>"})
    assert [what.split(":")[0] for what, _ in found] == [
        str(tmp_path / "email.css"),
        str(tmp_path / "ko" / "email.html.j2"),
    ]
    assert all(fix for _, fix in found)
