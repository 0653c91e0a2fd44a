from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import TemplateError
from digest.templater.env import builtin_templates, environment, render, render_string

BUILTIN = ("email.html.j2", "email.txt.j2", "email.css", "archive_issue.html.j2", "archive_index.html.j2")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_templates_are_found(name: str) -> None:
    assert (builtin_templates() / name).is_file()


def test_user_folder_wins_by_name(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text("mine: {{ who }}", "utf-8")
    assert render(tmp_path, "email.txt.j2", {"who": "나"}) == "mine: 나"
    # a name the user folder lacks still comes from the built-in templates
    assert "{" in render(tmp_path, "email.css", {})


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("page.html.j2", True), ("feed.xml.j2", True), ("email.txt.j2", False), ("email.css", False), (None, False)],
)
def test_autoescape_by_file_name(name: str | None, escaped: bool) -> None:
    env = environment(None)
    assert bool(env.autoescape(name) if callable(env.autoescape) else env.autoescape) is escaped


def test_html_templates_escape_values(tmp_path: Path) -> None:
    (tmp_path / "x.html.j2").write_text("<p>{{ title }}</p>", "utf-8")
    assert render(tmp_path, "x.html.j2", {"title": "<script>x</script>"}) == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% if %}", "template syntax error"),
        ("{{ missing.value }}", "template failed"),
        ("{% include 'nowhere.j2' %}", "not found"),
    ],
)
def test_template_problems_become_template_errors(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad.txt.j2").write_text("line one\n" + source, "utf-8")
    with pytest.raises(TemplateError, match=message) as info:
        render(tmp_path, "bad.txt.j2", {})
    assert info.value.hint


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.txt.j2").write_text("ok\nok\n{% for %}\n", "utf-8")
    with pytest.raises(TemplateError) as info:
        render(tmp_path, "bad.txt.j2", {})
    assert info.value.source.endswith("bad.txt.j2")
    assert info.value.line == 3


def test_render_string_does_not_escape() -> None:
    assert render_string("{{ a }} & b", {"a": "<x>"}, origin="subject") == "<x> & b"


def test_a_render_error_names_the_part_and_line_it_happened_in(tmp_path: Path) -> None:
    """An unknown variable in an included part, or in a language's override: the file that holds it, not
    the template the render started from."""
    (tmp_path / "parts" / "deep").mkdir(parents=True)
    (tmp_path / "parts" / "deep" / "foot.j2").write_text("one\ntwo {{ site.nope }}\n", "utf-8")
    (tmp_path / "main.txt.j2").write_text("start\n{% include 'parts/deep/foot.j2' %}\n", "utf-8")
    with pytest.raises(TemplateError, match="nope") as info:
        render(tmp_path, "main.txt.j2", {"site": {}})
    assert info.value.source == str(tmp_path / "parts" / "deep" / "foot.j2")
    assert info.value.line == 2
    (tmp_path / "ko").mkdir()
    (tmp_path / "ko" / "main.txt.j2").write_text("\n\n{{ missing }}\n", "utf-8")
    with pytest.raises(TemplateError) as info:
        render(tmp_path, "main.txt.j2", {}, language="ko")
    assert (info.value.source, info.value.line) == (str(tmp_path / "ko" / "main.txt.j2"), 3)


def test_a_missing_part_is_named_with_the_template_that_includes_it(tmp_path: Path) -> None:
    (tmp_path / "main.txt.j2").write_text("a\nb\n{% include 'parts/gone.j2' %}\n", "utf-8")
    with pytest.raises(TemplateError, match="'parts/gone.j2' not found") as info:
        render(tmp_path, "main.txt.j2", {})
    assert (info.value.source, info.value.line) == (str(tmp_path / "main.txt.j2"), 3)


def test_a_part_that_includes_itself_is_one_error_not_a_recursion_traceback(tmp_path: Path) -> None:
    (tmp_path / "loop.j2").write_text("again {% include 'loop.j2' %}", "utf-8")
    (tmp_path / "main.txt.j2").write_text("{% include 'loop.j2' %}", "utf-8")
    with pytest.raises(TemplateError, match="include each other without end") as info:
        render(tmp_path, "main.txt.j2", {})
    assert info.value.source == str(tmp_path / "loop.j2")


def test_a_template_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from digest.templater.env import check_templates

    (tmp_path / "partials").mkdir()
    (tmp_path / "partials" / "_banner.html.j2").write_bytes(b"<p>caf\xe9</p>\n")
    (tmp_path / "email.txt.j2").write_text("{% include 'partials/_banner.html.j2' %}", "utf-8")
    with pytest.raises(TemplateError, match="not UTF-8") as info:
        render(tmp_path, "email.txt.j2", {})
    assert info.value.source == str(tmp_path / "partials" / "_banner.html.j2")
    assert info.value.hint == "save it as UTF-8"
    with pytest.raises(TemplateError, match="not UTF-8") as info:
        check_templates(tmp_path)
    assert info.value.source == str(tmp_path / "partials" / "_banner.html.j2")


def test_a_long_running_process_renders_an_edit_that_put_the_old_time_back(tmp_path: Path) -> None:
    """The weekly service keeps one environment for weeks: an override edited to the same size with its
    modification time put back (`cp -p`, `rsync -t`, `touch -r`) is rendered as it is now, parts included."""
    import os
    import time

    (tmp_path / "email.css").write_text("a { color: #8b0000 }\n", "utf-8")
    (tmp_path / "main.txt.j2").write_text("{% include 'email.css' %}", "utf-8")
    assert "#8b0000" in render(tmp_path, "main.txt.j2", {})
    before = (tmp_path / "email.css").stat()
    time.sleep(0.05)  # an edit comes later (file times move with the kernel's coarse clock)
    (tmp_path / "email.css").write_text("a { color: #008b00 }\n", "utf-8")
    os.utime(tmp_path / "email.css", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "#008b00" in render(tmp_path, "main.txt.j2", {})
