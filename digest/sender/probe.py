"""The live half of `digest doctor`: the one-click unsubscribe endpoint probed as a mailbox provider would.

The probe uses a real, signed unsubscribe token made for PROBE_ADDRESS, an address under `.invalid`
(RFC 2606: it can never be a subscriber's). `digest serve` checks the token like any other, so a probe
that passes also shows that the server and the sender share DIGEST_SECRET, then recognises the address
and answers the POST as usual while recording nothing. GET must show a confirmation form: mail scanners
and link previews follow every link, so a GET that unsubscribed would unsubscribe people who never asked.

http.client (not a client that follows redirects): RFC 8058 wants the POST answered directly, so a redirect
is a finding, not something to follow.
"""

from __future__ import annotations

import http.client
import re
import ssl
from urllib.parse import urlsplit

from digest.records import Finding

PROBE_ADDRESS = "doctor-probe@digest.invalid"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
_FORM = re.compile(rb"<form\b[^>]*\bmethod\s*=\s*[\"']?post", re.I)
_LOCAL = ("localhost", "127.0.0.1", "::1")


def is_probe(address: str) -> bool:
    return address.strip().lower() == PROBE_ADDRESS


def _request(
    url: str, method: str, timeout: float, context: ssl.SSLContext | None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context or ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    headers = {"User-Agent": "digest-doctor (RFC 8058 probe)"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(200_000)
    finally:
        connection.close()


def _unreachable(check: str, url: str, exc: BaseException) -> Finding:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Finding(
            check,
            "fail",
            f"the TLS certificate of {urlsplit(url).netloc} is not valid: {exc.verify_message}",
            "install a certificate a browser accepts (mailbox providers do not follow a link with a bad one)",
        )
    return Finding(
        check,
        "fail",
        f"cannot reach {url.split('?', 1)[0]}: {exc}",
        "start `digest serve` and make email.public_url the address where it answers",
    )


def _refused(status: int) -> str:
    return {
        400: "the server refuses the link: does `digest serve` have the same DIGEST_SECRET as the sender?",
        404: "no unsubscribe page there: email.public_url must point at `digest serve`",
        405: "no unsubscribe page there: email.public_url must point at `digest serve`",
        503: "the server has no DIGEST_SECRET: set it where `digest serve` runs",
    }.get(status, "check `digest serve` and what is in front of it (a proxy, a firewall)")


def probe_unsubscribe(url: str, timeout: float = 10.0, context: ssl.SSLContext | None = None) -> list[Finding]:
    """POST and GET of the probe's unsubscribe URL: 2xx without a redirect, a form on GET, valid TLS."""
    findings: list[Finding] = []
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in _LOCAL:
        findings.append(
            Finding(
                "unsubscribe https",
                "warn",
                f"email.public_url is {parts.scheme}://: Gmail and Yahoo want one-click unsubscribe over https",
                "serve it over https (a reverse proxy with a certificate in front of `digest serve`)",
            )
        )
    check = "unsubscribe post"
    try:
        status, headers, _ = _request(url, "POST", timeout, context, ONE_CLICK_BODY)
    except (OSError, http.client.HTTPException) as exc:
        return [*findings, _unreachable(check, url, exc)]
    if 300 <= status < 400:
        findings.append(
            Finding(
                check,
                "fail",
                f"POST answers {status} (a redirect to {headers.get('location', '?')})",
                "RFC 8058 needs the POST answered directly with 2xx: serve /unsubscribe without a redirect "
                "(e.g. http to https) in front of it",
            )
        )
    elif not 200 <= status < 300:
        findings.append(Finding(check, "fail", f"POST answers {status}", _refused(status)))
    else:
        tls = ", valid TLS" if parts.scheme == "https" else ""
        findings.append(Finding(check, "ok", f"one-click POST answers {status} without a redirect{tls}"))
    check = "unsubscribe get"
    try:
        status, headers, body = _request(url, "GET", timeout, context)
    except (OSError, http.client.HTTPException) as exc:
        return [*findings, _unreachable(check, url, exc)]
    if 200 <= status < 300 and _FORM.search(body):
        findings.append(Finding(check, "ok", "GET shows a confirmation form and changes nothing"))
    elif 200 <= status < 300:
        findings.append(
            Finding(
                check,
                "fail",
                "GET answers without a confirmation form: a mail scanner following the link may unsubscribe people",
                "GET must only show a form that POSTs (as `digest serve` does)",
            )
        )
    else:
        findings.append(Finding(check, "fail", f"GET answers {status}", _refused(status)))
    return findings
