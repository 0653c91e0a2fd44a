"""Invented inputs for the command-line benchmarks: a Jekyll-style site of Markdown posts, a Hugo copy of the
same posts, a subscribers file, an Atom feed of the same kind of items.

Nothing here imports digest: the benchmarks run `digest` as a subprocess, as a user does, and the
benchmark process itself stays small (a child's peak RSS read with wait4 includes its parent's).
Every sentence is written for this file; nothing is read from real blogs.
"""

from __future__ import annotations

import html
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TZ_NAME = "Asia/Seoul"
TZ = ZoneInfo(TZ_NAME)
SITE_URL = "https://bench.example.com/"
SITE_TITLE = "Bench Journal"

_WORDS = (
    "kettle", "lantern", "orchard", "ledger", "pebble", "harbor", "window", "spindle", "meadow", "compass",
    "thimble", "beacon", "ferry", "quill", "cedar", "marble", "shovel", "paddle", "mitten", "tunnel",
    "gravel", "attic", "pantry", "railing", "sprocket", "teapot", "basket", "ladder", "chimney", "satchel",
)  # fmt: skip
_KO = ("오늘은", "작은", "정원", "기록", "주말", "산책", "커피", "자전거", "창문", "노트", "바람", "골목", "시장")
_TAGS = ("notes", "garden", "code", "travel", "tea", "bikes", "books", "rain")

# A post is a list of blocks, rendered to Markdown for the sites and to HTML for the feed.
Block = tuple[str, Any]


@dataclass(frozen=True)
class Post:
    slug: str
    title: str
    published_at: datetime  # aware, in the site's timezone
    tags: tuple[str, ...]
    blocks: tuple[Block, ...]

    @property
    def url(self) -> str:
        return f"{SITE_URL}{self.published_at:%Y/%m/%d}/{self.slug}/"

    def markdown(self) -> str:
        return "\n\n".join(_block_markdown(b) for b in self.blocks) + "\n"

    def html(self) -> str:
        return "\n".join(_block_html(b) for b in self.blocks)

    def front_matter(self) -> str:
        title = self.title.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f'---\ntitle: "{title}"\ndate: {self.published_at.isoformat()}\n'
            f"tags: [{', '.join(self.tags)}]\ncategories: [journal]\n---\n\n"
        )


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(7, 13))] + [rng.choice(_KO) for _ in range(2)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 5)))


def _blocks(rng: random.Random, i: int, paragraphs: int) -> tuple[Block, ...]:
    """The shapes blogs use: an intro, headings, a list, a relative link, a table, a code block."""
    blocks: list[Block] = [("p", _paragraph(rng)), ("h2", f"What happened, part {i % 7 + 1}")]
    blocks.append(("ul", [_sentence(rng) for _ in range(4)]))
    blocks.append(("link", f"/{2020 + i % 5}/0{i % 9 + 1}/1{i % 9}/note-{max(i - 1, 0)}/"))
    blocks += [("p", _paragraph(rng)) for _ in range(paragraphs)]
    blocks.append(("table", [(rng.choice(_WORDS), str(rng.randint(1, 99))) for _ in range(3)]))
    blocks.append(("code", f"total = sum(range({rng.randint(1, 1000)}))\nprint(total)"))
    blocks += [("h2", "정리"), ("p", _paragraph(rng))]
    return tuple(blocks)


def _block_markdown(block: Block) -> str:
    kind, value = block
    if kind == "h2":
        return f"## {value}"
    if kind == "ul":
        return "\n".join(f"- {item}" for item in value)
    if kind == "link":
        return f"See [the previous note]({value}) for how this started."
    if kind == "table":
        rows = "\n".join(f"| {a} | {b} |" for a, b in value)
        return f"| item | count |\n| ---- | ----- |\n{rows}"
    if kind == "code":
        return f"```python\n{value}\n```"
    return str(value)


def _block_html(block: Block) -> str:
    kind, value = block
    if kind == "h2":
        return f"<h2>{html.escape(str(value))}</h2>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in value) + "</ul>"
    if kind == "link":
        return f'<p>See <a href="{SITE_URL.rstrip("/")}{value}">the previous note</a> for how this started.</p>'
    if kind == "table":
        rows = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td></tr>" for a, b in value)
        return f"<table><thead><tr><th>item</th><th>count</th></tr></thead><tbody>{rows}</tbody></table>"
    if kind == "code":
        return f'<pre><code class="language-python">{html.escape(str(value))}</code></pre>'
    return f"<p>{html.escape(str(value))}</p>"


def monday_of(moment: datetime) -> datetime:
    """00:00 of the Monday of `moment`'s week, in the site timezone (digest's default week)."""
    day = moment.astimezone(TZ).date() - timedelta(days=moment.astimezone(TZ).weekday())
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


def week_label(moment: datetime) -> str:
    year, week, _ = moment.astimezone(TZ).isocalendar()
    return f"{year}-W{week:02d}"


def make_posts(weeks: int, per_week: int, last_monday: datetime, *, paragraphs: int = 3, seed: int = 5) -> list[Post]:
    """`per_week` posts in each of `weeks` consecutive weeks ending with the week of `last_monday`, oldest
    first. Within a week the posts fall between Monday 08:00 and Sunday 20:00, so a clock pinned to Sunday
    21:00 of the last week sees every one of them as published."""
    rng = random.Random(seed)
    step = timedelta(hours=156 / per_week)
    posts = []
    for w in range(weeks):
        monday = last_monday - timedelta(days=7 * (weeks - 1 - w))
        for k in range(per_week):
            i = w * per_week + k
            # Whole minutes: Jekyll, Hugo and digest read the same instant from the front matter.
            at = (monday + timedelta(hours=8) + step * k).replace(second=0, microsecond=0)
            posts.append(
                Post(
                    slug=f"field-note-{i}",
                    title=f"Field note {i}: {rng.choice(_WORDS)} and {rng.choice(_KO)}",
                    published_at=at,
                    tags=tuple(rng.sample(_TAGS, 2)),
                    blocks=_blocks(rng, i, paragraphs),
                )
            )
    return posts


def write_jekyll(root: Path, posts: Iterable[Post], title: str = SITE_TITLE) -> None:
    """A Jekyll site: _config.yml and _posts/YYYY-MM-DD-slug.md; digest reads both without a config of its own."""
    folder = root / "_posts"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "_config.yml").write_text(
        f'title: "{title}"\nurl: "{SITE_URL.rstrip("/")}"\ntimezone: {TZ_NAME}\n'
        "permalink: /:year/:month/:day/:title/\n",
        encoding="utf-8",
    )
    for post in posts:
        add_post(root, post)


def add_post(root: Path, post: Post) -> Path:
    path = root / "_posts" / f"{post.published_at:%Y-%m-%d}-{post.slug}.md"
    path.write_text(post.front_matter() + post.markdown(), encoding="utf-8")
    return path


HUGO_LAYOUTS = {
    "_default/baseof.html": (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title></head>\n'
        '<body>{{ block "main" . }}{{ end }}</body></html>\n'
    ),
    "_default/single.html": (
        '{{ define "main" }}<article><h1>{{ .Title }}</h1><time>{{ .Date.Format "2006-01-02" }}</time>\n'
        "{{ .Content }}</article>{{ end }}\n"
    ),
    "_default/list.html": (
        '{{ define "main" }}<h1>{{ .Title }}</h1><ul>{{ range .Pages }}'
        '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul>{{ end }}\n'
    ),
    "index.html": (
        '{{ define "main" }}<h1>{{ .Site.Title }}</h1><ul>{{ range .Site.RegularPages }}'
        '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul>{{ end }}\n'
    ),
}


def write_hugo(root: Path, posts: Iterable[Post], title: str = SITE_TITLE) -> None:
    """The same posts as a minimal Hugo site: content/posts/, the same front matter, trivial layouts of our
    own (no theme), Hugo's defaults otherwise (its RSS feeds, tag and category pages)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "hugo.toml").write_text(
        f'baseURL = "{SITE_URL}"\ntitle = "{title}"\nlanguageCode = "en"\ntimeZone = "{TZ_NAME}"\n'
        '[permalinks]\nposts = "/:year/:month/:day/:slug/"\n',
        encoding="utf-8",
    )
    for name, text in HUGO_LAYOUTS.items():
        path = root / "layouts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    folder = root / "content" / "posts"
    folder.mkdir(parents=True, exist_ok=True)
    for post in posts:
        (folder / f"{post.slug}.md").write_text(post.front_matter() + post.markdown(), encoding="utf-8")


def write_subscribers(path: Path, count: int) -> int:
    """A subscribers.yaml of `count` entries, written as it is generated (the benchmark never holds the list).
    Every tenth subscriber has a Korean name: the To header's RFC 2047 path. Returns the file's size."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("defaults:\n  format: html\nsubscribers:\n" if count else "subscribers: []\n")
        for chunk in _chunks(_subscriber_lines(count), 1000):
            fh.write("".join(chunk))
    return path.stat().st_size


def _subscriber_lines(count: int) -> Iterator[str]:
    for i in range(count):
        name = f"구독자 {i}" if i % 10 == 0 else f"Reader {i}"
        yield f"  - email: user{i}@example.com\n    name: {name}\n"


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def subscriber_address(i: int) -> str:
    return f"user{i}@example.com"


def write_atom(path: Path, posts: Sequence[Post], self_url: str, title: str = SITE_TITLE) -> None:
    """An Atom feed of `posts` with their full HTML, as a blog's own feed would carry them."""
    newest = max(p.published_at for p in posts).isoformat()
    entries = []
    for post in posts:
        entries.append(
            "<entry>"
            f"<title>{html.escape(post.title)}</title>"
            f"<id>tag:bench.example.com,{post.published_at:%Y-%m-%d}:/{post.slug}</id>"
            f"<updated>{post.published_at.isoformat()}</updated>"
            f'<link rel="alternate" href="{post.url}"/>'
            + "".join(f"<category term={_attr(t)}/>" for t in post.tags)
            + f'<content type="html">{html.escape(post.html())}</content>'
            "</entry>\n"
        )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{html.escape(title)}</title><id>tag:bench.example.com,2020:/</id><updated>{newest}</updated>"
        f'<link rel="self" href="{self_url}"/><link rel="alternate" href="{SITE_URL}"/>\n'
        + "".join(entries)
        + "</feed>\n",
        encoding="utf-8",
    )


def _attr(value: str) -> str:
    return '"' + html.escape(value, quote=True) + '"'
