"""Fixture sites for the collector tests: invented posts in the two shapes the product must handle
(a weekly news post with ``###`` items; a running log of dated bullet items between dash rules)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.models import Site

SEOUL = ZoneInfo("Asia/Seoul")

WEEKLY_NEWS = """---
title: 주간 정원 소식 (3월 넷째 주)
date: 2021.03.27 18:30:00
categories:
- news
tags:
- garden
- 식물
---

## 목차

- [Tomato Seeds](#tomato-seeds)
- [Rain & Wind](#rain--wind)

### Tomato Seeds

[읽을거리](/notes/tomato.html)

올해 첫 토마토 씨앗을 창가 화분에 심었다. 싹이 나오기까지 일주일쯤 걸린다고 한다.

### Rain & Wind

![비 오는 정원](rain.jpg)

주말 내내 비가 와서 물 주기를 쉬었다.

### 새 화분

| 화분 | 흙 |
|------|----|
| 작은 것 | 배양토 |
"""

RUNNING_LOG = """---
title: Reading Log and Links
categories: [log]
comments: true
---

-----------------

* 202103 Bread Baking Without Yeast  (2021.3)
  > 효모 없이 빵을 굽는 방법을 정리한 글을 읽었다.
천연 발효종을 만드는 데 닷새가 걸린다.

![starter](/images/starter.jpg)

-----------------

* 20210315 Cheap Bicycle Repairs (fixer)
  > 체인에 기름칠하는 순서를 다시 배웠다.
https://example.org/bike-chain

-----------------

* 2021.2.8 Notes on Winter Birds
  > 겨울 철새 관찰 기록.

-----------------

* 2021.1.3 새해 첫 산책 기록
  > 동네 공원을 한 바퀴 돌았다.

------------------

* 2021년 이전 기록은 예전 글에

"""


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    return path


def make_site(
    root: Path,
    files: dict[str, str | bytes],
    *,
    source: str = "_posts",
    timezone: str = "Asia/Seoul",
    permalink: str = "/:year/:month/:day/:title/",
    base_url: str = "https://blog.example.com/",
    ignore: tuple[str, ...] = (),
    week_start_day: int = 0,
    week_start_hour: int = 0,
) -> Site:
    """Write ``files`` (paths relative to ``root``) and return a Site reading ``root/source``."""
    for rel, content in files.items():
        write(root, rel, content)
    (root / source).mkdir(parents=True, exist_ok=True)
    return Site(
        title="Test Blog",
        base_url=base_url,
        root=root,
        source_dirs=(root / source,),
        timezone=timezone,
        permalink=permalink,
        week_start_day=week_start_day,
        week_start_hour=week_start_hour,
        ignore=ignore,
    )


def site_in(timezone: str, *, week_start_day: int = 0, week_start_hour: int = 0) -> Site:
    """A Site with no files, for week arithmetic."""
    return Site(
        title="t",
        base_url="https://t.example/",
        root=Path("."),
        source_dirs=(),
        timezone=timezone,
        permalink="/:title/",
        week_start_day=week_start_day,
        week_start_hour=week_start_hour,
    )


def post(title: str, date: str = "2021-03-20", extra: str = "", body: str = "본문 첫 문단입니다.\n") -> str:
    return f"---\ntitle: {title}\ndate: {date}\n{extra}---\n\n{body}"


NOW_AT = datetime(2021, 4, 1, 12, 0, tzinfo=SEOUL)


# A running log with no date of its own: the file name dates it (the day it was last added to), after the
# items it has held for weeks.
POND_LOG = """---
title: Field notes from the pond
---

Things noticed around the pond this autumn.

-----

* 2026.11.17 Heron back in the reeds
  > It stood on one leg for an hour.

-----

* 2026.10.2 Mushrooms by the fence
  > Three kinds, one of them blue.

-----

* 2026.9.16 First frost on the boat ramp
  > Thin, gone by nine.

-----
"""
HERON, MUSHROOMS, FROST = "Heron back in the reeds", "Mushrooms by the fence", "First frost on the boat ramp"
