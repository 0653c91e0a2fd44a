"""digest.issues and the language rules of digest.text: which entries go into which issue, per language."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from digest import issues
from digest.models import Carried, Entry
from digest.text import issue_language, language_key
from digest.weeks import week_of
from tests.support_templater import SEOUL, english_entry, make_site


@pytest.mark.parametrize(
    ("tag", "key"),
    [
        ("", ""),
        ("en", "en"),
        ("en_US", "en"),
        ("ko-KR", "ko"),
        ("KO", "ko"),
        ("zh-Hant", "zh-hant"),
        ("zh-TW", "zh-hant"),
        ("zh-CN", "zh-hans"),
        ("zh", "zh"),
        ("sr-Latn-RS", "sr-latn"),
        (" ja ", "ja"),
        ("English", ""),  # not a language tag: the site's language
        ("<x>", ""),
        ("ko--KR", ""),
    ],
)
def test_language_key(tag: str, key: str) -> None:
    assert language_key(tag) == key


@pytest.mark.parametrize(
    ("tag", "site", "issue"),
    [("", "ko", ""), ("ko", "ko-KR", ""), ("ko-KR", "ko", ""), ("en", "ko", "en"), ("zh-TW", "zh-Hans", "zh-hant")],
)
def test_issue_language(tag: str, site: str, issue: str) -> None:
    assert issue_language(tag, site) == issue


def entry(day: int, title: str, hour: int = 10, **changes: object) -> Entry:
    at = datetime(2026, 11, day, hour, tzinfo=SEOUL)
    return replace(
        english_entry(),
        id=f"tag:x,{at.date()}:/posts/{title}.md",
        title=title,
        source=f"posts/{title}.md",
        url=f"https://x.example/{title}/",
        published_at=at,
        updated_at=None,
        **changes,  # type: ignore[arg-type]
    )


SITE = make_site()
W46 = week_of(datetime(2026, 11, 10, tzinfo=SEOUL), SITE)
W47 = week_of(datetime(2026, 11, 17, tzinfo=SEOUL), SITE)
POOL = (entry(18, "w47-b"), entry(17, "w47-a"), entry(12, "w46-late"), entry(11, "w46"), entry(3, "w45"))


def carried(*taken: tuple[Entry, str], first: datetime | None = None) -> Carried:
    keys = {k: issue for e, issue in taken for k in issues.entry_keys(e)}
    planned: dict[str, set[str]] = {}
    for e, issue in taken:
        planned.setdefault(issue, set()).update(issues.entry_keys(e))
    return Carried(keys, {k: frozenset(v) for k, v in planned.items()}, first)


@pytest.mark.parametrize(
    ("case", "state", "own", "late"),
    [
        ("first issue: nothing before it is news", Carried(), ["w47-b", "w47-a"], []),
        (
            "W46 sent without the late post: it comes along",
            carried((POOL[3], "2026-W46"), first=W46.start_at),
            ["w47-b", "w47-a"],
            ["w46-late"],
        ),
        (
            "the bound: a first issue in W45 reaches W45's forgotten post too",
            carried((POOL[3], "2026-W46"), first=W46.start_at - timedelta(days=7)),
            ["w47-b", "w47-a"],
            ["w46-late", "w45"],
        ),
        (
            "carried elsewhere (a --since window) is never carried again",
            carried((POOL[0], "2026-11-15--2026-11-20"), (POOL[3], "2026-W46"), first=W46.start_at),
            ["w47-a"],
            ["w46-late"],
        ),
        (
            "planned before: exactly what it carried, nothing new",
            carried((POOL[1], "2026-W47"), (POOL[3], "2026-W46"), first=W46.start_at),
            ["w47-a"],
            [],
        ),
    ],
)
def test_select(case: str, state: Carried, own: list[str], late: list[str]) -> None:
    got_own, got_late = issues.select(POOL, W47, "2026-W47", state)
    assert ([e.title for e in got_own], [e.title for e in got_late]) == (own, late), case


@pytest.mark.parametrize(
    "edit",
    [
        {"body_html": "<p>rewritten</p>", "updated_at": datetime(2026, 11, 20, tzinfo=SEOUL)},  # edited
        {"title": "A new title"},  # retitled: same file
        {"id": "tag:x,2026-11-12:/posts/renamed.md", "source": "posts/renamed.md"},  # renamed: same date and title
        {"published_at": datetime(2026, 11, 12, 11, tzinfo=SEOUL), "id": "tag:x,moved"},  # re-dated: same file
    ],
)
def test_an_edited_entry_is_still_the_entry_that_was_mailed(edit: dict[str, object]) -> None:
    sent = POOL[2]
    state = carried((sent, "2026-W46"), first=W46.start_at)
    edited = replace(sent, **edit)  # type: ignore[arg-type]
    own, late = issues.select((edited,), W47, "2026-W47", state)
    assert own == () and late == ()


def test_history_skips_empty_weeks_and_stops_at_the_horizon() -> None:
    got = issues.history(POOL, SITE, W47.start_at, 2)
    assert [(w.label, [e.title for e in es]) for w, es in got] == [
        ("2026-W46", ["w46-late", "w46"]),
        ("2026-W45", ["w45"]),
    ]


def test_by_language_groups_by_issue_language() -> None:
    mixed = (entry(17, "a", language="ko-KR"), entry(16, "b"), entry(15, "c", language="ja"))
    grouped = issues.by_language(mixed, SITE)  # the site writes in Korean
    assert {k: [e.title for e in v] for k, v in grouped.items()} == {"": ["a", "b"], "ja": ["c"]}


def test_weeks_missing() -> None:
    horizon = W47.end_at
    assert issues.weeks_missing({}, SITE, horizon, 5) == 5  # nothing found yet: look further back
    assert issues.weeks_missing({"": POOL}, SITE, horizon, 4) == 1  # W47, W46, W45 found
    assert issues.weeks_missing({"": POOL, "ko": ()}, SITE, horizon, 3) == 0  # an empty language is not waited for
    assert issues.weeks_missing({"": POOL, "ko": (entry(1, "x", language="ko"),)}, SITE, horizon, 3) == 2
