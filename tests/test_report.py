"""The preview's table of entries as text: columns by what a terminal shows (Korean takes two columns), cut
with "…" only to fit a terminal, never in a file or a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.report import display_width, table_lines

HEADER = ("date", "title", "source")
ROWS = [
    ("2026-11-18 09:00 +0900", "주간 소식 12호", "_posts/2026-11-18-weekly-12.md"),
    ("2026-11-17 21:30 +0900", "A longer English title about tea", "_posts/2026/11/2026-11-17-tea.md"),
]


@pytest.mark.parametrize(
    ("text", "width"),
    [("abc", 3), ("주간", 4), ("주간 a", 6), ("e\u0301", 1), ("", 0), ("日本語", 6), ("…", 1)],
)
def test_display_width_counts_terminal_columns(text: str, width: int) -> None:
    assert display_width(text) == width


def test_columns_line_up_on_screen_with_wide_characters() -> None:
    lines = table_lines(HEADER, ROWS)
    assert lines[0].split() == list(HEADER)
    # every source starts in the same screen column, whatever the title's characters
    starts = {display_width(line[: line.index("_posts")]) for line in lines[1:]}
    assert len(starts) == 1
    assert display_width(lines[0][: lines[0].index("source")]) in starts
    assert all("…" not in line for line in lines)  # no width: nothing cut


@pytest.mark.parametrize("width", [100, 80, 60, 50])
def test_within_a_terminal_width_cells_are_cut_with_an_ellipsis(width: int) -> None:
    lines = table_lines(HEADER, ROWS, width)
    assert max(display_width(line) for line in lines) <= width
    assert all(line.startswith(row[0]) for line, row in zip(lines[1:], ROWS, strict=True))  # dates whole
    for line, row in zip(lines[1:], ROWS, strict=True):
        source = line.rsplit("  ", 1)[1]
        assert source == row[2] or (source.startswith("…") and row[2].endswith(source[1:]))  # its end kept
    if width >= display_width(table_lines(HEADER, ROWS)[2]):
        assert lines == table_lines(HEADER, ROWS)


def test_a_width_too_narrow_for_any_table_still_gives_every_row() -> None:
    lines = table_lines(HEADER, ROWS, 20)
    assert len(lines) == 3
    assert all(line.startswith(row[0]) for line, row in zip(lines[1:], ROWS, strict=True))


def test_preview_output_in_a_pipe_is_plain_text(tmp_path: Path) -> None:
    """No escape codes in a file or a pipe, and the rows as written (rich replaced `:tea:` by an emoji)."""
    site = tmp_path / "site"
    (site / "posts").mkdir(parents=True)
    (site / "digest.toml").write_text(
        "[site]\ntitle = 'Pipe Notes'\nurl = 'https://pipe.example.org/'\ntimezone = 'Asia/Seoul'\n", "utf-8"
    )
    (site / "posts" / "2026-11-17-tea.md").write_text(
        "---\ntitle: 'Green :tea: and 녹차 [b]notes[/b]'\ndate: 2026-11-17 10:00\n---\n\nWords.\n", "utf-8"
    )
    env = os.environ | {"DIGEST_NOW": "2026-11-22T21:00:00+09:00", "FORCE_COLOR": "", "NO_COLOR": ""}
    done = subprocess.run(
        [sys.executable, "-m", "digest.cli", "preview", "--week", "2026-W47", "--site", str(site)],
        env=env | {"XDG_STATE_HOME": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("2026-11-17"))
    assert row.split("  ")[1:] == ["Green :tea: and 녹차 [b]notes[/b]", "posts/2026-11-17-tea.md"]
    with_color = subprocess.run(
        [sys.executable, "-m", "digest.cli", "preview", "--week", "2026-W47", "--site", str(site)],
        env=env | {"XDG_STATE_HOME": str(tmp_path / "state"), "FORCE_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_color.stdout.startswith("\x1b[1mPipe Notes")


def test_a_reader_that_leaves_early_ends_nothing(tmp_path: Path) -> None:
    """`digest preview | head -1`: the pipe closes before digest writes; the command still does its work,
    exits 0 and prints no error about the path, permissions or disk."""
    site = tmp_path / "site"
    (site / "posts").mkdir(parents=True)
    (site / "digest.toml").write_text("[site]\ntitle = 'Gone'\nurl = 'https://gone.example.org/'\n", "utf-8")
    (site / "posts" / "2026-11-17-a.md").write_text("---\ntitle: A\ndate: 2026-11-17 10:00\n---\n\nA.\n", "utf-8")
    done = into_a_closed_pipe(
        ["preview", "--week", "2026-W47", "--site", str(site)], tmp_path, "2026-11-22T21:00:00+09:00"
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert (site / "_digest" / "preview" / "email.html").is_file()


def into_a_closed_pipe(args: list[str], tmp_path: Path, now: str) -> subprocess.CompletedProcess[str]:
    """`digest ARGS` with its output a pipe whose reader is gone before the first line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = os.environ | {"DIGEST_NOW": now, "XDG_STATE_HOME": str(tmp_path / "state")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "digest.cli", *args],
            env=env | {"DIGEST_SECRET": "a test secret for the pipes, 32 bytes or more"},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


def test_a_pause_that_ran_out_is_not_shown_as_one() -> None:
    from datetime import UTC, datetime, timedelta

    from digest.models import Status
    from digest.records import SubscriberRecord
    from digest.report import subscriber_line, subscriber_lines

    until = datetime(2026, 4, 7, tzinfo=UTC)
    record = SubscriberRecord(
        "ko@example.com", "", "ko", (), "html", Status.ACTIVE, "cli", False, until, "cli", "", "", until, until,
        paused_until=until,
    )  # fmt: skip
    before, after = until - timedelta(days=1), until + timedelta(days=1)
    assert subscriber_line(record, before).split("\t")[-1] == "lang=ko paused until 2026-04-07"
    assert subscriber_line(record, after).split("\t")[-1] == "lang=ko"
    assert "  paused until  2026-04-07T00:00:00+00:00" in subscriber_lines(record, before)
    assert "  paused until  2026-04-07T00:00:00+00:00 (over)" in subscriber_lines(record, after)


@pytest.mark.parametrize(
    "command", [["subscribers", "export"], ["subscribers", "list", "--json"], ["preview", "--json"]]
)
def test_a_reader_that_leaves_before_any_output_of_any_command_ends_nothing(tmp_path: Path, command: list[str]) -> None:
    """`digest subscribers export | head -1` and the like: exit 0, no error about paths or disks, nothing on
    stderr (the commands that print through click as well as those that print lines)."""
    import shutil

    site = tmp_path / "site"
    example = Path(__file__).resolve().parents[1] / "examples" / "site"
    shutil.copytree(example, site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    done = into_a_closed_pipe([*command, "--site", str(site)], tmp_path, "2026-11-23T09:00:00+09:00")
    assert (done.returncode, done.stderr) == (0, "")


def test_counts_are_in_words_that_fit_them() -> None:
    from digest.report import counted

    assert [counted(n, "entry", "entries") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
