from __future__ import annotations

from datetime import datetime

import pytest

from digest.collector.permalink import PostPath, build_path, build_url, file_slug
from digest.text import PERMALINK_TOKENS
from tests.support_collector import SEOUL

WHEN = datetime(2021, 3, 5, 7, 8, 9, tzinfo=SEOUL)
JEKYLL = PostPath("_posts/2021-03-05-Spring-Notes.md", WHEN, "Spring Notes: 봄", ("Garden", "Life"))
BUNDLE = PostPath("blog/2021/03/2021-03-05-bundle-post/index.md", WHEN, "Bundle")


@pytest.mark.parametrize(
    ("pattern", "post", "path"),
    [
        ("/:year/:month/:day/:title/", JEKYLL, "/2021/03/05/Spring-Notes/"),
        ("/:year-:month/:title", JEKYLL, "/2021-03/Spring-Notes"),
        ("/:categories/:year/:month/:day/:title.html", JEKYLL, "/garden/life/2021/03/05/Spring-Notes.html"),
        ("/:i_month/:i_day/:hour:minute:second/", JEKYLL, "/3/5/070809/"),
        ("/:slug/", JEKYLL, "/spring-notes-%EB%B4%84/"),
        ("/:section/:filename/", BUNDLE, "/blog/2021-03-05-bundle-post/"),
        ("/:path/", BUNDLE, "/blog/2021/03/2021-03-05-bundle-post/"),
        ("/:title/", BUNDLE, "/bundle-post/"),
        ("/:categories/:title/", BUNDLE, "/bundle-post/"),  # no categories: no empty segment
        ("/:year/:unknown/", JEKYLL, "/2021/:unknown/"),
        ("/:categories/:title:output_ext", JEKYLL, "/garden/life/Spring-Notes.html"),
        ("/:w_year/W:week/:w_day-:long_day/", JEKYLL, "/2021/W09/5-Friday/"),
        ("/:slugified_categories/:title/", PostPath("_posts/a.md", WHEN, "A", ("This Week",)), "/this-week/a/"),
    ],
)
def test_pattern_tokens(pattern: str, post: PostPath, path: str) -> None:
    assert build_path(pattern, post) == path


def test_every_token_the_config_accepts_is_filled_in() -> None:
    for token in PERMALINK_TOKENS:
        assert f":{token}" not in build_path(f"/:{token}/", JEKYLL), token


@pytest.mark.parametrize(
    ("post", "pattern", "path"),
    [
        (
            PostPath("_posts/2021-03-05-a.md", WHEN, "A", override="/custom/:year/page.html"),
            "/:title/",
            "/custom/2021/page.html",
        ),
        (PostPath("blog/x/index.md", WHEN, "X", override="/2021/03/05/moved"), "/:path/", "/2021/03/05/moved"),
        (PostPath("_posts/2021-03-05-a.md", WHEN, "A", slug="my-slug"), "/:year/:title/", "/2021/my-slug/"),
        (PostPath("blog/2021/x/index.md", WHEN, "X", slug="other"), "/:path/", "/blog/2021/other/"),
    ],
)
def test_front_matter_overrides(post: PostPath, pattern: str, path: str) -> None:
    assert build_path(pattern, post) == path


def test_url_joins_base() -> None:
    assert build_url("https://u.github.io/blog/", "/:title/", JEKYLL) == "https://u.github.io/blog/Spring-Notes/"


@pytest.mark.parametrize(
    ("rel", "slug"),
    [
        ("_posts/2021-05-10-infos.md", "infos"),
        ("blog/2017/04/2017-04-24-slug/index.md", "slug"),
        ("notes/plain.md", "plain"),
    ],
)
def test_file_slug(rel: str, slug: str) -> None:
    assert file_slug(rel) == slug


def _jekyll(name: str, slug: str = "", categories: tuple[str, ...] = ()) -> PostPath:
    return PostPath(f"_posts/{name}", WHEN, "Any title", categories, slug=slug, kind="jekyll")


@pytest.mark.parametrize(
    ("post", "pattern", "path"),
    [
        # :title is the slug (front matter's, else the file name's) slugified "pretty" and cased, as Jekyll's
        # UrlDrop#title; :slug the same in the default mode, lower-cased
        (_jekyll("2026-03-04-Hello World.md"), "/:title/", "/Hello-World/"),
        (_jekyll("2026-03-04-Hello World.md"), "/:slug/", "/hello-world/"),
        (_jekyll("2026-03-05-other.md", slug="My Custom Slug"), "/:title/", "/My-Custom-Slug/"),
        (_jekyll("2026-03-05-other.md", slug="My Custom Slug"), "/:slug/", "/my-custom-slug/"),
        (_jekyll("2026-03-06-Q&A: what (not) to do!.md"), "/:title/", "/Q&A-what-(not)-to-do!/"),
        (_jekyll("2026-03-06-Q&A: what (not) to do!.md"), "/:slug/", "/q-a-what-not-to-do/"),
        (_jekyll("2026-03-07-v1.2_release notes...md"), "/:title/", "/v1.2_release-notes/"),
        (_jekyll("2026-03-08-봄 노트.md"), "/:title/", "/%EB%B4%84-%EB%85%B8%ED%8A%B8/"),
        (_jekyll("2026-03-09-plain-name.md"), "/:year/:title.html", "/2021/plain-name.html"),
        (
            _jekyll("2026-03-09-a.md", categories=("Field Reports", "C++")),
            "/:slugified_categories/:title/",
            "/field-reports/c/a/",
        ),
        (_jekyll("2026-03-09-a.md", categories=("Field Reports",)), "/:categories/:title/", "/field%20reports/a/"),
    ],
)
def test_jekyll_titles_and_slugs_are_slugified_as_jekyll_does(post: PostPath, pattern: str, path: str) -> None:
    assert build_path(pattern, post) == path
