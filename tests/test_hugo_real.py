"""Every post URL digest computes for a Hugo site is a page the real `hugo` writes for that site: permalink
patterns with each token, page bundles, mixed-case file names and slugs (Hugo lower-cases the paths it
makes, not a front-matter `url`), `disablePathToLower`, and a second language. Skipped without `hugo`."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from digest.collector import collect
from digest.config import load_settings
from tests.conftest import state_env

HUGO = shutil.which("hugo")
pytestmark = pytest.mark.skipif(HUGO is None, reason="hugo is not installed (apt-get install hugo)")

NOW_AT = datetime(2025, 2, 1, tzinfo=ZoneInfo("Asia/Seoul"))
LAYOUTS = {
    "layouts/_default/single.html": "{{ .Title }}\n",
    "layouts/_default/list.html": "{{ range .Pages }}{{ .Title }}\n{{ end }}",
}
POSTS = {
    # name: (title, date, extra front matter)
    "content/posts/My-First.md": ("Hello World Again", "2024-03-05T10:00:00+09:00", ""),
    "content/posts/Deep/Nested/Case-File.md": ("Nested One", "2024-12-31T23:00:00+09:00", "slug: Custom-Slug\n"),
    "content/posts/Bundle-Post/index.md": ("Bundled", "2024-06-02T08:00:00+09:00", ""),
    "content/posts/Url-Over.md": ("Url over", "2024-05-05T10:00:00+09:00", "url: /Custom/URL-Path/\n"),
    "content/posts/Perma-Over.md": ("Ünïcode Tïtle Ö", "2024-05-06T10:00:00+09:00", ""),
    "content/posts/2024-01-07-Sunday.md": ("Sunday Post", "2024-01-07T10:00:00+09:00", ""),
    "content/posts/Guides/Step-One.md": (
        "A & B: Version 1.2 - Notes! #3 (draft?) 50%20 off",
        "2024-02-02T09:00:00+09:00",
        "",
    ),
    "content/posts/Guides/Deeper/Step Two.md": ("  Spaces   and\ttabs ", "2024-02-03T09:00:00+09:00", ""),
}
SECTION_PAGES = {"content/posts/Guides/_index.md": "---\ntitle: Guides\n---\n"}
CONFIGS = {
    "date-tokens": "[permalinks]\nposts = '/:year/:monthname/:weekday-:weekdayname-:yearday/:slug/'\n",
    "month-title": "[permalinks]\nposts = '/:year/:month/:day/:title/'\n",
    "sections-filename": "[permalinks]\nposts = '/:sections/:filename/'\n",
    "slug-or-file": "[permalinks]\nposts = '/blog/:slugorfilename/'\n",
    "default-path": "",
    "path-as-written": "disablePathToLower = true\n[permalinks]\nposts = '/:year/:monthname/:slug/'\n",
}


def write_site(root: Path, config: str, languages: bool = False) -> None:
    head = "baseURL = 'https://hg.example.org/'\ntitle = 'HG'\ntimeZone = 'Asia/Seoul'\n"
    if languages:
        head += (
            "defaultContentLanguage = 'en'\n[languages.en]\ncontentDir = 'content'\nweight = 1\n"
            "[languages.ko]\ncontentDir = 'content.ko'\nweight = 2\n"
        )
    (root / "hugo.toml").write_text(head + config, "utf-8")
    files = dict(LAYOUTS) | SECTION_PAGES
    for name, (title, date, extra) in POSTS.items():
        files[name] = f'---\ntitle: "{title}"\ndate: {date}\n{extra}---\n\nBody of {title}.\n'
        if languages:
            files[name.replace("content/", "content.ko/", 1)] = (
                f'---\ntitle: "{title} 한국어"\ndate: {date}\n---\n\n본문.\n'
            )
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, "utf-8")


def hugo_pages(root: Path) -> set[str]:
    assert HUGO is not None
    done = subprocess.run(
        [HUGO, "--quiet", "-s", str(root), "-d", "public"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    public = root / "public"
    return {"/" + p.parent.relative_to(public).as_posix() + "/" for p in public.rglob("index.html")}


def digest_paths(root: Path) -> dict[str, str]:
    settings = load_settings(site=root, env=state_env())
    found = collect(settings.site, NOW_AT)
    assert found.problems == ()
    return {e.source: unquote(urlsplit(e.url).path) for e in found.entries}


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_each_post_url_is_a_page_hugo_writes(tmp_path: Path, config: str) -> None:
    write_site(tmp_path, config)
    pages = hugo_pages(tmp_path)
    paths = digest_paths(tmp_path)
    assert len(paths) == len(POSTS)
    assert sorted(source for source, path in paths.items() if path not in pages) == [], (paths, sorted(pages))


def test_a_front_matter_url_keeps_its_case_and_the_rest_are_lower_case(tmp_path: Path) -> None:
    write_site(tmp_path, CONFIGS["date-tokens"])
    paths = digest_paths(tmp_path)
    assert paths["content/posts/Url-Over.md"] == "/Custom/URL-Path/"
    assert paths["content/posts/Deep/Nested/Case-File.md"] == "/2024/december/2-tuesday-366/custom-slug/"
    assert paths["content/posts/2024-01-07-Sunday.md"].startswith("/2024/january/0-sunday-7/")


def test_a_second_language_has_its_pages_too(tmp_path: Path) -> None:
    write_site(tmp_path, CONFIGS["month-title"], languages=True)
    pages = hugo_pages(tmp_path)
    paths = digest_paths(tmp_path)
    assert len(paths) == 2 * len(POSTS)
    assert any(path.startswith("/ko/") for path in paths.values())
    assert sorted(source for source, path in paths.items() if path not in pages) == [], (paths, sorted(pages))


TITLES = [
    "A - B", "x%20y", "A -- B", "a--b", "trailing -", "@at me", "a_b+c~d", "Q?&=!,;:\"()[]{}<>|^`", "über café",
    "x%2", "--lead", "a . b", "1/2 half", "a -b", "a- b", "a -- -- b", "a+b", "a++b", "C#  F#", "100% sure",
    "a%ZZb", "~tilde~", "back\\\\slash", "한국어 제목: 둘째 편", "CoreML & Pytorch", "Transformers v3.0",
    "x + y = z", "Hello, World & Friends + More", "100% Done %20 now", "a%2Fb c", "C++ Tips", "Ends with -",
    "Dots... here",
]  # fmt: skip


@pytest.mark.parametrize("pattern", ["/:title/", "/:slug/"])
def test_titles_are_urlized_as_hugo_does(tmp_path: Path, pattern: str) -> None:
    """Each title (made unique by a number first) gives the path Hugo gives it: hyphens, escapes, `+`,
    punctuation, accents and Hangul."""
    head = "baseURL = 'https://hg.example.org/'\ntitle = 'HG'\ntimeZone = 'Asia/Seoul'\n"
    (tmp_path / "hugo.toml").write_text(head + f"[permalinks]\nposts = '{pattern}'\n", "utf-8")
    for name, text in LAYOUTS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, "utf-8")
    (tmp_path / "content" / "posts").mkdir(parents=True)
    for n, title in enumerate(TITLES, 1):
        quoted = f"k{n} {title}".replace("'", "''")
        (tmp_path / "content" / "posts" / f"p{n}.md").write_text(
            f"---\ntitle: '{quoted}'\ndate: 2024-{1 + n // 28:02d}-{1 + n % 28:02d}T00:00:00Z\n---\n\nb\n", "utf-8"
        )
    pages = hugo_pages(tmp_path)
    paths = digest_paths(tmp_path)
    assert len(paths) == len(TITLES)
    assert sorted(path for path in paths.values() if path not in pages) == [], sorted(pages)


def test_the_posts_collected_are_the_pages_hugo_builds_today(tmp_path: Path) -> None:
    """publishDate, expiryDate (and their aliases) and lastmod, around the real clock (hugo has no other):
    digest collects exactly the posts hugo builds now, at hugo's URLs, each dated when it goes live."""
    now = datetime.now(ZoneInfo("Asia/Seoul")).replace(microsecond=0)

    def at(days: float) -> str:
        return (now + timedelta(days=days)).isoformat()

    head = "baseURL = 'https://hg.example.org/'\ntitle = 'HG'\ntimeZone = 'Asia/Seoul'\n"
    (tmp_path / "hugo.toml").write_text(head + "[permalinks]\nposts = '/:year/:month/:title/'\n", "utf-8")
    for name, text in LAYOUTS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, "utf-8")
    posts = {
        "scheduled": f"date: {at(-40)}\npublishDate: {at(10)}\n",
        "went-live": f"date: {at(-40)}\npublishDate: {at(-3)}\n",
        "pubdate-alias": f"date: {at(-40)}\npubdate: {at(-2)}\n",
        "expired": f"date: {at(-20)}\nexpiryDate: {at(-1)}\n",
        "unpublished-alias": f"date: {at(-20)}\nunpublishdate: {at(-1)}\n",
        "expiring-later": f"date: {at(-20)}\nexpiryDate: {at(5)}\n",
        "lastmod-only": f"lastmod: {at(-4)}\n",
        "plain": f"date: {at(-6)}\n",
    }
    (tmp_path / "content" / "posts").mkdir(parents=True)
    for name, dates in posts.items():
        (tmp_path / "content" / "posts" / f"{name}.md").write_text(f"---\ntitle: {name}\n{dates}---\n\nb\n", "utf-8")
    pages = {p for p in hugo_pages(tmp_path) if p.count("/") == 4}  # /year/month/title/
    settings = load_settings(site=tmp_path, env=state_env())
    found = collect(settings.site, now)
    got = {e.title: e for e in found.entries}
    assert sorted(got) == sorted(p.rstrip("/").rsplit("/", 1)[1] for p in pages)
    assert sorted(got) == ["expiring-later", "lastmod-only", "plain", "pubdate-alias", "went-live"]
    assert {unquote(urlsplit(e.url).path) for e in got.values()} == pages
    assert got["went-live"].published_at == now + timedelta(days=-3)  # the week it went live in carries it
    assert got["lastmod-only"].published_at == now + timedelta(days=-4)
    # what hugo builds later: the scheduled post once live, the expiring one no more
    later = {e.title for e in collect(settings.site, now + timedelta(days=11)).entries}
    assert "scheduled" in later and "expiring-later" not in later


def test_a_translation_in_a_language_hugo_does_not_publish_is_no_post(tmp_path: Path) -> None:
    """`index.ja.md` beside `index.md`, `ja` not configured: Hugo publishes the bundle's page once, not a
    page of its own for it (digest mailed it at /posts/trip/index.ja/, a 404); alone in its bundle it is the
    bundle's page. A file in a language of `disableLanguages` is not published at all."""
    head = (
        "baseURL = 'https://hg.example.org/'\ntitle = 'HG'\ntimeZone = 'Asia/Seoul'\ndisableLanguages = ['fr']\n"
        "defaultContentLanguage = 'en'\n[languages.en]\nweight = 1\n[languages.ko]\nweight = 2\n"
        "[languages.fr]\nweight = 3\n"
    )
    (tmp_path / "hugo.toml").write_text(head, "utf-8")
    files = dict(LAYOUTS)
    for name in (
        "posts/trip/index.md",
        "posts/trip/index.ko.md",
        "posts/trip/index.ja.md",
        "posts/trip/index.fr.md",
        "posts/alone/index.ja.md",
        "posts/note.fr.md",
        "posts/note.md",
    ):
        files[f"content/{name}"] = f'---\ntitle: "{name}"\ndate: 2024-06-02T08:00:00+09:00\n---\n\nBody.\n'
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, "utf-8")
    pages = hugo_pages(tmp_path)
    settings = load_settings(site=tmp_path, env=state_env())
    found = collect(settings.site, NOW_AT)
    paths = {e.source: unquote(urlsplit(e.url).path) for e in found.entries}
    assert paths == {
        "content/posts/trip/index.md": "/posts/trip/",
        "content/posts/trip/index.ko.md": "/ko/posts/trip/",
        "content/posts/alone/index.ja.md": "/posts/alone/",
        "content/posts/note.md": "/posts/note/",
    }
    assert set(paths.values()) <= pages and not any("fr" in page.split("/") for page in pages)
