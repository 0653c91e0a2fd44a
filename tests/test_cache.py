"""The cache in the state folder (digest/cache.py), through the real command in new processes: what a
change of a post, the config, a template or digest's version makes it render again, and a damaged,
foreign, read-only, full or shared cache file.

The tests mark what the cache holds: each rendered body in the file is replaced by `CACHED <key>`, and
the renderings made from the bodies (email, feeds, pages) are dropped, so the next run shows the mark for
every body it took from the cache and the real text for every one it rendered again.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from digest import pipeline
from digest.cache import Cache
from digest.config import load_settings
from tests.support_templater import png

NOW = "2026-11-23T09:00:00+09:00"  # week 2026-W47 has just ended
WEEK = "2026-W47"
POSTS = {
    "2026-11-10-earlier.md": ("Earlier week", "2026-11-10 10:00", "Earlier words."),
    "2026-11-16-alpha.md": ("Alpha", "2026-11-16 10:00", "Alpha words."),
    "2026-11-17-beta.md": ("Beta", "2026-11-17 10:00", "Beta words."),
    "2026-11-18-gamma.md": ("Gamma", "2026-11-18 10:00", "Gamma words."),
}


def post_text(title: str, date: str, body: str) -> str:
    return f"---\ntitle: {title}\ndate: {date}\ntags: [notes]\n---\n\n{body}\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "posts").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "digest.toml").write_text(
        "[site]\ntitle = 'Cache Notes'\nurl = 'https://cache.example.org/'\ntimezone = 'Asia/Seoul'\n"
        "[output]\ntemplates = 'templates'\n",
        "utf-8",
    )
    for name, (title, date, body) in POSTS.items():
        (root / "posts" / name).write_text(post_text(title, date, body), "utf-8")
    return root


def run(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "digest.cli", *args, "--site", str(site)]
    environ = os.environ | {"DIGEST_NOW": NOW, "DIGEST_SECRET": "a test secret for the cache tests, 32+ bytes"}
    return subprocess.run(command, env=environ | (env or {}), capture_output=True, text=True, timeout=120)


def preview(site: Path) -> subprocess.CompletedProcess[str]:
    done = run(site, "preview", "--week", WEEK)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def shown(site: Path) -> str:
    """Every file the preview wrote, as text."""
    folder = site / "_digest" / "preview"
    return "\n".join(p.read_text("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file())


def cache_file(site: Path) -> Path:
    return load_settings(site=site, env=dict(os.environ)).state_dir / "cache.sqlite3"


def rows(path: Path) -> dict[tuple[str, str], Any]:
    with sqlite3.connect(path) as db:
        return {(kind, key): pickle.loads(value) for kind, key, value in db.execute("SELECT * FROM pieces")}


def mark_bodies(path: Path) -> dict[str, str]:
    """Replace every rendered body in the cache by a mark and drop what was made from the bodies; returns
    {post file name: its mark}."""
    marks: dict[str, str] = {}
    with sqlite3.connect(path) as db:
        for key, value in db.execute("SELECT key, value FROM pieces WHERE kind = 'body'").fetchall():
            revision, (_, _, outline) = pickle.loads(value)
            name = Path(key.split("#")[0]).name
            marks[name] = f"CACHED {name}"
            body = (f"<p>{marks[name]}</p>", f"<p>{marks[name]}</p>", outline)
            db.execute(
                "UPDATE pieces SET value = ? WHERE kind = 'body' AND key = ?", (pickle.dumps((revision, body)), key)
            )
        db.execute("DELETE FROM pieces WHERE kind NOT IN ('body', 'post')")
    return marks


def fresh_output(site: Path, tmp_path: Path) -> dict[str, bytes]:
    """The preview files a run with no cache at all writes, for comparison."""
    folder = site / "_digest" / "preview"
    done = run(site, "preview", "--week", WEEK, env={"XDG_STATE_HOME": str(tmp_path / "nobody")})
    assert done.returncode == 0, done.stderr
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def output(site: Path) -> dict[str, bytes]:
    folder = site / "_digest" / "preview"
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def warnings(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if "cache" in line]


# -- what a change renders again ----------------------------------------------------------------------


def edit_beta(site: Path) -> None:
    (site / "posts" / "2026-11-17-beta.md").write_text(post_text("Beta", "2026-11-17 10:00", "Beta EDITED."), "utf-8")


def delete_beta(site: Path) -> None:
    (site / "posts" / "2026-11-17-beta.md").unlink()


def rename_beta(site: Path) -> None:
    (site / "posts" / "2026-11-17-beta.md").rename(site / "posts" / "2026-11-17-beta-renamed.md")


def new_site_url(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace("cache.example.org", "moved.example.org"), "utf-8")


def smtp_host(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8") + "[smtp]\nhost = 'mail.example.org'\n", "utf-8")


def nothing(site: Path) -> None:
    pass


def touch_every_post(site: Path) -> None:
    """New modification times, the same text: `touch`, a `git checkout` of another branch and back."""
    for path in (site / "posts").iterdir():
        os.utime(path, (path.stat().st_atime + 3600, path.stat().st_mtime + 3600))


def restore_posts(site: Path) -> None:
    """The folder restored from a copy (new inodes and change times; a fresh clone in a weekly CI job that
    keeps its state folder also gives new modification times)."""
    aside = site.parent / "posts-copy"
    shutil.copytree(site / "posts", aside)
    shutil.rmtree(site / "posts")
    shutil.move(aside, site / "posts")


ALPHA, BETA, GAMMA, EARLIER = (
    "2026-11-16-alpha.md",
    "2026-11-17-beta.md",
    "2026-11-18-gamma.md",
    "2026-11-10-earlier.md",
)
EVERY = [ALPHA, BETA, GAMMA, EARLIER]


@pytest.mark.parametrize(
    ("change", "rendered", "cached", "gone"),
    [
        # nothing changed: every body from the cache
        (nothing, {}, EVERY, []),
        # the files touched or restored, their text unchanged: every body from the cache
        (touch_every_post, {}, EVERY, []),
        (restore_posts, {}, EVERY, []),
        # one post edited: that one rendered again, the others from the cache
        (edit_beta, {BETA: "Beta EDITED."}, [ALPHA, GAMMA, EARLIER], []),
        # one post deleted: it is gone from the output and from the cache
        (delete_beta, {}, [ALPHA, GAMMA, EARLIER], [BETA]),
        # one post renamed: a new file (rendered, at its new URL); the old one is gone from the cache
        (rename_beta, {"2026-11-17-beta-renamed.md": "Beta words."}, [ALPHA, GAMMA, EARLIER], [BETA]),
        # a config change that moves every link: everything rendered again
        (new_site_url, {ALPHA: "Alpha words.", BETA: "Beta words.", EARLIER: "Earlier words."}, [], []),
        # a config change that no rendering reads: nothing rendered again
        (smtp_host, {}, EVERY, []),
    ],
    ids=["nothing", "touched", "restored", "edit", "delete", "rename", "config-site-url", "config-smtp"],
)
def test_a_change_renders_again_exactly_what_it_touches(
    site: Path, change: Any, rendered: dict[str, str], cached: list[str], gone: list[str]
) -> None:
    preview(site)
    path = cache_file(site)
    assert set(mark_bodies(path)) == set(EVERY)  # the earlier week is in the feeds: rendered and kept too
    change(site)
    done = preview(site)
    assert warnings(done) == []
    text = shown(site)
    for name in cached:
        assert f"CACHED {name}" in text, name
    for name, words in rendered.items():
        assert f"CACHED {name}" not in text and words in text, name
    if change is delete_beta:
        assert "Beta words." not in text and "/beta/" not in text
    if change is new_site_url:
        assert "CACHED" not in text and "moved.example.org" in text
    kept = {Path(key.split("#")[0]).name for kind, key in rows(path) if kind in ("post", "body")}
    for name in gone:
        assert f"CACHED {name}" not in text
        assert name not in kept  # the cache forgets a file that is gone
    assert set(rendered) | set(cached) <= kept


def test_unchanged_runs_write_the_same_files_as_a_run_without_cache(site: Path, tmp_path: Path) -> None:
    expected = fresh_output(site, tmp_path)
    preview(site)  # fills the cache
    assert output(site) == expected
    preview(site)  # everything from the cache
    assert output(site) == expected
    edit_beta(site)
    preview(site)
    changed = fresh_output(site, tmp_path / "again")
    preview(site)
    assert output(site) == changed


def test_a_template_change_renders_the_email_again_but_not_the_bodies(site: Path) -> None:
    preview(site)
    path = cache_file(site)
    with sqlite3.connect(path) as db:
        before = dict(db.execute("SELECT kind || ' ' || key, value FROM pieces").fetchall())
    (site / "templates" / "email.txt.j2").write_text(
        "TEMPLATE CHANGED {{ site.title }}\n{% for e in entries %}{{ e.title }}\n{% endfor %}{{ unsubscribe_url }}\n",
        "utf-8",
    )
    preview(site)
    assert "TEMPLATE CHANGED Cache Notes" in (site / "_digest" / "preview" / "email.txt").read_text("utf-8")
    with sqlite3.connect(path) as db:
        after = dict(db.execute("SELECT kind || ' ' || key, value FROM pieces").fetchall())
    bodies = [k for k in before if k.startswith("body ")]
    assert bodies and all(after[k] == before[k] for k in bodies)  # the bodies were not rendered again
    emails = [k for k in before if k.startswith("email ")]
    assert emails and all(after.get(k) != before[k] for k in emails)


def test_an_upgrade_empties_the_cache(site: Path) -> None:
    """A cache left by another version of digest is not trusted: every body is rendered again."""
    preview(site)
    path = cache_file(site)
    mark_bodies(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'an older digest' WHERE name = 'version'")
    done = preview(site)
    assert warnings(done) == []
    assert "CACHED" not in shown(site) and "Alpha words." in shown(site)


def test_a_replaced_image_gives_the_email_its_new_width(site: Path, tmp_path: Path) -> None:
    """An email gives a site image its own width, read from the file: a cached email must not outlive the
    file it was measured from (the text of the post is the same)."""
    png(site / "images" / "shot.png", 400, 100)
    (site / "posts" / "2026-11-19-photo.md").write_text(
        post_text("Photo", "2026-11-19 10:00", "![shot](/images/shot.png)"), "utf-8"
    )
    preview(site)
    email = site / "_digest" / "preview" / "email.html"
    assert 'width="400"' in email.read_text("utf-8")
    png(site / "images" / "shot.png", 250, 100)
    preview(site)
    assert 'width="250"' in email.read_text("utf-8") and 'width="400"' not in email.read_text("utf-8")
    assert output(site) == fresh_output(site, tmp_path)


def test_a_template_edited_back_to_its_old_size_and_time_is_seen(site: Path) -> None:
    """`cp -p`, `rsync -t` or a backup put back: the same size and modification time, other words."""
    css = site / "templates" / "email.css"
    css.write_text("body { background-color: #123456; }\n", "utf-8")
    preview(site)
    assert "#123456" in (site / "_digest" / "preview" / "email.html").read_text("utf-8")
    before = css.stat()
    css.write_text("body { background-color: #654321; }\n", "utf-8")
    os.utime(css, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (css.stat().st_size, css.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    preview(site)
    html = (site / "_digest" / "preview" / "email.html").read_text("utf-8")
    assert "#654321" in html and "#123456" not in html


def test_a_template_included_from_a_folder_two_levels_down_is_watched(site: Path, tmp_path: Path) -> None:
    part = site / "templates" / "parts" / "deep" / "foot.j2"
    part.parent.mkdir(parents=True)
    part.write_text("FOOTER-ONE", "utf-8")
    (site / "templates" / "email.txt.j2").write_text(
        "{% for e in entries %}{{ e.title }}\n{% endfor %}{% include 'parts/deep/foot.j2' %}\n{{ unsubscribe_url }}\n",
        "utf-8",
    )
    preview(site)
    text = site / "_digest" / "preview" / "email.txt"
    assert "FOOTER-ONE" in text.read_text("utf-8")
    part.write_text("FOOTER-TWO", "utf-8")
    preview(site)
    assert "FOOTER-TWO" in text.read_text("utf-8")
    assert output(site) == fresh_output(site, tmp_path)


def test_a_template_folder_checked_out_again_keeps_the_cache(site: Path) -> None:
    """The same template files with new times and inodes (a fresh clone in a weekly job that keeps its
    state folder): nothing is rendered again."""
    (site / "templates" / "email.css").write_text("body { color: #222222; }\n", "utf-8")
    preview(site)
    path = cache_file(site)
    with sqlite3.connect(path) as db:
        before = dict(db.execute("SELECT kind || ' ' || key, value FROM pieces WHERE kind = 'email'").fetchall())
    aside = site.parent / "templates-copy"
    shutil.copytree(site / "templates", aside)
    shutil.rmtree(site / "templates")
    shutil.move(aside, site / "templates")
    for path_ in (site / "templates").rglob("*"):
        os.utime(path_, (path_.stat().st_atime + 3600, path_.stat().st_mtime + 3600))
    preview(site)
    with sqlite3.connect(path) as db:
        after = dict(db.execute("SELECT kind || ' ' || key, value FROM pieces WHERE kind = 'email'").fetchall())
    assert before and after == before


def test_a_new_version_of_a_rendering_library_changes_the_code_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markdown, templates, CSS inlining: a library upgraded beside digest may render differently, so the
    cache made with the old one is emptied (as for a new digest)."""
    import digest.cache as cache_module

    lib = tmp_path / "lib"
    (lib / "fakerenderer").mkdir(parents=True)
    (lib / "fakerenderer" / "__init__.py").write_text("", "utf-8")
    (lib / "fakerenderer-1.0.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.setattr(cache_module, "RENDERING_LIBRARIES", ("fakerenderer",))
    cache_module.code_version.cache_clear()
    try:
        assert cache_module.library_folders() == [lib]
        first = cache_module.code_version()
        (lib / "fakerenderer-1.0.dist-info").rename(lib / "fakerenderer-1.1.dist-info")
        cache_module.code_version.cache_clear()
        assert cache_module.code_version() != first
    finally:
        cache_module.code_version.cache_clear()


def test_the_real_rendering_libraries_are_found_where_they_are_installed() -> None:
    import markdown_it
    import premailer

    from digest.cache import installed, library_folders

    folders = library_folders()
    for module in (markdown_it, premailer):
        assert Path(module.__file__ or "").resolve().parent.parent in [f.resolve() for f in folders]
    names = [name for folder in folders for name in installed(folder)]
    assert any(name.lower().startswith("markdown_it_py-") for name in names), names


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_a_value_is_kept_only_for_the_same_version(tmp_path: Path, version: str) -> None:
    path = tmp_path / "cache.sqlite3"
    with Cache(path, version="0.1.0") as first:
        first.put("body", "a.md#", ("r1", "kept"))
    with Cache(path, version=version) as second:
        assert second.get("body", "a.md#") == (("r1", "kept") if version == "0.1.0" else None)
        assert second.warnings == []


@pytest.mark.parametrize("ahead", [[], ["a"], ["a", "b", "missing"], [f"k{n}" for n in range(1200)] + ["a", "b"]])
def test_values_read_ahead_are_the_values_read_one_by_one(tmp_path: Path, ahead: list[str]) -> None:
    path = tmp_path / "cache.sqlite3"
    with Cache(path, version="1") as memo:
        memo.put("page", "a", b"first")
        memo.put("page", "b", ("second", 2))
        memo.put("item", "a", "another kind")
    with Cache(path, version="1") as memo:
        memo.put("page", "b", "put by this run")  # what a run put wins over what it read ahead
        memo.prefetch("page", ahead)
        assert [memo.get("page", k) for k in ("a", "b", "missing")] == [b"first", "put by this run", None]
        assert memo.get("page", "a") == b"first"  # asked twice
        assert memo.get("item", "a") == "another kind"


# -- a cache file digest cannot use ---------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 100)


def foreign_sqlite(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")


def damaged(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # the header survives, the pages do not
    path.write_bytes(bytes(data))


def foreign_values(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE pieces SET value = ?", (b"not a pickle",))


@pytest.mark.parametrize("spoil", [garbage, foreign_sqlite, damaged, foreign_values], ids=lambda f: f.__name__)
def test_a_spoiled_cache_is_rebuilt_with_at_most_one_warning(site: Path, tmp_path: Path, spoil: Any) -> None:
    expected = fresh_output(site, tmp_path)
    preview(site)
    path = cache_file(site)
    spoil(path)
    done = preview(site)
    assert output(site) == expected
    if spoil is foreign_values:  # rows it cannot read are misses, written anew: nothing to say
        assert warnings(done) == []
    else:
        assert len(warnings(done)) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert str(path) in done.stderr
    again = preview(site)  # the file was rebuilt: a clean run
    assert warnings(again) == [] and output(site) == expected
    assert {kind for kind, _ in rows(path)} >= {"post", "body"}
    if spoil is foreign_sqlite:
        with sqlite3.connect(path) as db:
            assert "photos" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}


# -- a state folder that cannot hold it, and two processes at once ----------------------------------------


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], check=False)


def tmpfs(path: Path, options: str, mounts: list[Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    mounts.append(path)


@pytest.mark.parametrize("options", ["size=16k", "ro"], ids=["full", "read-only"])
def test_a_state_folder_that_cannot_hold_the_cache_warns_once(
    site: Path, tmp_path: Path, mounts: list[Path], options: str
) -> None:
    expected = fresh_output(site, tmp_path)
    state = tmp_path / "state"
    tmpfs(state, options + ",mode=0700", mounts)
    with (site / "digest.toml").open("a", encoding="utf-8") as config:
        config.write(f"[state]\ndir = '{state}'\n")
    for _ in range(2):
        done = preview(site)
        assert output(site) == expected
        assert len(warnings(done)) == 1, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_directory_in_the_way_warns_once(site: Path, tmp_path: Path) -> None:
    expected = fresh_output(site, tmp_path)
    path = cache_file(site)
    path.mkdir(parents=True)
    done = preview(site)
    assert output(site) == expected
    assert len(warnings(done)) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_processes_at_once_share_the_cache_unharmed(site: Path, tmp_path: Path) -> None:
    """Previews and a publish at the same moment (the author previews while the service publishes): every
    one succeeds and the file stays whole."""
    expected = fresh_output(site, tmp_path)
    environ = os.environ | {"DIGEST_NOW": NOW, "DIGEST_SECRET": "a test secret for the cache tests, 32+ bytes"}
    base = [sys.executable, "-m", "digest.cli"]
    commands = [[*base, "preview", "--week", WEEK, "--site", str(site)] for _ in range(3)]
    commands.append([*base, "publish", "--week", WEEK, "--site", str(site)])
    for _ in range(2):  # an empty cache, then a full one
        started = [subprocess.Popen(c, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
        for process in started:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert b"Traceback" not in err and b"cache" not in err, err
        with sqlite3.connect(cache_file(site)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert output(site) == expected
    preview(site)
    assert output(site) == expected


def test_files_made_from_cached_parts_are_the_files_made_without_a_cache(site: Path, tmp_path: Path) -> None:
    """Feeds are written from each entry's text kept by an earlier run: byte for byte what feedgen writes
    for the whole feed, on the run that fills the cache and on the runs that read it."""
    settings = load_settings(site=site, env=dict(os.environ))
    now_at = datetime.fromisoformat(NOW)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, WEEK))
    assert len(result.history[""]) == 2  # two weeks with posts: feeds of two entries
    whole = pipeline.site_files(result, settings)
    for _ in range(3):  # every entry new (the whole feed cut into entries), then every one kept
        with Cache(tmp_path / "cache.sqlite3") as memo:
            assert pipeline.site_files(result, settings, memo=memo) == whole
    edit_beta(site)  # one entry new: written alone, the other kept
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, WEEK))
    whole = pipeline.site_files(result, settings)
    assert b"Beta EDITED." in whole["atom.xml"]
    with Cache(tmp_path / "cache.sqlite3") as memo:
        assert pipeline.site_files(result, settings, memo=memo) == whole


@pytest.mark.parametrize(
    "spelling",
    [
        ["--config", "digest.toml"],
        ["--config", "./digest.toml"],
        ["--site", "."],
        ["--config", "../site/digest.toml"],
        ["--site", "SITE"],
    ],
    ids=["config", "config-dot", "site-dot", "config-up", "same-as-before"],
)
def test_the_same_config_named_another_way_is_served_from_the_cache(site: Path, spelling: list[str]) -> None:
    """A cron job names the config by its full path, the author types a relative one in the site folder: the
    same config, so the same cache (a key on the path as typed rendered every issue again)."""
    preview(site)
    path = cache_file(site)
    before = rows(path)
    assert {kind for kind, _ in before} >= {"body", "item", "page"}
    named = [str(site) if word == "SITE" else word for word in spelling]
    command = [sys.executable, "-m", "digest.cli", *named, "preview", "--week", WEEK]
    environ = os.environ | {"DIGEST_NOW": NOW, "DIGEST_SECRET": "a test secret for the cache tests, 32+ bytes"}
    done = subprocess.run(command, env=environ, cwd=site, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # nothing rendered again: every piece is still the one the first run kept, under the same key
    assert sorted(key for key, value in rows(path).items() if before.get(key) != value) == []


# -- what a run served from the cache does not import ---------------------------------------------------

RENDERERS = ("jinja2", "lxml", "feedgen", "premailer", "markdown_it", "email_validator", "smtplib", "sqlalchemy")
# nor what only other commands or a cold collect of many posts need
UNUSED = (
    "digest.config.subscribers",
    "digest.config.plainlist",
    "multiprocessing",
    "concurrent.futures",
    "rich",
    "email",
    "digest.pipeline.readers",
    "digest.pipeline.delivery",
    "digest.pipeline.service",
    "digest.records",
)


def modules_of(site: Path, *args: str) -> set[str]:
    """The modules a command in a new process has imported when it exits: each package and each module."""
    script = (
        "import json, sys\nfrom digest.cli import main\n"
        f"sys.argv = ['digest', *{list(args)!r}, '--site', {str(site)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    environ = os.environ | {"DIGEST_NOW": NOW, "DIGEST_SECRET": "a test secret for the cache tests, 32+ bytes"}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = set(json.loads(done.stdout.splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


@pytest.mark.parametrize("args", [("preview", "--week", WEEK), ("preview", "--week", WEEK, "--json")])
def test_a_preview_from_the_cache_imports_no_renderer(site: Path, args: tuple[str, ...]) -> None:
    """Start-up is most of a preview that finds everything in the cache: it imports none of the libraries
    that render (the first run, which renders, imports them all)."""
    first = modules_of(site, *args)
    assert set(RENDERERS) - {"smtplib", "sqlalchemy", "email_validator"} <= first
    again = modules_of(site, *args)
    assert sorted(again & set(RENDERERS)) == []
    assert sorted(again & set(UNUSED)) == []
    assert output(site) == fresh_output(site, site.parent)


def test_a_new_pelican_post_renders_again_only_the_posts_that_link_to_others(tmp_path: Path) -> None:
    """Pelican's `{filename}` links move with the files they name, so a post with one is rendered again
    when any file changes; a post without one is not, braces in its code or not (every Pelican post was, at
    each new post)."""
    root = tmp_path / "pelican"
    (root / "content").mkdir(parents=True)
    (root / "pelicanconf.py").write_text(
        "SITENAME = 'Cache Pelican'\nSITEURL = 'https://pelican.example.org'\nPATH = 'content'\n"
        "TIMEZONE = 'Asia/Seoul'\nARTICLE_URL = 'posts/{slug}/'\n",
        "utf-8",
    )

    def article(name: str, title: str, date: str, body: str) -> None:
        (root / "content" / name).write_text(f"Title: {title}\nDate: {date}\n\n{body}\n", "utf-8")

    article("plain.md", "Plain", "2026-11-16 10:00", "Plain words | cell |.\n\n    fn main() { run(); }")
    article("linking.md", "Linking", "2026-11-17 10:00", "See [plain]({filename}plain.md).")
    article("old-style.md", "Old style", "2026-11-18 10:00", "See [plain](|filename|plain.md).")
    preview(root)
    assert set(mark_bodies(cache_file(root))) == {"plain.md", "linking.md", "old-style.md"}
    article("new.md", "New", "2026-11-19 10:00", "New words.")
    text = (preview(root), shown(root))[1]
    assert "CACHED plain.md" in text
    assert "CACHED linking.md" not in text and "CACHED old-style.md" not in text
    assert text.count('href="https://pelican.example.org/posts/plain/"') >= 2  # both links resolved again
