"""Posts where each generator finds them, at the URLs it gives them, in their language, with zero config:
a Jekyll site with one `_posts` folder per language, jekyll-polyglot, Hugo with a content folder per
language and with language suffixes, and Pelican read from pelicanconf.py (never executed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.collector import collect
from digest.collector.reader import scan
from digest.config import load_settings
from digest.errors import ConfigError
from digest.models import Entry
from tests.conftest import state_env
from tests.support_collector import write

NOW_AT = datetime(2024, 2, 1, tzinfo=UTC)


def entries_of(root: Path) -> dict[str, Entry]:
    settings = load_settings(site=root, env=state_env())
    result = collect(settings.site, NOW_AT)
    assert result.problems == ()
    return {e.source: e for e in result.entries}


def jekyll_post(title: str, extra: str = "", date: str = "2024-01-02") -> str:
    return f"---\ntitle: {title}\ndate: {date} 10:00:00 +0900\n{extra}---\n\n{title}: body.\n"


@pytest.fixture
def jekyll_languages(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "_config.yml",
        "title: Multi\nurl: https://multi.example.org\npermalink: pretty\nlang: en\ntimezone: Asia/Seoul\n",
    )
    write(tmp_path, "en/news/_posts/2024-01-02-hello.md", jekyll_post("Hello", "categories: [release]\n"))
    write(tmp_path, "ja/news/_posts/2024-01-02-hello.md", jekyll_post("こんにちは"))
    write(tmp_path, "ko/news/_posts/2024-01-02-hello.md", jekyll_post("안녕하세요", "category: 새 소식\n"))
    write(tmp_path, "en/news/_drafts/2024-01-03-wip.md", jekyll_post("Draft"))
    write(tmp_path, "_site/en/news/_posts/2024-01-02-hello.md", jekyll_post("Built copy"))
    write(tmp_path, "node_modules/pkg/_posts/2024-01-02-dep.md", jekyll_post("A dependency"))
    return tmp_path


def test_jekyll_reads_every_posts_folder_with_folders_as_categories(jekyll_languages: Path) -> None:
    settings = load_settings(site=jekyll_languages, env=state_env())
    assert [d.relative_to(jekyll_languages.resolve()).as_posix() for d in settings.site.source_dirs] == [
        "en/news/_posts",
        "ja/news/_posts",
        "ko/news/_posts",
    ]
    found = entries_of(jekyll_languages)
    assert {s: (e.url, e.language, e.categories) for s, e in found.items()} == {
        "en/news/_posts/2024-01-02-hello.md": (
            "https://multi.example.org/en/news/release/2024/01/02/hello/",
            "",  # the site's language
            ("en", "news", "release"),
        ),
        "ja/news/_posts/2024-01-02-hello.md": (
            "https://multi.example.org/ja/news/2024/01/02/hello/",
            "ja",
            ("ja", "news"),
        ),
        "ko/news/_posts/2024-01-02-hello.md": (
            "https://multi.example.org/ko/news/%EC%83%88%20%EC%86%8C%EC%8B%9D/2024/01/02/hello/",
            "ko",
            ("ko", "news", "새 소식"),  # `category:` is one category, spaces and all
        ),
    }
    assert len({e.id for e in found.values()}) == 3


@pytest.mark.parametrize(
    ("permalink", "url"),
    [
        ("date", "https://multi.example.org/ja/news/2024/01/02/hello.html"),
        ("/:categories/:title/", "https://multi.example.org/ja/news/hello/"),
        ("/:year/:title/", "https://multi.example.org/2024/hello/"),
    ],
)
def test_jekyll_folder_categories_in_every_permalink_style(jekyll_languages: Path, permalink: str, url: str) -> None:
    config = jekyll_languages / "_config.yml"
    config.write_text(config.read_text("utf-8").replace("permalink: pretty", f"permalink: {permalink}"), "utf-8")
    assert entries_of(jekyll_languages)["ja/news/_posts/2024-01-02-hello.md"].url == url


def test_jekyll_with_no_posts_folder_says_so(tmp_path: Path) -> None:
    from digest.errors import ConfigError

    write(tmp_path, "_config.yml", "title: Empty\n")
    with pytest.raises(ConfigError, match="no _posts folder in the site"):
        load_settings(site=tmp_path, env=state_env())


def test_jekyll_languages_list_and_front_matter_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        "_config.yml",
        "url: https://d.example\nlanguages: [en, de]\ndefaults:\n"
        "  - scope: {path: '_posts/de', type: posts}\n    values: {lang: de, categories: [deutsch]}\n"
        "  - scope: {path: '', type: pages}\n    values: {lang: fr}\n",
    )
    write(tmp_path, "_posts/de/2024-01-02-hallo.md", jekyll_post("Hallo"))
    write(tmp_path, "_posts/2024-01-02-hello.md", jekyll_post("Hello", "lang: en\n"))
    found = entries_of(tmp_path)
    hallo = found["_posts/de/2024-01-02-hallo.md"]
    assert (hallo.language, hallo.categories, hallo.url) == (
        "de",
        ("deutsch",),
        "https://d.example/deutsch/2024/01/02/hallo.html",
    )
    assert found["_posts/2024-01-02-hello.md"].language == ""


def test_jekyll_defaults_scope_a_folder_not_a_prefix_of_a_name(tmp_path: Path) -> None:
    """Jekyll compares a scope's path folder by folder: `_posts/2024` covers `_posts/2024/01/…`, not the
    file `_posts/2024-01-01-log.md` whose name starts with the same characters."""
    write(
        tmp_path,
        "_config.yml",
        "url: https://s.example\ndefaults:\n  - scope: {path: '_posts/2024'}\n    values: {permalink: /blog/:title/}\n",
    )
    write(tmp_path, "_posts/2024/01/2024-01-03-nested.md", jekyll_post("Nested"))
    write(tmp_path, "_posts/2024-01-01-log.md", jekyll_post("Log"))
    found = entries_of(tmp_path)
    assert found["_posts/2024/01/2024-01-03-nested.md"].url == "https://s.example/blog/nested/"
    assert (
        found["_posts/2024-01-01-log.md"].url.endswith("/log.html")
        and "/blog/" not in found["_posts/2024-01-01-log.md"].url
    )


def test_jekyll_polyglot_translations_get_their_language_prefix(tmp_path: Path) -> None:
    write(
        tmp_path, "_config.yml", "url: https://p.example\nlanguages: [en, es]\ndefault_lang: en\npermalink: /:title/\n"
    )
    write(tmp_path, "_posts/2024-01-02-hello.md", jekyll_post("Hello", "lang: en\npermalink: /hello/\n"))
    write(tmp_path, "_posts/2024-01-02-hola.md", jekyll_post("Hola", "lang: es\npermalink: /hello/\n"))
    found = entries_of(tmp_path)
    assert found["_posts/2024-01-02-hello.md"].url == "https://p.example/hello/"
    assert found["_posts/2024-01-02-hola.md"].url == "https://p.example/es/hello/"
    assert found["_posts/2024-01-02-hola.md"].language == "es"


def test_jekyll_polyglot_default_lang_is_the_sites_language(tmp_path: Path) -> None:
    """A polyglot site names only `default_lang` (no `lang`): that is the site's language, so its posts are
    the site language's issue and the others have their own. Korean and English were one mixed issue."""
    write(tmp_path, "_config.yml", "url: https://p.example\nbaseurl: /b\nlanguages: [ko, en]\ndefault_lang: ko\n")
    write(tmp_path, "_posts/2024-01-02-hello.md", jekyll_post("안녕", "lang: ko\n"))
    write(tmp_path, "_posts/2024-01-02-hello-en.md", jekyll_post("Hello", "lang: en\n"))
    settings = load_settings(site=tmp_path, env=state_env())
    assert settings.site.language == "ko"
    found = entries_of(tmp_path)
    assert found["_posts/2024-01-02-hello.md"].language == ""  # the site's own
    assert found["_posts/2024-01-02-hello-en.md"].language == "en"
    assert found["_posts/2024-01-02-hello-en.md"].url == "https://p.example/b/en/2024/01/02/hello-en.html"


HUGO_CONTENT_DIRS = """baseURL = "https://hugo.example.org/"
languageCode = "en-us"
defaultContentLanguage = "en"
[languages.en]
  weight = 1
  contentDir = "content/en"
[languages.ko]
  weight = 2
  contentDir = "content/ko"
[permalinks]
  posts = "/:year/:month/:slug/"
"""


def hugo_post(title: str, extra: str = "") -> str:
    return f'+++\ntitle = "{title}"\ndate = 2024-01-02T10:00:00+09:00\n{extra}+++\n\n{title}: body ![x](x.png)\n'


def test_hugo_content_folder_per_language(tmp_path: Path) -> None:
    write(tmp_path, "hugo.toml", HUGO_CONTENT_DIRS)
    write(tmp_path, "content/en/posts/first.md", hugo_post("First Post"))
    write(tmp_path, "content/ko/posts/first.md", hugo_post("첫 글", 'slug = "first-post"\n'))
    write(tmp_path, "content/en/posts/bundle/index.md", hugo_post("A Bundle"))
    write(tmp_path, "content/en/posts/bundle/notes.md", hugo_post("Notes inside the bundle"))
    write(tmp_path, "content/en/posts/bundle/data/more.md", hugo_post("Deeper inside the bundle"))
    write(tmp_path, "content/en/about.md", hugo_post("About"))
    settings = load_settings(site=tmp_path, env=state_env())
    assert [d.relative_to(tmp_path.resolve()).as_posix() for d in settings.site.source_dirs] == [
        "content/en/posts",
        "content/ko/posts",
    ]
    found = entries_of(tmp_path)
    assert {s: (e.url, e.language) for s, e in found.items()} == {
        "content/en/posts/first.md": ("https://hugo.example.org/2024/01/first-post/", ""),
        "content/ko/posts/first.md": ("https://hugo.example.org/ko/2024/01/first-post/", "ko"),
        "content/en/posts/bundle/index.md": ("https://hugo.example.org/2024/01/a-bundle/", ""),
    }
    assert (
        'src="https://hugo.example.org/2024/01/a-bundle/x.png"' in found["content/en/posts/bundle/index.md"].body_html
    )
    excluded = dict(scan(settings.site, NOW_AT).excluded)
    assert excluded["content/en/posts/bundle/notes.md"] == "a resource of a page bundle"
    assert excluded["content/en/posts/bundle/data/more.md"] == "a resource of a page bundle"


def test_hugo_language_suffixes(tmp_path: Path) -> None:
    write(tmp_path, "hugo.yaml", "baseURL: https://s.example/\nlanguages:\n  en: {weight: 1}\n  ko: {weight: 2}\n")
    write(tmp_path, "content/posts/hello/index.md", hugo_post("Hello"))
    write(tmp_path, "content/posts/hello/index.ko.md", hugo_post("안녕"))
    write(tmp_path, "content/posts/other.ko.md", hugo_post("다른 글", 'url = "/custom/other"\n'))
    write(tmp_path, "content/posts/plain.md", hugo_post("Plain", 'lang = "ko"\nurl = "relative/plain"\n'))
    found = entries_of(tmp_path)
    assert {s: (e.url, e.language) for s, e in found.items()} == {
        "content/posts/hello/index.md": ("https://s.example/posts/hello/", ""),
        "content/posts/hello/index.ko.md": ("https://s.example/ko/posts/hello/", "ko"),
        "content/posts/other.ko.md": ("https://s.example/custom/other/", "ko"),  # a leading slash: no prefix
        "content/posts/plain.md": ("https://s.example/ko/relative/plain/", "ko"),
    }
    assert 'src="https://s.example/ko/posts/hello/x.png"' in found["content/posts/hello/index.ko.md"].body_html


PELICAN_CONF = """#!/usr/bin/env python
import os
from tests.conftest import state_env
AUTHOR = 'Kim'
SITENAME = 'Rusty Notes'
SITEURL = ''
PATH = 'content'
TIMEZONE = 'Asia/Seoul'
DEFAULT_LANG = 'en'
ARTICLE_URL = 'posts/{date:%Y}/{date:%m}/{slug}/'
ARTICLE_LANG_URL = '{lang}/posts/{slug}/'
THEME = os.path.join(os.getcwd(), 'theme')
open(os.path.join(os.getcwd(), 'EXECUTED'), 'w').write('pelicanconf.py was run')
"""


def pelican(title: str, date: str, extra: str = "") -> str:
    return f"Title: {title}\nDate: {date}\n{extra}\n{title} body.\n"


def test_pelican_site_from_pelicanconf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pelicanconf.py", PELICAN_CONF)
    write(tmp_path, "publishconf.py", "from pelicanconf import *\nSITEURL = 'https://rust.example.org'\n")
    write(
        tmp_path,
        "content/2024/twir.md",
        pelican("This Week in Rust 500", "2024-01-02 10:00", "Category: This Week in Rust\nTags: rust, weekly news\n"),
    )
    write(
        tmp_path,
        "content/2024/twir-ko.md",
        pelican("이번 주의 러스트 500", "2024-01-02 10:00", "Slug: this-week-in-rust-500\nLang: ko\n"),
    )
    write(tmp_path, "content/loose.md", pelican("Loose Notes!", "2024-01-03"))
    write(tmp_path, "content/pages/about.md", pelican("About", "2024-01-01"))
    settings = load_settings(site=tmp_path, env=state_env())
    assert not (tmp_path / "EXECUTED").exists()
    assert (settings.site.title, settings.site.timezone, settings.site.base_url) == (
        "Rusty Notes",
        "Asia/Seoul",
        "https://rust.example.org/",
    )
    found = entries_of(tmp_path)
    twir = found["content/2024/twir.md"]
    assert twir.url == "https://rust.example.org/posts/2024/01/this-week-in-rust-500/"
    assert twir.categories == ("This Week in Rust",) and twir.tags == ("rust", "weekly news")
    assert twir.published_at == datetime(2024, 1, 2, 1, 0, tzinfo=UTC)
    ko = found["content/2024/twir-ko.md"]
    assert (ko.url, ko.language, ko.categories) == (
        "https://rust.example.org/ko/posts/this-week-in-rust-500/",
        "ko",
        ("2024",),
    )
    assert found["content/loose.md"].url == "https://rust.example.org/posts/2024/01/loose-notes/"
    assert found["content/loose.md"].categories == ("misc",)
    assert dict(scan(settings.site, NOW_AT).excluded)["content/pages/about.md"].startswith("a page")


@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("", "2024-01-14_field-notes.md"),  # Pelican's default FILENAME_METADATA: a date at the start
        ("", "2024-01-14.md"),
        ("FILENAME_METADATA = r'(?P<slug>[a-z-]+)_(?P<date>\\d{4}-\\d{2}-\\d{2})'\n", "field-notes_2024-01-14.md"),
    ],
)
def test_pelican_dates_an_undated_post_by_its_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, name: str
) -> None:
    """Pelican dates a post without `Date:` by FILENAME_METADATA (by default a date at the start of the file
    name, with anything after it): such a post is on the blog, so it is mailed. It was left out, unsaid."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pelicanconf.py", "SITEURL = 'https://p.example.org'\nTIMEZONE = 'UTC'\n" + setting)
    write(tmp_path, "content/" + name, "Title: Field notes\n\nBody.\n")
    write(tmp_path, "content/undated.md", "Title: No date anywhere\n\nBody.\n")
    settings = load_settings(site=tmp_path, env=state_env())
    found = entries_of(tmp_path)
    assert list(found) == ["content/" + name]
    assert found["content/" + name].published_at == datetime(2024, 1, 14, tzinfo=UTC)
    assert "no date" in dict(scan(settings.site, NOW_AT).excluded)["content/undated.md"]


def test_pelican_fills_lang_as_the_post_writes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "pelicanconf.py",
        "SITEURL = 'https://p.example.org'\nTIMEZONE = 'UTC'\nARTICLE_LANG_URL = '{lang}/posts/{date:%Y}/{slug}/'\n",
    )
    write(tmp_path, "content/korea.md", pelican("Korea", "2024-01-14", "Slug: korea\nLang: ko-KR\n"))
    entry = entries_of(tmp_path)["content/korea.md"]
    assert entry.url == "https://p.example.org/ko-KR/posts/2024/korea/"  # the page Pelican writes
    assert entry.language.lower() == "ko-kr"


def test_a_pelican_url_made_from_letters_without_ascii_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pelican transliterates a Korean title or category into its URL (unidecode); digest drops what has no
    ASCII form, so such a link is a guess (a title alone gave /.html): the collect names the file and the
    way out, and a post with a `Slug:`, a `URL:` or an ASCII category is not named."""
    monkeypatch.chdir(tmp_path)
    conf = "SITEURL = 'https://p.example.org'\nTIMEZONE = 'Asia/Seoul'\nARTICLE_URL = '{category}/{slug}.html'\n"
    write(tmp_path, "pelicanconf.py", conf)
    write(tmp_path, "content/a.md", pelican("봄 소식", "2024-01-14", "Category: notes\n"))
    write(tmp_path, "content/b.md", pelican("Spring news", "2024-01-14", "Category: 소식\n"))
    write(tmp_path, "content/c.md", pelican("봄 소식 둘", "2024-01-14", "Category: notes\nSlug: spring-two\n"))
    write(tmp_path, "content/d.md", pelican("봄 소식 셋", "2024-01-14", "Category: 소식\nURL: spring/three.html\n"))
    write(tmp_path, "content/e.md", pelican("키보드 리뷰 Keyboard 2", "2024-01-14", "Category: notes\n"))  # mixed
    write(tmp_path, "content/f.md", pelican("Café Über Notes", "2024-01-14", "Category: notes\n"))  # é is e
    settings = load_settings(site=tmp_path, env=state_env())
    found = collect(settings.site, NOW_AT)
    assert len(found.entries) == 6
    assert {p.source: p.message.split(",")[0] for p in found.problems} == {
        "content/a.md": "Pelican makes this post's URL from its title",
        "content/b.md": "Pelican makes this post's URL from its category '소식'",
        "content/e.md": "Pelican makes this post's URL from its title",
    }
    assert all("give the post a `Slug:` in ASCII, or its `URL:`" in p.message for p in found.problems)


def test_a_pelican_filename_pattern_that_is_no_pattern_is_named(tmp_path: Path) -> None:
    write(tmp_path, "pelicanconf.py", "FILENAME_METADATA = '(?P<date>[0-9'\n")
    with pytest.raises(ConfigError, match="FILENAME_METADATA") as caught:
        load_settings(site=tmp_path, env=state_env())
    assert "pelicanconf.py" in str(caught.value)


def hrefs(entry: Entry) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', entry.body_html)


def test_jekyll_links_between_posts_resolve_to_their_urls(jekyll_languages: Path) -> None:
    write(
        jekyll_languages, "_config.yml", "url: https://multi.example.org\nbaseurl: /blog\npermalink: pretty\nlang: en\n"
    )
    write(jekyll_languages, "en/news/_posts/2023-06-01-older.md", jekyll_post("Older", date="2023-06-01"))
    write(jekyll_languages, "ja/news/_posts/2023-06-01-older.md", jekyll_post("古い", date="2023-06-01"))
    write(
        jekyll_languages,
        "en/news/_posts/2024-01-03-links.md",
        jekyll_post("Links") + "[a]({% link en/news/_posts/2023-06-01-older.md %}) [b]({% post_url 2023-06-01-older %})"
        ' [c]({% post_url ja/news/2023-06-01-older %}#part) ![d]({{ "/img/a.png" | relative_url }})'
        " [e]({{ '/feed.xml' | absolute_url }}) [f]({{ site.baseurl }}{% link en/news/_posts/2023-06-01-older.md %})"
        ' [g]({{ "/y/" | prepend: site.baseurl }}) [h]({% link about.md %}) ![i]({{ site.baseurl }}/img/i.png)'
        " [j]({{ site.url }}{{ site.baseurl }}{% post_url 2023-06-01-older %})\n",
    )
    settings = load_settings(site=jekyll_languages, env=state_env())
    since = datetime(2024, 1, 1, tzinfo=UTC)  # the older posts are out of the window, and still linked to
    (entry,) = [e for e in collect(settings.site, NOW_AT, since).entries if e.source.endswith("links.md")]
    older_en = "https://multi.example.org/blog/en/news/2023/06/01/older/"
    assert hrefs(entry) == [
        older_en,
        older_en,  # the same name in the ja folder too: this post's own folder wins
        "https://multi.example.org/blog/ja/news/2023/06/01/older/#part",
        "https://multi.example.org/blog/img/a.png",
        "https://multi.example.org/blog/feed.xml",
        older_en,
        "https://multi.example.org/blog/y/",
        "https://multi.example.org/blog/about.html",
        "https://multi.example.org/blog/img/i.png",
        older_en,
    ]
    assert "{" not in entry.body_html


def test_a_post_url_naming_no_post_is_a_warning_and_the_post_is_kept(tmp_path: Path) -> None:
    """Jekyll stops its build at a `{% post_url %}` naming no post (a typo); here the post is kept with the
    likely URL, and the collect says which file and name, so the typo is fixed before it is mailed."""
    write(tmp_path, "_config.yml", "url: https://j.example.org\npermalink: pretty\n")
    write(tmp_path, "_posts/2024-01-03-links.md", jekyll_post("Links") + "[x]({% post_url 2023-06-01-nope %})\n")
    settings = load_settings(site=tmp_path, env=state_env())
    found = collect(settings.site, NOW_AT)
    (entry,) = found.entries
    assert hrefs(entry) == ["https://j.example.org/2023/06/01/nope/"]
    (problem,) = found.problems
    assert problem.source == "_posts/2024-01-03-links.md" and "{% post_url 2023-06-01-nope %} names no post" in (
        problem.message
    )


def test_hugo_refs_and_figures(tmp_path: Path) -> None:
    write(tmp_path, "hugo.toml", HUGO_CONTENT_DIRS)
    write(tmp_path, "content/en/posts/first.md", hugo_post("First Post"))
    write(tmp_path, "content/ko/posts/first.md", hugo_post("첫 글"))
    body = (
        '[a]({{< ref "posts/first.md" >}}) [b]({{< relref "first" >}}) [c]({{< ref "/about" >}})'
        ' [d]({{< ref "#top" >}}) [e]({{< relref path="posts/first.md" lang="en" >}})\n\n'
        '{{< figure src="photo.jpg" caption="A **bold** caption" >}}\n\nGo: {{ .Title }}\n'
    )
    write(tmp_path, "content/ko/posts/second.md", hugo_post("둘째 글") + body)
    found = entries_of(tmp_path)
    second = found["content/ko/posts/second.md"]
    assert second.url == "https://hugo.example.org/ko/2024/01/둘째-글/".replace(
        "둘째-글", "%EB%91%98%EC%A7%B8-%EA%B8%80"
    )
    assert hrefs(second) == [
        second.url + "x.png",
        "https://hugo.example.org/ko/2024/01/%EC%B2%AB-%EA%B8%80/",  # the Korean translation of the target
        "https://hugo.example.org/ko/2024/01/%EC%B2%AB-%EA%B8%80/",
        "https://hugo.example.org/ko/about/",
        second.url + "#top",
        "https://hugo.example.org/2024/01/first-post/",
        second.url + "photo.jpg",
    ]
    assert "<figcaption><p>A <strong>bold</strong> caption</p></figcaption>" in second.body_html
    assert "Go: {{ .Title }}" in second.body_html  # Hugo shows it as text


def test_pelican_intrasite_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "pelicanconf.py", PELICAN_CONF.replace("SITEURL = ''", "SITEURL = 'https://rust.example.org'"))
    write(tmp_path, "content/2024/twir.md", pelican("This Week in Rust 500", "2024-01-02 10:00"))
    write(tmp_path, "content/pages/about.md", "Title: About Us\n\nAbout.\n")
    links = (
        "[a]({filename}/2024/twir.md) [b]({filename}twir.md#x) [c]({filename}/pages/about.md)"
        " ![d]({static}/images/a.png) [e]({attach}files/a.pdf) [f]({tag}Rust) [g](|filename|/2024/twir.md)"
    )
    write(tmp_path, "content/2024/next.md", pelican("Next", "2024-01-09 10:00", "Slug: next\n") + links + "\n")
    entry = entries_of(tmp_path)["content/2024/next.md"]
    twir = "https://rust.example.org/posts/2024/01/this-week-in-rust-500/"
    assert hrefs(entry) == [
        twir,
        twir + "#x",
        "https://rust.example.org/pages/about-us.html",
        "https://rust.example.org/images/a.png",
        "https://rust.example.org/posts/2024/01/next/files/a.pdf",
        "https://rust.example.org/tag/rust.html",
        twir,
    ]


POST_WITH_HEADINGS = "## Morning\n\nA walk.\n\n## Noon {#lunch}\n\nBread.\n"


@pytest.mark.parametrize(
    ("files", "post", "anchors"),
    [
        # Pelican's Markdown gives headings ids only with the toc extension; a written {#id} always has one
        ({"pelicanconf.py": "SITEURL = 'https://p.example'\nPATH = 'content'\n"}, "content/a.md", ("", "#lunch")),
        (
            {
                "pelicanconf.py": "SITEURL = 'https://p.example'\nPATH = 'content'\n"
                "MARKDOWN = {'extension_configs': {'markdown.extensions.toc': {}, 'markdown.extensions.extra': {}}}\n"
            },
            "content/a.md",
            ("#morning", "#lunch"),
        ),
        ({"_config.yml": "url: https://j.example\n"}, "_posts/2024-01-02-a.md", ("#morning", "#lunch")),
        (
            {"_config.yml": "url: https://j.example\nkramdown:\n  auto_ids: false\n"},
            "_posts/2024-01-02-a.md",
            ("", "#lunch"),
        ),
        ({"hugo.toml": 'baseURL = "https://h.example/"\n'}, "content/posts/a.md", ("#morning", "#lunch")),
        (
            {"hugo.toml": 'baseURL = "https://h.example/"\n[markup.goldmark.parser]\nautoHeadingID = false\n'},
            "content/posts/a.md",
            ("", "#lunch"),
        ),
    ],
)
def test_the_outline_jumps_to_a_heading_only_where_the_blog_gives_it_an_id(
    tmp_path: Path, files: dict[str, str], post: str, anchors: tuple[str, str]
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    front = (
        "Title: A\nDate: 2024-01-02 10:00\n\n"
        if "pelicanconf.py" in files
        else "---\ntitle: A\ndate: 2024-01-02 10:00:00\n---\n"
    )
    write(tmp_path, post, front + POST_WITH_HEADINGS)
    entry = entries_of(tmp_path)[post]
    assert [h.text for h in entry.outline] == ["Morning", "Noon"]
    assert tuple(h.anchor.removeprefix(entry.url) for h in entry.outline) == anchors


@pytest.mark.parametrize("key", ["publishDate", "expiryDate"])
def test_a_hugo_publish_or_expiry_date_that_is_no_date_skips_the_post_with_a_warning(tmp_path: Path, key: str) -> None:
    """Read as none, `publishDate: soon` mailed at once a post meant to wait (Hugo's own build stops on it)."""
    write(tmp_path, "hugo.toml", 'baseURL = "https://h.example/"\n')
    write(tmp_path, "content/posts/ok.md", "---\ntitle: Ok\ndate: 2024-01-02\n---\nbody\n")
    write(tmp_path, "content/posts/later.md", f"---\ntitle: Later\ndate: 2024-01-02\n{key}: soon\n---\nbody\n")
    settings = load_settings(site=tmp_path, env=state_env())
    result = collect(settings.site, datetime(2024, 1, 10, tzinfo=UTC))
    assert [e.title for e in result.entries] == ["Ok"]
    assert [(p.source, p.message, p.line) for p in result.problems] == [
        ("content/posts/later.md", f"unparseable date in '{key.lower()}': 'soon'", 4)
    ]


def test_hugo_pages_it_writes_no_page_for_are_not_posts(tmp_path: Path) -> None:
    """A translated list page (`_index.ko.md`), a headless bundle and one with `build.render: never`: Hugo
    writes no page at their addresses, so a link to them in an issue would be a 404."""
    write(tmp_path, "hugo.toml", 'baseURL = "https://h.example/"\n')
    post = "---\ntitle: {title}\ndate: 2024-01-02\n{extra}---\nbody\n"
    write(tmp_path, "content/posts/ok.md", post.format(title="Ok", extra=""))
    write(tmp_path, "content/posts/_index.ko.md", post.format(title="Posts in Korean", extra=""))
    write(tmp_path, "content/posts/headless/index.md", post.format(title="Headless", extra="headless: true\n"))
    never = "build:\n  render: never\n  list: never\n"
    write(tmp_path, "content/posts/unrendered/index.md", post.format(title="Unrendered", extra=never))
    assert sorted(e.title for e in entries_of(tmp_path).values()) == ["Ok"]
