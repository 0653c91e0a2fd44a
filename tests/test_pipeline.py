"""pipeline.build: the selected week's issue plus the recent issues the feeds and the archive list."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import cache, collector, pipeline
from digest.config import load_settings
from digest.models import Entry
from digest.pipeline import building
from tests.conftest import state_env
from tests.support_collector import FROST, HERON, MUSHROOMS, POND_LOG

SEOUL = ZoneInfo("Asia/Seoul")


def post(folder: Path, day: str, title: str) -> None:
    (folder / f"{day}-{title}.md").write_text(f"---\ntitle: {title}\ndate: {day} 10:00\n---\n\n{title} 본문.\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    posts = tmp_path / "posts"
    posts.mkdir()
    (tmp_path / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 3\n")
    for day, title in [
        ("2026-10-05", "old"),  # 2026-W41: outside a 3-week window ending in W47
        ("2026-11-04", "w45"),
        ("2026-11-12", "w46-a"),
        ("2026-11-13", "w46-b"),
        ("2026-11-17", "w47"),
        ("2026-11-24", "w48"),  # after the selected week
    ]:
        post(posts, day, title)
    return tmp_path


@pytest.mark.parametrize(
    ("now", "week", "labels", "entries"),
    [
        # the feeds hold the last 3 weeks with posts that have ended, whatever week is built
        ("2026-12-01", "2026-W47", ["2026-W48", "2026-W47", "2026-W46"], ["w47"]),
        ("2026-12-01", "2026-W46", ["2026-W48", "2026-W47", "2026-W46"], ["w46-b", "w46-a"]),
        ("2026-12-01", "2026-W44", ["2026-W48", "2026-W47", "2026-W46"], []),
        ("2026-12-01", "this", ["2026-W48", "2026-W47", "2026-W46"], []),  # W49 has no posts: no placeholder
        # W48 is still running on 2026-11-25: "last" stops at W47, "this" shows W48 too
        ("2026-11-25", "last", ["2026-W47", "2026-W46", "2026-W45"], ["w47"]),
        ("2026-11-25", "this", ["2026-W48", "2026-W47", "2026-W46"], ["w48"]),
        # a blog quiet for half a year keeps its last issues
        ("2027-06-01", "last", ["2026-W48", "2026-W47", "2026-W46"], []),
    ],
)
def test_history_is_the_last_weeks_with_posts(
    site: Path, now: str, week: str, labels: list[str], entries: list[str]
) -> None:
    settings = load_settings(site=site, env=state_env())
    now_at = datetime.fromisoformat(now).replace(hour=12, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, week))
    assert [i.week.label for i in result.history[""]] == labels
    assert [e.title for e in result.issue.entries] == entries


def test_a_quiet_blog_is_looked_up_further_back(site: Path) -> None:
    """The first window (feed_issues weeks) holds nothing; the look-back finds the older posts."""
    (site / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 10\n")
    settings = load_settings(site=site, env=state_env())
    now_at = datetime(2029, 3, 1, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, "last"))
    assert [i.week.label for i in result.history[""]] == ["2026-W48", "2026-W47", "2026-W46", "2026-W45", "2026-W41"]
    assert sorted(e.title for e in result.pools[""]) == ["old", "w45", "w46-a", "w46-b", "w47", "w48"]


def test_posts_after_now_are_not_in_any_issue(site: Path) -> None:
    settings = load_settings(site=site, env=state_env())
    now_at = datetime(2026, 11, 17, 12, 0, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, "this"))
    assert [e.title for e in result.issue.entries] == ["w47"]
    assert all(e.published_at <= now_at for i in result.history[""] for e in i.entries)


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (("2026-W40",), "2026-W40"),
        (("this",), "2026-W49"),
        ((None, "2026-10-01", "2026-11-20"), "2026-10-01--2026-11-20"),
    ],
)
def test_previews_never_change_the_published_files(site: Path, args: tuple[str | None, ...], label: str) -> None:
    settings = load_settings(site=site, env=state_env())
    now_at = datetime(2026, 12, 1, 12, tzinfo=SEOUL)
    pipeline.publish(settings, now_at, pipeline.select_week(settings, now_at, "last"))
    out = settings.output.dir
    published = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = pipeline.preview(settings, now_at, pipeline.select_week(settings, now_at, *args))
    assert result.folder == out / "preview" and result.issue.week.label == label
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "preview" not in p.parts} == published
    # the preview's own feeds list each entry once, whatever the window
    feed = json.loads(result.files["feed.json"].read_text("utf-8"))
    ids = [e.id for i in result.build.history[""] for e in i.entries]
    assert len(ids) == len(set(ids)) and len(feed["items"]) == 3


def test_feed_ids_and_dates_stay_put_as_weeks_go_by(site: Path) -> None:
    settings = load_settings(site=site, env=state_env())
    feeds = []
    for day in (1, 8, 15):  # three weekly runs, no new posts: nothing moves
        now_at = datetime(2026, 12, day, 9, tzinfo=SEOUL)
        result = pipeline.publish(settings, now_at, pipeline.select_week(settings, now_at, "last"))
        feeds.append(pipeline.site_files(result, settings)["feed.json"])
    assert feeds[0] == feeds[1] == feeds[2]
    items = json.loads(feeds[0])["items"]
    newest = max(datetime.fromisoformat(i["date_modified"]) for i in items)
    assert newest == datetime(2026, 11, 24, 10, tzinfo=SEOUL)  # the newest entry, never the clock


def test_tag_feeds_hold_only_their_tags_entries(site: Path) -> None:
    (site / "posts" / "2026-11-18-tagged.md").write_text(
        "---\ntitle: Tagged\ndate: 2026-11-18 10:00\ntags: [Rust, 여행]\ncategories: news\n---\n\nbody\n"
    )
    settings = load_settings(site=site, env=state_env())
    now_at = datetime(2026, 12, 1, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, "2026-W47"))
    assert not any(name.startswith("tags/") for name in pipeline.site_files(result, settings))
    settings = replace(settings, output=replace(settings.output, tag_feeds=True))
    files = pipeline.site_files(result, settings)
    tagged = sorted(name for name in files if name.startswith("tags/"))
    assert tagged == [
        f"tags/{slug}/{name}" for slug in ("news", "rust", "여행") for name in ("atom.xml", "feed.json", "rss.xml")
    ]
    feed = json.loads(files["tags/rust/feed.json"])
    assert feed["title"].endswith("· Rust")
    assert [item["id"].rsplit(":", 1)[-1] for item in feed["items"]] == ["/newsletter/2026-W47"]
    assert "Tagged" in feed["items"][0]["content_html"] and "w47" not in feed["items"][0]["content_html"]
    everything = json.loads(files["feed.json"])
    assert "w47" in everything["items"][1]["content_html"]  # W48 is newer


@pytest.mark.parametrize("week", ["2026-W41", "2026-W45", "2026-W47", "2026-W40"])
def test_a_preview_of_an_older_week_reads_that_week_and_the_feeds_weeks_only(site: Path, week: str) -> None:
    """The preview's build (one language) leaves out the posts between an old week and the feeds' weeks,
    and shows the same issue and history as a build of every language over the whole span."""
    settings = load_settings(site=site, env=state_env())
    now_at = datetime(2026, 12, 1, 12, tzinfo=SEOUL)  # the feeds show W48, W47 and W46
    chosen = pipeline.select_week(settings, now_at, week)
    whole = pipeline.build(settings, now_at, chosen)
    shown = pipeline.build(settings, now_at, chosen, languages=[""])
    assert shown.issue == whole.issue and shown.history == whole.history
    titles = sorted(e.title for e in shown.pools[""])
    if week == "2026-W41":  # w45 lies between the week and the feeds' weeks: not read
        assert titles == ["old", "w46-a", "w46-b", "w47", "w48"]
        assert [e.title for e in shown.issue.entries] == ["old"]


class FailingRecorder(cache.Recorder):
    """A helper process that breaks while it renders."""

    def put(self, kind: str, key: str, value: object) -> None:
        raise RuntimeError("the helper broke")


def published(site: Path, state: Path) -> dict[str, bytes]:
    settings = replace(load_settings(site=site, env=state_env()), state_dir=state)
    now_at = datetime(2026, 12, 1, 12, tzinfo=SEOUL)
    pipeline.publish(settings, now_at, pipeline.select_week(settings, now_at, "last"))
    out = settings.output.dir
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    shutil.rmtree(out)
    return files


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this system")
@pytest.mark.parametrize("helper", ["renders half", "breaks"])
def test_a_rebuild_in_two_processes_writes_the_files_of_one(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: str
) -> None:
    """A cold rebuild of a long history renders half of it in a forked helper: the same bytes as one process
    writes, and the same when the helper fails; run again, it renders nothing (everything was kept)."""
    posts = site / "posts"
    for week in range(30):
        post(posts, (datetime(2026, 5, 4) + timedelta(weeks=week)).strftime("%Y-%m-%d"), f"week-{week}")
    (site / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 40\n")
    rendered: list[int] = []
    real = collector.render_entries

    def counted(entries: Sequence[Entry], memo: object = None, **options: bool) -> tuple[Entry, ...]:
        rendered.append(len(entries))
        return real(entries, memo, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(collector, "render_entries", counted)
    monkeypatch.setattr(building, "_cpus", lambda: 1)
    alone = published(site, tmp_path / "alone")
    assert len([name for name in alone if name.endswith("/index.html")]) == 30  # W19 to W48
    in_one = sum(rendered)
    rendered.clear()
    assert published(site, tmp_path / "alone") == alone
    again_in_one = sum(rendered)  # the week's own entries, asked of the cache
    rendered.clear()
    monkeypatch.setattr(building, "_cpus", lambda: 2)
    monkeypatch.setattr(building, "PARALLEL_MIN_ISSUES", 4)
    if helper == "breaks":
        monkeypatch.setattr(cache, "Recorder", FailingRecorder)
    assert published(site, tmp_path / "two") == alone
    # this process rendered the newer half (more entries than the older half here) when the helper worked
    assert sum(rendered) < in_one * 0.7 if helper == "renders half" else sum(rendered) >= in_one
    rendered.clear()
    assert published(site, tmp_path / "two") == alone
    assert sum(rendered) == again_in_one < in_one / 10


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this system")
def test_a_rebuild_in_two_processes_starts_no_helper_pool_of_its_own(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two processes of a rebuild render their halves themselves: a pool of collector helpers started
    beside the rebuild's own pool (whose threads are running by then) comes from a forkserver, an
    interpreter started anew, which made bench_publish's full rebuild half a second slower."""
    from digest.collector import entries as entries_module
    from digest.collector import reader as reader_module
    from digest.collector import workers

    posts = site / "posts"
    for week in range(30):
        post(posts, (datetime(2026, 5, 4) + timedelta(weeks=week)).strftime("%Y-%m-%d"), f"week-{week}")
    (site / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 40\n")
    monkeypatch.setattr(building, "_cpus", lambda: 1)
    alone = published(site, tmp_path / "alone")
    monkeypatch.setattr(building, "_cpus", lambda: 2)
    monkeypatch.setattr(building, "PARALLEL_MIN_ISSUES", 4)
    monkeypatch.setattr(workers, "START", 4)  # many bodies, at this scale
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    methods: list[str] = []
    context = workers._context

    def recorded() -> object:
        made = context()
        methods.append(made.get_start_method())  # type: ignore[attr-defined]
        return made

    monkeypatch.setattr(workers, "_context", recorded)
    for kept in (entries_module._BODIES, entries_module._SOURCES, entries_module._HANDED, reader_module._CACHE):
        kept.clear()  # what this process read and rendered: forgotten, as by a new process
    assert published(site, tmp_path / "two") == alone
    assert "forkserver" not in methods


# -- running logs: one file, dated when it was last added to, holding items from months before -----------


@pytest.fixture
def log_site(tmp_path: Path) -> Path:
    root = tmp_path / "pond"
    posts = root / "posts"
    posts.mkdir(parents=True)
    (root / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 3\n")
    (posts / "2026-11-18-field-notes.md").write_text(POND_LOG, "utf-8")  # no date: the file name's
    for day, title in [("2026-10-14", "w42"), ("2026-11-04", "w45"), ("2026-11-24", "w48")]:
        post(posts, day, title)
    return root


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=SEOUL)


def _output(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("state", ["one state folder", "a fresh state folder each run"])
@pytest.mark.parametrize(
    "runs",
    [
        # the week of the log's oldest item, previewed a week apart (the week then falls before the feeds')
        [("2026-11-23", "2026-W38", [FROST]), ("2026-11-30", "2026-W38", [FROST])],
        [("2026-11-30", "2026-W38", [FROST]), ("2027-06-01", "2026-W38", [FROST])],
        [("2026-11-23", "2026-W40", [MUSHROOMS]), ("2027-06-01", "2026-W40", [MUSHROOMS])],
        # the weekly preview first, then older weeks, then the newest again
        [
            ("2026-11-23", "last", [HERON]),
            ("2026-11-30", "2026-W38", [FROST]),
            ("2026-12-07", "2026-W40", [MUSHROOMS]),
            ("2026-12-07", "2026-W47", [HERON]),
        ],
    ],
)
def test_a_preview_shows_a_running_logs_items_of_any_week(
    log_site: Path, tmp_path: Path, state: str, runs: list[tuple[str, str, list[str]]]
) -> None:
    """The log is dated 2026-11-18 (its file name): an item of September is in its week's preview whenever
    the preview runs, whatever an earlier run kept in the state folder, and the preview's files are the
    ones a run with nothing kept writes."""
    settings = load_settings(site=log_site, env=state_env())
    for n, (day, week, titles) in enumerate(runs):
        folder = tmp_path / ("state" if state == "one state folder" else f"state-{n}")
        now_at = _at(day)
        chosen = pipeline.select_week(settings, now_at, week)
        result = pipeline.preview(replace(settings, state_dir=folder), now_at, chosen)
        assert [e.title for e in result.issue.entries] == titles
        assert all(e.body_html for e in result.issue.entries)
        shown = _output(result.folder)
        fresh = pipeline.preview(replace(settings, state_dir=tmp_path / f"nothing-kept-{n}"), now_at, chosen)
        assert _output(fresh.folder) == shown


LOG_WEEKS = {
    "2026-11-23": ["2026-W47", "2026-W45", "2026-W42", "2026-W40", "2026-W38"],
    "2026-11-30": ["2026-W48", "2026-W47", "2026-W45", "2026-W42", "2026-W40", "2026-W38"],
    "2026-12-28": ["2026-W48", "2026-W47", "2026-W45", "2026-W42", "2026-W40", "2026-W38"],
    "2027-06-01": ["2026-W48", "2026-W47", "2026-W45", "2026-W42", "2026-W40", "2026-W38"],
}


@pytest.mark.parametrize("state", ["one state folder", "a fresh state folder each run"])
@pytest.mark.parametrize(
    "days", [["2026-12-28"], ["2026-11-23", "2026-12-28"], ["2026-11-23", "2026-11-30", "2027-06-01"]]
)
def test_the_feeds_and_the_archive_keep_a_running_logs_old_items(
    log_site: Path, tmp_path: Path, state: str, days: list[str]
) -> None:
    """The feeds list the last feed_issues weeks with posts (10: every week here), the log's items of
    September and October included, on every weekly publish; with the state folder of earlier publishes
    the files are the ones a publish with nothing kept writes."""
    (log_site / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 10\n")
    settings = load_settings(site=log_site, env=state_env())
    out = settings.output.dir
    for n, day in enumerate(days):
        folder = tmp_path / ("state" if state == "one state folder" else f"state-{n}")
        now_at = _at(day)
        result = pipeline.publish(replace(settings, state_dir=folder), now_at, pipeline.select_week(settings, now_at))
        labels = LOG_WEEKS[day]
        assert [i.week.label for i in result.history[""]] == labels
        files = _output(out)
        for label in labels:
            assert f"{label}/index.html" in files
            assert f"/newsletter/{label}<".encode() in files["atom.xml"]
            assert f'href="{label}/index.html"'.encode() in files["index.html"]
        assert FROST.encode() in files["2026-W38/index.html"] and MUSHROOMS.encode() in files["2026-W40/index.html"]
        shutil.rmtree(out)
        pipeline.publish(replace(settings, state_dir=tmp_path / f"nothing-kept-{n}"), now_at, result.week)
        assert _output(out) == files
        shutil.rmtree(out)


@pytest.mark.parametrize(
    ("week", "titles"),
    [
        ("last", ["w48", HERON, "w45"]),
        ("2026-W38", ["w48", HERON, "w45", FROST]),
        ("2026-W42", ["w48", HERON, "w45", "w42"]),
    ],
)
def test_a_running_log_is_read_whole_and_older_posts_are_not(log_site: Path, week: str, titles: list[str]) -> None:
    """The log is one file, read whole by every run; the posts between the previewed week and the feeds'
    weeks are still not read (w42 here, unless it is the week asked for)."""
    settings = load_settings(site=log_site, env=state_env())
    now_at = _at("2026-11-30")
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, week), languages=[""])
    assert [e.title for e in result.pools[""]] == titles
    assert [i.week.label for i in result.history[""]] == ["2026-W48", "2026-W47", "2026-W45"]


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "site"


@pytest.mark.parametrize("state", ["one state folder", "a fresh state folder each run"])
@pytest.mark.parametrize(
    "runs",
    [
        ["2026-12-28T10:00:00+09:00"],
        ["2026-11-23T10:00:00+09:00", "2026-12-28T10:00:00+09:00"],
        [
            "2026-11-23T10:00:00+09:00",
            "2026-11-30T10:00:00+09:00",
            "2026-12-28T10:00:00+09:00",
            "2027-11-01T10:00:00+09:00",
        ],
    ],
)
def test_the_example_sites_reading_log_keeps_its_october_issue(tmp_path: Path, state: str, runs: list[str]) -> None:
    """The bundled example's reading log (dated 2026-11-18 by its file name) has an item of 2026.10.9:
    issue 2026-W41 stays in the feeds and the archive on every later publish."""
    site = shutil.copytree(EXAMPLE, tmp_path / "site")
    settings = load_settings(site=site, env=state_env())
    out = settings.output.dir
    for n, when in enumerate(runs):
        folder = tmp_path / ("state" if state == "one state folder" else f"state-{n}")
        now_at = datetime.fromisoformat(when)
        result = pipeline.publish(replace(settings, state_dir=folder), now_at, pipeline.select_week(settings, now_at))
        assert [i.week.label for i in result.history[""]] == ["2026-W47", "2026-W46", "2026-W41"]
        files = _output(out)
        assert b"/newsletter/2026-W41<" in files["atom.xml"] and b"2026-W41/index.html" in files["index.html"]
        assert "데이터 증강 정리" in files["2026-W41/index.html"].decode()
