"""A bad file never stops a run: each kind of bad post goes through the real commands (preview, publish,
send, run) on a copy of the example site, which must finish with exit 0, one warning line naming the file
and no traceback, while the week's good posts are still published and sent."""

from __future__ import annotations

import ctypes
import json
import mailbox
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "site"
NOW = "2026-11-23T09:00:00+09:00"  # week 2026-W47 has just ended
COMMANDS = [
    ["preview", "--week", "2026-W47"],
    ["publish", "--week", "2026-W47"],
    ["send", "--week", "2026-W47"],
    ["run", "--week", "2026-W47"],
]
SECRET = "a secret for the bad date table, 32 bytes or more"
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # linux/prctl.h, linux/capability.h


def bad_post(date: str) -> str:
    return f"---\ntitle: A post from the past\ndate: {date}\n---\n\nIt was a long time ago.\n"


# (id, files to add under the site, the warning's file, what the warning says)
BAD_FILES = [
    ("day-30-of-february", {"posts/old/2019-02-01-feb.md": bad_post("2019-02-30")}, "posts/old/2019-02-01-feb.md:3",
     "impossible date in 'date': 2019-02-30 is not a calendar date"),
    ("month-13", {"posts/2026-11-17-month.md": bad_post("2026-13-01")}, "posts/2026-11-17-month.md:3",
     "impossible date in 'date': 2026-13-01 is not a calendar date"),
    ("year-zero", {"posts/zero.md": bad_post("0000-01-01")}, "posts/zero.md:3",
     "impossible date in 'date': 0000-01-01 is not a calendar date"),
    ("date-time", {"posts/t.md": bad_post("2019-02-30 10:00:00 +0900")}, "posts/t.md:3",
     "impossible date in 'date': 2019-02-30 10:00:00 +0900 is not a calendar date"),
    ("file-name", {"posts/2019-02-30-leap.md": "---\ntitle: Leap\n---\n\nNo date key.\n"}, "posts/2019-02-30-leap.md",
     "impossible date in the file name: 2019-02-30 is not a calendar date"),
    ("toml", {"posts/toml.md": "+++\ntitle = 'x'\ndate = 2019-02-30\n+++\n\nx\n"}, "posts/toml.md:3",
     "malformed TOML front matter"),
]  # fmt: skip


@pytest.fixture
def site(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("_digest", ".digest"))
    return target


def check_output(code: int, stdout: str, stderr: str, where: str, message: str) -> None:
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, stderr
    assert warnings[0].startswith(f"warning: {where}: {message}"), warnings[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(("files", "where", "message"), [row[1:] for row in BAD_FILES], ids=[r[0] for r in BAD_FILES])
def test_a_bad_date_is_one_warning_and_the_week_goes_out(
    site: Path, command: list[str], files: dict[str, str], where: str, message: str
) -> None:
    for rel, content in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(content, "utf-8")
    result = CliRunner().invoke(main, [*command, "--site", str(site)], env={"DIGEST_NOW": NOW, "DIGEST_SECRET": SECRET})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    check_output(result.exit_code, result.stdout, result.stderr, where, message)
    settings = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET})
    if command[0] in ("send", "run"):
        assert len(mailbox.Maildir(settings.outbox, create=False)) == 3  # the 3 active subscribers
    if command[0] in ("publish", "run"):
        assert (settings.output.dir / "2026-W47" / "index.html").is_file()
    if command[0] == "preview":  # previews are written apart from the published files
        assert (settings.output.dir / "preview" / "2026-W47" / "index.html").is_file()


def _without_root_file_access() -> None:
    """Runs in the child before exec: root reads every folder whatever its mode (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH), so drop both from the bounding set; the command then sees the folder as a user would."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unreadable_folder_is_one_warning(site: Path, command: list[str]) -> None:
    private = site / "posts" / "private"
    private.mkdir()
    (private / "2026-11-18-secret.md").write_text(bad_post("2026-11-18"), "utf-8")
    private.chmod(0)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "digest.cli", *command, "--site", str(site)],
            capture_output=True,
            text=True,
            env={**os.environ, "DIGEST_NOW": NOW, "DIGEST_SECRET": SECRET},
            preexec_fn=_without_root_file_access if os.geteuid() == 0 else None,
            check=False,
        )
    finally:
        private.chmod(0o755)
    check_output(
        done.returncode, done.stdout, done.stderr, "posts/private/", "cannot read the folder (Permission denied)"
    )


def test_an_unreadable_folder_above_posts_folders_is_a_notice(tmp_path: Path) -> None:
    (tmp_path / "_config.yml").write_text("title: Multi\nlang: en\ntimezone: Asia/Seoul\n", "utf-8")
    for lang in ("en", "ja"):
        (tmp_path / lang / "_posts").mkdir(parents=True)
        (tmp_path / lang / "_posts" / "2026-11-18-hello.md").write_text(bad_post("2026-11-18"), "utf-8")
    (tmp_path / "ja").chmod(0)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "digest.cli", "preview", "--week", "2026-W47", "--json", "--site", str(tmp_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "DIGEST_NOW": NOW},
            preexec_fn=_without_root_file_access if os.geteuid() == 0 else None,
            check=False,
        )
    finally:
        (tmp_path / "ja").chmod(0o755)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "notice: ja/: cannot read the folder: a _posts folder in it would not be read" in done.stderr
    assert [e["source"] for e in json.loads(done.stdout)["entries"]] == ["en/_posts/2026-11-18-hello.md"]
