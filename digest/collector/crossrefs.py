"""Links from one post to another, resolved from the site's own files to absolute URLs: Jekyll's
`{% link %}` and `{% post_url %}`, Hugo's `ref`/`relref`, Pelican's `{filename}`, `{static}`, `{attach}`.

A target is read (front matter only, through the reader's cache) only when a post links to it, so a
weekly run still leaves old posts unread. A target that cannot be found still gets the URL its generator
would most likely give it, never an empty link.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urljoin, urlsplit
from zoneinfo import ZoneInfo

from digest.dates import ImpossibleDate, date_from_path
from digest.models import Site

from . import meta as m
from .layout import Found
from .permalink import PostPath, build_url, file_slug, pelican_slug
from .reader import Post, front_matter, read_post
from .urls import language_of, post_url

# markdown-it percent-encodes { } | in link destinations
_PELICAN = re.compile(
    r"^(?:\{|%7B|\||%7C)(filename|static|attach|tag|category|author|index)(?:\}|%7D|\||%7C)(.*)$", re.I
)
# Pelican's links as an author writes them: `{filename}…`, the older `|filename|…`, or percent-encoded
_PELICAN_IN_TEXT = re.compile(
    r"(?:\{|%7B|\||%7C)(?:filename|static|attach|tag|category|author|index)(?:\}|%7D|\||%7C)", re.I
)


def links_others(site: Site, body: str) -> bool:
    """True when ``body`` may link to other files of the site (what Resolver resolves): it holds template
    code (Jekyll's `{% post_url %}` and `{{ site.baseurl }}`, Hugo's `{{< ref >}}`, Pelican's liquid tags;
    liquid.strip_templates leaves a body without `{%` or `{{` as it is), or a Pelican link. A post without
    any (braces in its code blocks are not template code) is rendered without the site's files, and no
    change to another post can change it."""
    if "{%" in body or "{{" in body:
        return True
    return site.generator.kind == "pelican" and _PELICAN_IN_TEXT.search(body) is not None


@dataclass
class Resolver:
    """The site's files, for the posts of one collect to link to each other."""

    site: Site
    files: list[Found]
    _sources: dict[str, Found] = field(default_factory=dict)
    _stems: dict[str, list[Found]] = field(default_factory=dict)

    @property
    def _by_source(self) -> dict[str, Found]:
        """Built on the first link: most collects have none to resolve."""
        if not self._sources and self.files:
            self._sources.update((found.source, found) for found in self.files)
        return self._sources

    @property
    def _by_stem(self) -> dict[str, list[Found]]:
        if not self._stems and self.files:
            for found in self.files:
                self._stems.setdefault(found.source.rsplit("/", 1)[-1].rsplit(".", 1)[0], []).append(found)
        return self._stems

    def post(self, found: Found) -> Post | None:
        if found.place.not_a_post:
            return None
        post = read_post(self.site, found)
        return post if isinstance(post, Post) else None

    def url(self, found: Found) -> str | None:
        post = self.post(found)
        return post_url(self.site, post) if post is not None else None

    def absolute(self, path: str) -> str:
        """A site path (`/img/a.png`, `img/a.png`) as an absolute URL: Jekyll's relative_url and absolute_url."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", path, re.I) or path.startswith("//"):
            return path
        return self.site.base_url + path.lstrip("/")

    def for_post(self, post: Post) -> PostLinks:
        return PostLinks(self, post)


@dataclass
class PostLinks:
    """The links of one post (relative paths and "the same language" are judged from it)."""

    resolver: Resolver
    post: Post
    missing: list[str] = field(default_factory=list)  # `{% post_url %}` names that matched no post

    @property
    def site(self) -> Site:
        return self.resolver.site

    def page_url(self) -> str:
        return post_url(self.site, self.post)

    def absolute(self, path: str) -> str:
        return self.resolver.absolute(path)

    def base_path(self) -> str:
        return urlsplit(self.site.base_url).path.rstrip("/")

    def site_root(self) -> str:
        parts = urlsplit(self.site.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- Jekyll --------------------------------------------------------------------------------------

    def link(self, path: str) -> str:
        """`{% link path %}`: the URL of the file at ``path`` (relative to the site)."""
        path, anchor = _split_anchor(path.strip().strip("'\"").lstrip("/"))
        found = self.resolver._by_source.get(path)
        url = self.resolver.url(found) if found is not None else None
        if url is None:
            stem, _, ext = path.rpartition(".")
            page = f"{stem}.html" if ext.lower() in ("md", "markdown", "html") and stem else path
            url = self.absolute(page)
        return url + anchor

    def post_url(self, name: str) -> str:
        """`{% post_url [folder/]2024-01-02-slug %}`: that post's URL; several posts of that name (one per
        language folder): the one in this post's `_posts` folder, else of its language."""
        name, anchor = _split_anchor(name.strip().strip("'\"").lstrip("/"))
        folder, _, stem = name.rpartition("/")
        candidates = [
            f
            for f in self.resolver._by_stem.get(stem, [])
            if "_posts/" in f.source
            and (not folder or f"{folder}/_posts/" in f.source or f.source.startswith(f"_posts/{folder}/"))
        ]
        here = self.post.source.rsplit("/", 1)[0]
        candidates.sort(key=lambda f: (f.source.rsplit("/", 1)[0] != here, f.place.language != self.post.language))
        for found in candidates:
            url = self.resolver.url(found)
            if url is not None:
                return url + anchor
        self.missing.append(name)  # Jekyll stops the build there; a warning here, and the likely URL
        return self._guess(stem) + anchor

    def _guess(self, stem: str) -> str:
        try:
            when = date_from_path(stem + ".md", ZoneInfo(self.site.timezone))
        except ImpossibleDate:
            when = None
        path = PostPath(
            f"_posts/{stem}.md", when or datetime.min.replace(tzinfo=ZoneInfo(self.site.timezone)), file_slug(stem)
        )
        return build_url(self.site.base_url, self.site.permalink, path)

    # -- Hugo ----------------------------------------------------------------------------------------

    def ref(self, target: str, lang: str = "") -> str:
        """`ref`/`relref`: the page at ``target`` (a path under the content folder, relative to this post,
        or a file name), in this post's language unless ``lang`` says otherwise."""
        target, anchor = _split_anchor(target.strip().strip("'\""))
        if not target:
            return self.page_url() + anchor
        language = lang or language_of(self.site, self.post)
        for found in self._hugo_candidates(target):
            post = self.resolver.post(found)
            if post is not None and language_of(self.site, post) in (language, ""):
                return post_url(self.site, post) + anchor
        path = re.sub(r"(?:^|/)_?index(\.[\w-]+)?\.\w+$|\.\w+$", "", target.lstrip("/")).strip("/")
        path = path.lower() if self.site.generator.lower_paths else path
        root = dict(self.site.generator.language_roots).get(language, "")
        base = urljoin(self.site.base_url, root) if root else self.site.base_url
        return (base + path + "/" if path else base) + anchor

    def _hugo_candidates(self, target: str) -> list[Found]:
        files = self.resolver.files
        wanted = target.lstrip("/")
        names = {wanted} if "." in wanted.rsplit("/", 1)[-1] else {f"{wanted}.md", f"{wanted}/index.md"}
        if not target.startswith("/"):
            here = posixpath.dirname(self.post.content_path)
            names |= {posixpath.normpath(posixpath.join(here, n)) for n in names}
        exact = [f for f in files if f.place.content_path in names]
        if exact:
            return sorted(exact, key=lambda f: f.place.language != self.post.language)
        base = wanted.rsplit("/", 1)[-1]
        return [f for f in files if f.place.content_path.rsplit("/", 1)[-1] in (base, f"{base}.md")]

    # -- Pelican -------------------------------------------------------------------------------------

    def pelican(self, value: str) -> str | None:
        """`{filename}/2024/post.md`, `{static}/images/a.png`, `{attach}a.png`, `{tag}rust`, …: the URL
        Pelican writes for it; None when ``value`` is no such link."""
        match = _PELICAN.match(value)
        if match is None:
            return None
        what, rest = match.group(1).lower(), unquote(match.group(2))
        rest, anchor = _split_anchor(rest)
        if what in ("tag", "category", "author"):
            return self.absolute(f"{what}/{pelican_slug(rest)}.html") + anchor
        if what == "index":
            return self.absolute("index.html") + anchor
        content = self.site.generator.content_dirs[0][0] if self.site.generator.content_dirs else "."
        here = posixpath.dirname(self.post.content_path)
        rel = posixpath.normpath(rest.lstrip("/") if rest.startswith("/") else posixpath.join(here, rest))
        if what == "attach":
            return urljoin(self.page_url(), posixpath.relpath(rel, here or ".")) + anchor
        if what == "filename":
            source = rel if content in (".", "") else f"{content}/{rel}"
            found = self.resolver._by_source.get(source)
            url = self.resolver.url(found) if found is not None else None
            if url is not None:
                return url + anchor
            if found is not None and found.place.not_a_post:
                meta = front_matter(found)
                slug = str(meta.get("slug") or pelican_slug(m.title(meta, "", file_slug(rel))))
                return self.absolute(f"pages/{slug}.html") + anchor
        return self.absolute(rel) + anchor


def _split_anchor(value: str) -> tuple[str, str]:
    path, hash_, anchor = value.partition("#")
    return path, (hash_ + anchor if hash_ else "")
