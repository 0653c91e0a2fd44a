from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digest.collector import collect
from digest.collector.reader import scan
from tests.support_collector import NOW_AT, make_site, post

GOOD = post("Good post", "2021-03-20")


@pytest.mark.parametrize(
    ("rel", "content", "reason"),
    [
        ("_posts/2021-03-01-d.md", post("Draft", extra="draft: true\n"), "draft (draft: true)"),
        ("_posts/2021-03-01-u.md", post("Hidden", extra="published: false\n"), "unpublished (published: false)"),
        ("_posts/2021-03-01-n.md", post("Not here", extra="digest: false\n"), "left out of the digest (digest: false)"),
        (
            "_posts/2021-03-01-s.md",
            "Title: Pelican draft\nDate: 2021-03-01\nStatus: draft\n\nx\n",
            "draft (status: draft)",
        ),
        ("_posts/_drafts/2021-03-01-x.md", GOOD, "draft (in a drafts folder)"),
        ("_posts/draft/2021-03-01-x.md", GOOD, "draft (in a drafts folder)"),
        ("_posts/_index.md", "---\ntitle: Blog\n---\n", "list page (_index)"),
        ("_posts/2021-03-01-skip-me.md", GOOD, "ignored by the site config (skip-me)"),
        ("_posts/about.md", "---\ntitle: About\n---\nNo date anywhere.\n", "not a post"),
        ("_posts/2021-05-01-later.md", post("Later", "2021-05-01"), "dated in the future"),
    ],
)
def test_exclusions_have_reasons(tmp_path: Path, rel: str, content: str, reason: str) -> None:
    site = make_site(tmp_path, {rel: content, "_posts/2021-03-20-good.md": GOOD}, ignore=("skip-me",))
    found = scan(site, NOW_AT)
    assert [p.source for p in found.posts] == ["_posts/2021-03-20-good.md"]
    assert found.problems == []
    assert len(found.excluded) == 1
    assert found.excluded[0][0] == rel
    assert found.excluded[0][1].startswith(reason)
    assert found.scanned == 2


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b"", "empty file", None),
        (b"  \n\n", "empty file", None),
        (b"---\ntitle: x\n", "never closed", 1),
        (b"---\ntitle: [oops\n---\n", "malformed YAML", 3),
        (b"+++\ntitle = \n+++\n", "malformed TOML", 2),
        ("---\ntitle: 잘못\ndate: next tuesday\n---\n".encode(), "unparseable date in 'date'", 3),
        (b"---\ntitle: x\ndate: 2019-02-30\n---\n", "impossible date in 'date': 2019-02-30 is not a calendar date", 3),
        (b"---\ndate: 0000-01-01\n---\n", "impossible date in 'date': 0000-01-01 is not a calendar date (year 0", 2),
        (b"Title: P\nDate: 2026-13-01 10:00\n\nx\n", "impossible date in 'date': 2026-13-01 10:00 is not a", 2),
        (b"---\ndate: 0001-01-01T00:00:00+09:00\n---\n", "date out of range", None),
        ("---\ntitle: x\n---\n\ncaf\xe9\n".encode("latin-1"), "not UTF-8", 5),
        (b"---\ntitle: big\n---\n" + b"a" * (5 * 1024 * 1024 + 1), "larger than 5 MB", None),
    ],
)
def test_bad_files_become_problems_and_the_run_goes_on(
    tmp_path: Path, content: bytes, message: str, line: int | None
) -> None:
    site = make_site(tmp_path, {"_posts/2021-03-01-bad.md": content, "_posts/2021-03-20-good.md": GOOD})
    result = collect(site, NOW_AT)
    assert [e.title for e in result.entries] == ["Good post"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.source == "_posts/2021-03-01-bad.md"
    assert message in problem.message
    assert problem.line == line


def test_a_named_pipe_among_the_posts_is_left_out_without_waiting(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: every command hung on one (the service too)."""
    import os
    import threading

    site = make_site(tmp_path, {"_posts/2021-03-20-good.md": GOOD})
    os.mkfifo(tmp_path / "_posts" / "2021-03-01-pipe.md")
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(collect(site, NOW_AT)), daemon=True)
    worker.start()
    worker.join(30)
    assert done, "collect waited on the named pipe"
    result = done[0]
    assert [e.title for e in result.entries] == ["Good post"]
    assert [(p.source, p.message) for p in result.problems] == [
        ("_posts/2021-03-01-pipe.md", "not a regular file (a named pipe, a socket or a device): left out")
    ]


def test_hidden_and_non_markdown_files_are_not_scanned(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "_posts/.2021-03-01-x.md": GOOD,
            "_posts/.git/a.md": GOOD,
            "_posts/notes.txt": GOOD,
            "_posts/2021-03-20-a.markdown": GOOD,
        },
    )
    found = scan(site, NOW_AT)
    assert found.scanned == 1
    assert [p.source for p in found.posts] == ["_posts/2021-03-20-a.markdown"]


def test_cache_notices_a_changed_file(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"_posts/2021-03-20-a.md": post("First title")})
    assert collect(site, NOW_AT).entries[0].title == "First title"
    path = tmp_path / "_posts/2021-03-20-a.md"
    path.write_text(post("Second title, longer"), "utf-8")
    assert collect(site, NOW_AT).entries[0].title == "Second title, longer"


def test_window_start_skips_older_files_without_reporting_them(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "_posts/2020-01-01-old-broken.md": "---\ndate: 2020-01-01\ntitle: [bad\n---\n",
            "_posts/2021-03-20-new.md": GOOD,
        },
    )
    since = NOW_AT.replace(month=3, day=15)
    assert collect(site, NOW_AT, since).problems == ()
    assert len(collect(site, NOW_AT).problems) == 1


def test_a_date_line_in_prose_does_not_hide_a_post_from_the_window(tmp_path: Path) -> None:
    text = "Some notes without a header.\n\nDate: 2019-01-01 was when it began.\n"
    site = make_site(tmp_path, {"_posts/2021-03-20-prose.md": text})
    since = NOW_AT.replace(month=3, day=15)
    entries = collect(site, NOW_AT, since).entries
    assert [e.source for e in entries] == ["_posts/2021-03-20-prose.md"]
    assert entries[0].title == "prose"


def test_a_title_written_as_a_yaml_list_reads_as_its_items(tmp_path: Path) -> None:
    """`title: [Notes, week 3]` is a YAML list: its items, not Python's text of a list (`['Notes', ...]`)."""
    site = make_site(tmp_path, {"_posts/2021-03-20-a.md": b"---\ntitle: [Notes, week 3]\n---\nbody\n"})
    assert [e.title for e in collect(site, NOW_AT).entries] == ["Notes, week 3"]


def test_the_quick_running_log_test_is_the_multiline_pattern() -> None:
    """maybe_log splits ^[*+-]\\s+\\d{4} (multi-line) in two for speed: it must answer as that pattern."""
    import random
    import re

    from digest.collector.reader import maybe_log

    pattern = re.compile(r"^[*+-]\s+\d{4}", re.M)
    rng = random.Random(7)
    alphabet = ["\n", "\r", "-", "*", "+", " ", "\t", "\x0b", "1", "2", "a", "오"]
    seen = set()
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        expected = pattern.search(text) is not None
        seen.add(expected)
        assert maybe_log(text) is expected, repr(text)
    assert seen == {True, False}


def test_characters_xml_cannot_hold_are_found_in_the_bytes() -> None:
    """The reader skips xml_safe for files whose bytes hold none of the characters it removes."""
    from digest.collector.reader import _xml_unsafe
    from digest.text import xml_safe

    for code in [*range(0x20), 0x7F, 0x85, 0xD7FF, 0xE000, 0xFEFF, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF]:
        text = f"a {chr(code)} 기록"
        assert _xml_unsafe(text.encode()) is (xml_safe(text) != text), hex(code)


def test_a_file_with_noncharacters_is_read_without_them(tmp_path: Path) -> None:
    site = make_site(
        tmp_path, {"_posts/2021-03-20-n.md": post("Odd\ufffe title", "2021-03-20", body="Body\uffff here.\n")}
    )
    (entry,) = collect(site, NOW_AT).entries
    assert entry.title == "Odd title"
    assert "\uffff" not in entry.body_html and "Body here." in entry.body_html


def test_a_long_running_process_sees_an_edit_that_puts_the_old_time_back(tmp_path: Path) -> None:
    """The weekly service keeps what it read of each file while the file is unchanged: an edit of the same
    size whose modification time is put back (`cp -p`, `rsync -t`, `touch -r`) changes the file's change
    time, and the next collect reads it again."""
    import os

    site = make_site(tmp_path, {"_posts/2021-03-20-a.md": post("Same size", "2021-03-20", body="Words one.\n")})
    path = site.root / "_posts" / "2021-03-20-a.md"
    (first,) = collect(site, NOW_AT).entries
    assert "Words one." in first.body_html
    before = path.stat()
    path.write_text(post("Same size", "2021-03-20", body="Words two.\n"), "utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    (again,) = collect(site, NOW_AT).entries
    assert "Words two." in again.body_html
