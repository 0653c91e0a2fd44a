"""Issues, entries and settings for the templater tests, built directly (no collector involved)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.config import OutputSettings, Settings
from digest.models import Entry, Heading, Issue, Site, Week

SEOUL = ZoneInfo("Asia/Seoul")
POST_URL = "https://blog.example.org/2024/03/06/weekly-notes/"
GOLDEN = Path(__file__).resolve().parent / "golden"


def make_site(root: Path = Path("/nonexistent-site")) -> Site:
    return Site(
        title="별빛 개발 노트",
        base_url="https://blog.example.org/",
        root=root,
        source_dirs=(root / "_posts",),
        timezone="Asia/Seoul",
        permalink="/:year/:month/:day/:title/",
        description="한국어와 English로 쓰는 개발 기록",
        language="ko",
        author="김하늘",
    )


def make_settings(
    site: Site | None = None, *, templates: Path | None = None, max_html_bytes: int = 102_000
) -> Settings:
    return Settings(
        site=site or make_site(),
        output=OutputSettings(
            dir=Path("_digest"),
            url="https://blog.example.org/newsletter/",
            feed_issues=10,
            templates=templates,
            max_html_bytes=max_html_bytes,
        ),
    )


def make_week(start: datetime = datetime(2024, 3, 4, tzinfo=SEOUL)) -> Week:
    return Week(start_at=start, end_at=start + timedelta(days=7), label=start.strftime("%G-W%V"))


NEWS_BODY = """\
<h2 id="toc">목차</h2>
<ul>
<li><a href="#rust-ui">러스트 UI 툴킷 소식</a></li>
<li><a href="#tiny-llm">Tiny LLM 실험</a></li>
</ul>
<h3 id="rust-ui">러스트 UI 툴킷 소식</h3>
<p><a href="https://tools.example.net/rust-ui">참고 링크</a></p>
<p>새로 나온 UI 툴킷은 선언형 문법을 쓰고, 빌드 시간이 눈에 띄게 줄었다고 한다.</p>
<p><img src="https://blog.example.org/images/toolkit.png"></p>
<h3 id="tiny-llm">Tiny LLM 실험</h3>
<p>노트북에서 작은 언어 모델을 돌려 보았다. <strong>메모리 4GB</strong>면 충분했다.</p>
<pre><code>python run.py --model tiny
</code></pre>
<blockquote><p>작은 모델도 쓸모가 있다.</p></blockquote>
<table><thead><tr><th>모델</th><th>속도</th></tr></thead><tbody><tr><td>tiny</td><td>42 tok/s</td></tr></tbody></table>
"""


def news_entry() -> Entry:
    return Entry(
        id="tag:blog.example.org,2024-03-06:/_posts/2024-03-06-weekly-notes.md",
        title="주간 개발 뉴스 (3월 1주차)",
        published_at=datetime(2024, 3, 6, 21, 30, tzinfo=SEOUL),
        url=POST_URL,
        source="_posts/2024-03-06-weekly-notes.md",
        body_html=NEWS_BODY,
        summary_html="<p>이번 주에는 러스트 UI 툴킷과 작은 언어 모델 이야기를 모았다.</p>",
        authors=("김하늘",),
        categories=("news",),
        tags=("Rust", "LLM", "news"),
        outline=(
            Heading(2, "목차", POST_URL + "#toc"),
            Heading(3, "러스트 UI 툴킷 소식", POST_URL + "#rust-ui"),
            Heading(3, "Tiny LLM 실험", POST_URL + "#tiny-llm"),
        ),
    )


def english_entry() -> Entry:
    url = "https://blog.example.org/2024/03/08/garden-log/"
    return Entry(
        id="tag:blog.example.org,2024-03-08:/_posts/2024-03-08-garden-log.md",
        title="Garden log: tomatoes & <script>alert(1)</script>",
        published_at=datetime(2024, 3, 8, 9, 0, tzinfo=SEOUL),
        url=url,
        source="_posts/2024-03-08-garden-log.md",
        body_html='<p>The first seedlings are up. See <a href="https://seeds.example.com/">the seed shop</a>.</p>'
        '<p><img src="https://blog.example.org/images/seedlings.jpg" title="Seedlings in March"></p>',
        summary_html="<p>The first seedlings are up.</p>",
        categories=("garden",),
        tags=("plants",),
        updated_at=datetime(2024, 3, 9, 10, 15, tzinfo=SEOUL),
    )


def make_issue(entries: tuple[Entry, ...] | None = None, week: Week | None = None, site: Site | None = None) -> Issue:
    return Issue(
        site=site or make_site(),
        week=week or make_week(),
        entries=(english_entry(), news_entry()) if entries is None else entries,
    )


def older_issue() -> Issue:
    week = make_week(datetime(2024, 2, 26, tzinfo=SEOUL))
    entry = replace(
        english_entry(),
        id="tag:blog.example.org,2024-02-28:/_posts/2024-02-28-winter.md",
        title="겨울 끝자락의 정리",
        published_at=datetime(2024, 2, 28, 18, 0, tzinfo=SEOUL),
        url="https://blog.example.org/2024/02/28/winter/",
        source="_posts/2024-02-28-winter.md",
        tags=("회고",),
        categories=(),
        updated_at=None,
    )
    return make_issue((entry,), week=week)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def issue() -> Issue:
    return make_issue()


def check_golden(name: str, data: str | bytes) -> None:
    """Compare with tests/golden/<name>; DIGEST_UPDATE_GOLDEN=1 rewrites the file instead."""
    import os

    blob = data.encode("utf-8") if isinstance(data, str) else data
    path = GOLDEN / name
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        return
    if not path.is_file():
        pytest.fail(f"golden file {name} is missing: run with DIGEST_UPDATE_GOLDEN=1 once and review it")
    assert blob == path.read_bytes(), f"{name} differs from its golden file (DIGEST_UPDATE_GOLDEN=1 to accept)"


class DictMemo:
    """A memo in a dict (what digest.cache.Cache keeps, without the file)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], object] = {}

    def get(self, kind: str, key: str) -> object:
        return self.rows.get((kind, key))

    def put(self, kind: str, key: str, value: object) -> None:
        self.rows[(kind, key)] = value


def png(path: Path, width: int, height: int) -> None:
    """A real PNG header (what imagesize reads) with a 1-pixel-row body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)))
