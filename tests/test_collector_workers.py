"""Rendering in helper processes (digest.collector.workers): the same entries, byte for byte, as the serial
path, from the command line's single thread (fork) and from a service's worker thread (forkserver);
nothing started for a few posts or when the bodies are kept; a helper that dies costs nothing but time."""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from digest.cache import Cache
from digest.collector import collect, workers
from digest.collector import entries as entries_module
from digest.collector import reader as reader_module
from digest.models import Collection, Site
from tests.conftest import state_env
from tests.support_collector import RUNNING_LOG, SEOUL, WEEKLY_NEWS, make_site, post

NOW_AT = datetime(2021, 4, 1, tzinfo=SEOUL)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _site(root: Path, count: int = 40) -> Site:
    files: dict[str, str | bytes] = {
        f"_posts/2021-03-{1 + i % 28:02d}-note-{i}.md": post(
            f"Note {i}",
            f"2021-03-{1 + i % 28:02d} {i % 24:02d}:00",
            extra="tags: [a, b]\n" if i % 2 else "summary: A *given* summary\n",
            body=f"Intro {i} with https://example.org/{i} and [a link](../x-{i}.html).\n\n## Part\n\n- one\n- two\n",
        )
        for i in range(count)
    }
    files["_posts/2021-03-27-news.md"] = WEEKLY_NEWS
    files["_posts/2021-03-20-log.md"] = RUNNING_LOG
    files["_posts/2021-03-29-links.md"] = post(
        "Links", "2021-03-29", body="See {% post_url 2021-03-27-news %} and {{ site.baseurl }}/a.png.\n"
    )
    return make_site(root, files)


def _fresh() -> None:
    """Forget what this process read and rendered, as a new process would."""
    entries_module._BODIES.clear()
    entries_module._SOURCES.clear()
    entries_module._HANDED.clear()
    reader_module._CACHE.clear()


def _serial(site: Site, monkeypatch: pytest.MonkeyPatch) -> Collection:
    _fresh()
    with monkeypatch.context() as patch:
        patch.setattr(workers, "START", 10**9)
        return collect(site, NOW_AT)


def _helped(monkeypatch: pytest.MonkeyPatch, chunk: int = 3) -> None:
    monkeypatch.setattr(workers, "START", 1)
    monkeypatch.setattr(workers, "CHUNK", chunk)
    monkeypatch.setattr(workers, "cpus", lambda: 2)  # helpers on a machine of one CPU too


def test_helpers_render_the_same_entries_as_the_serial_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _site(tmp_path)
    serial = _serial(site, monkeypatch)
    _fresh()
    _helped(monkeypatch)
    helped = collect(site, NOW_AT)
    assert len(helped.entries) == len(serial.entries) > 40
    assert repr(helped) == repr(serial)
    assert any("<ul>" in e.body_html for e in helped.entries)
    assert any("example.org" in e.body_html for e in helped.entries)


def test_helpers_started_from_a_service_thread_use_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weekly service collects in a worker thread: the helpers come from a forkserver, not a fork."""
    site = _site(tmp_path, 12)
    serial = _serial(site, monkeypatch)
    _fresh()
    _helped(monkeypatch, chunk=5)
    results: list[Collection] = []
    contexts: list[str] = []
    other = threading.Event()
    busy = threading.Thread(target=other.wait)  # the scheduler's own thread, still running
    busy.start()

    def job() -> None:
        contexts.append(workers._context().get_start_method())
        results.append(collect(site, NOW_AT))

    try:
        worker = threading.Thread(target=job)
        worker.start()
        worker.join(timeout=120)
    finally:
        other.set()
        busy.join()
    assert contexts == ["forkserver"]
    assert [repr(r) for r in results] == [repr(serial)]


def _count_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of posts handed to the helpers at each start of theirs, appended as they start."""
    started: list[int] = []
    start = workers.Helpers._start

    def counted(self: workers.Helpers) -> None:
        started.append(len(self.pending))
        start(self)

    monkeypatch.setattr(workers.Helpers, "_start", counted)
    return started


def test_a_warm_collect_hands_nothing_to_helpers_and_keeps_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(tmp_path, 12)
    serial = _serial(site, monkeypatch)
    _fresh()
    _helped(monkeypatch)
    started = _count_starts(monkeypatch)
    (tmp_path / "state").mkdir()
    with Cache(tmp_path / "state" / "cache.sqlite3") as memo:
        first = collect(site, NOW_AT, memo=memo)
    assert started == [1]
    assert repr(first) == repr(serial)
    _fresh()
    started.clear()
    with Cache(tmp_path / "state" / "cache.sqlite3") as memo:
        again = collect(site, NOW_AT, memo=memo)  # a new process, every body in the cache
    assert repr(again) == repr(serial)
    assert started == []


def _die_in_a_helper(parent: int, value: int) -> int:
    if os.getpid() != parent and value == 7:
        os._exit(3)  # killed mid-chunk, as by the OOM killer
    return value * 2


def test_a_helper_that_dies_leaves_its_chunk_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "START", 4)
    monkeypatch.setattr(workers, "CHUNK", 4)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    helpers = workers.Helpers(_die_in_a_helper)
    for value in range(20):
        helpers.add(os.getpid(), value)
    assert helpers.results() == [v * 2 for v in range(20)]
    assert helpers.pool is None


def test_few_posts_start_no_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    helpers = workers.Helpers(_die_in_a_helper)
    for value in range(workers.START - 1):
        helpers.add(os.getpid(), value)
    assert helpers.pool is None
    assert helpers.results() == [v * 2 for v in range(workers.START - 1)]


@pytest.mark.parametrize("name", ["solus", "wonwizard"])
def test_helpers_on_a_real_blog(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.config import load_settings

    root = SHARED / "corpus" / name
    if not root.is_dir():
        pytest.skip(f"corpus {name} not available")
    site = load_settings(site=root, env=state_env()).site
    now_at = datetime(2030, 1, 1, tzinfo=SEOUL)
    _fresh()
    monkeypatch.setattr(workers, "START", 10**9)
    serial = collect(site, now_at)
    _fresh()
    _helped(monkeypatch, chunk=16)
    assert repr(collect(site, now_at)) == repr(serial)


def _pid(value: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("in_thread", [False, True])
def test_the_jobs_run_in_other_processes(in_thread: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a silent fallback: with helpers wanted, the jobs really leave this process (forked from the
    main thread, from a forkserver in a thread), and come back in the order given."""
    monkeypatch.setattr(workers, "START", 4)
    monkeypatch.setattr(workers, "CHUNK", 2)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    got: list[list[int]] = []

    def run() -> None:
        helpers = workers.Helpers(_pid)
        for value in range(10):
            helpers.add(value)
        got.append(helpers.results())

    if in_thread:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=120)
    else:
        run()
    assert len(got[0]) == 10
    assert os.getpid() not in got[0][:8]  # the first chunks went out; a short tail may too


@pytest.mark.parametrize("with_cache", [False, True])
def test_a_build_renders_what_it_shows_with_helpers_as_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_cache: bool
) -> None:
    """The weekly cycle's build renders every body its issues and feeds show in one call: with many to
    render (a first run without the cache), helpers render them, and the issues are the same."""
    from digest import pipeline
    from digest.config import load_settings

    _site(tmp_path)
    (tmp_path / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\nsource = '_posts'\n")
    settings = load_settings(site=tmp_path, env=state_env())
    week = pipeline.select_week(settings, NOW_AT, "2021-W12")

    def built() -> pipeline.Build:
        if not with_cache:
            return pipeline.build(settings, NOW_AT, week)
        state = tmp_path / f"state-{workers.START}"
        state.mkdir(exist_ok=True)
        with Cache(state / "cache.sqlite3") as memo:
            return pipeline.build(settings, NOW_AT, week, memo=memo)

    _fresh()
    monkeypatch.setattr(workers, "START", 10**9)
    serial = built()
    _fresh()
    _helped(monkeypatch, chunk=4)
    helped = built()
    assert repr(helped.issues) == repr(serial.issues)
    assert repr(helped.history) == repr(serial.history)
    assert sum(len(i.entries) for i in helped.history[""]) > 20
    assert all(e.body_html for i in helped.history[""] for e in i.entries)


def test_a_second_collect_in_the_same_process_reads_nothing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a memo, what the helpers read is kept in this process: the next collect (a long-running
    process) hands them nothing; after an edit, the edited post is read again, and the post that links
    to others rendered again (its links may have moved)."""
    site = _site(tmp_path, 12)
    _fresh()
    _helped(monkeypatch)
    started = _count_starts(monkeypatch)
    first = collect(site, NOW_AT)
    assert started == [1]
    started.clear()
    assert repr(collect(site, NOW_AT)) == repr(first)
    assert started == []
    edited = tmp_path / "_posts/2021-03-27-news.md"
    edited.write_text(edited.read_text("utf-8").replace("토마토", "감자"), "utf-8")
    again = collect(site, NOW_AT)
    assert started == [1, 1]  # the edited post read, the linking post rendered
    assert any("감자" in e.body_html for e in again.entries)


def _helpers_in_a_daemon(conn: Any) -> None:
    helpers = workers.Helpers(_pid)
    for value in range(6):
        helpers.add(value)
    conn.send(helpers.results())


def test_a_process_that_may_have_no_children_does_the_work_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemonic process (a worker of someone else's multiprocessing pool) may not start helpers."""
    monkeypatch.setattr(workers, "START", 2)
    monkeypatch.setattr(workers, "CHUNK", 2)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    daemon = context.Process(target=_helpers_in_a_daemon, args=(send,), daemon=True)
    daemon.start()
    got = receive.recv()
    daemon.join(timeout=60)
    assert got == [daemon.pid] * 6
