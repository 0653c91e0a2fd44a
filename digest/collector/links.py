"""Make every href/src in rendered HTML absolute so links work inside an email.

Site-relative paths (``/images/x.jpg``) resolve against the site's base URL; page-relative ones
(``img/x.jpg``, ``../other/``) against the page's own URL, which for a Hugo page bundle (``…/slug/index.md``)
is the bundle folder, so the caller passes that URL with a trailing slash. Fragments-only links (``#top``)
point into the page. Absolute and ``mailto:``/``tel:``/``data:`` URLs are left alone.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

_ATTR = re.compile(r"""(\s(?:href|src|poster)\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def absolute_url(value: str, page_url: str, base_url: str) -> str:
    value = value.strip()
    if not value or _SCHEME.match(value):
        return value
    if value.startswith("//"):
        return f"{urlsplit(base_url).scheme or 'https'}:{value}"
    if value.startswith("/"):
        base_path = urlsplit(base_url).path
        if base_path != "/" and value.startswith(base_path):
            return urljoin(base_url, value)
        return base_url.rstrip("/") + value
    return urljoin(page_url, value)


def absolutize(html: str, page_url: str, base_url: str) -> str:
    """Rewrite href/src/poster attributes of ``html``; the result always uses double quotes."""

    def fix(m: re.Match[str]) -> str:
        raw = next(v for v in m.groups()[1:] if v is not None)
        return f'{m.group(1)}"{absolute_url(raw, page_url, base_url).replace(chr(34), "&quot;")}"'

    return _ATTR.sub(fix, html)
