"""Shared pieces for the sender's message tests: settings, rendered issues with placeholders, DKIM keys."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.config import EmailSettings, OutputSettings, Settings
from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK, Issue, RenderedIssue, Site, Week

NOW_AT = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)
SECRET = "a test secret that is long enough"
KOREAN_SUBJECT = "주간 소식 2024-W10: 봄맞이 산책과 파이썬 이야기"


def make_settings(tmp: Path, secret: str = SECRET, **email: Any) -> Settings:
    site = Site(
        title="Test Blog",
        base_url="https://blog.example.com/",
        root=tmp,
        source_dirs=(tmp,),
        timezone="Asia/Seoul",
        permalink="/:year/:month/:day/:title/",
    )
    defaults: dict[str, Any] = {
        "sender": "테스트 블로그 <digest@blog.example.com>",
        "reply_to": "Editor <editor@example.org>",
        "list_id": "digest.blog.example.com",
        "public_url": "https://news.example.com/",
    }
    defaults.update(email)
    return Settings(
        site=site,
        output=OutputSettings(dir=tmp / "out", url="https://blog.example.com/newsletter/"),
        email=EmailSettings(**defaults),
        secret=secret,
    )


def make_issue(tmp: Path, label: str = "2024-W10") -> Issue:
    site = make_settings(tmp).site
    week = Week(datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC), label)
    return Issue(site=site, week=week, entries=())


def body_html(size: int = 40_000) -> str:
    """An HTML email of about `size` bytes, with long inlined-style lines like premailer writes."""
    article = (
        '<tr><td style="padding:12px 24px;font-family:Georgia,serif;font-size:16px;line-height:1.6;color:#222">'
        '<h2 style="margin:0 0 8px;font-size:20px"><a href="https://blog.example.com/2024/03/05/walk/" '
        'style="color:#0645ad;text-decoration:none">봄 산책 기록 — a walk by the river</a></h2>'
        "<p>오늘은 강가를 따라 천천히 걸었다. The cherry trees are not out yet, but the buds are swelling "
        "and the air smells of wet earth. 다음 주에는 꽃이 필 것 같다.</p></td></tr>\n"
    )
    head = '<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8"></head><body><table role="presentation">\n'
    foot = (
        f'<tr><td><p style="font-size:12px;color:#666">Sent to {RECIPIENT_EMAIL_MARK}. '
        f'<a href="{UNSUBSCRIBE_URL_MARK}" style="color:#666">Unsubscribe</a></p></td></tr></table></body></html>\n'
    )
    count = max(1, (size - len(head) - len(foot)) // len(article.encode()))
    return head + article * count + foot


def body_text() -> str:
    return (
        "주간 소식 2024-W10\n\n"
        "봄 산책 기록 — a walk by the river\nhttps://blog.example.com/2024/03/05/walk/\n\n"
        "오늘은 강가를 따라 천천히 걸었다.   \n\n"
        f"Sent to {RECIPIENT_EMAIL_MARK}.\nUnsubscribe: {UNSUBSCRIBE_URL_MARK}\n"
    )


def make_rendered(tmp: Path, subject: str = KOREAN_SUBJECT, **changes: Any) -> RenderedIssue:
    html = body_html()
    rendered = RenderedIssue(
        issue=make_issue(tmp),
        subject=subject,
        html=html,
        text=body_text(),
        preheader="봄 산책",
        archive_url="https://blog.example.com/newsletter/2024-W10/",
        html_size=len(html.encode()),
    )
    return replace(rendered, **changes)


def rsa_key_pair(tmp: Path) -> tuple[Path, bytes]:
    """(private key file, the base64 public key for a DKIM TXT record); skips without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot create a DKIM test key")
    private = tmp / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-traditional", "-out", str(private), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        [openssl, "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    import base64

    return private, base64.b64encode(der)
