from __future__ import annotations

import re
from dataclasses import replace

import pytest

from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK
from digest.templater.text import render_text
from tests.support_templater import POST_URL, make_issue, make_settings, make_site


def text(summarize: bool = False, language: str = "ko") -> str:
    site = replace(make_site(), language=language)
    return render_text(make_issue(site=site), make_settings(site), summarize=summarize)


def test_text_part_stands_on_its_own() -> None:
    body = text(language="en")
    assert "<" not in body.replace("<script>alert(1)</script>", "")  # no markup but the title as written
    assert "2024-W10 (2024-03-04 – 2024-03-10)" in body
    assert "1. Garden log" in body and "2. 주간 개발 뉴스 (3월 1주차)" in body
    assert "2024-03-06 · news, Rust, LLM\n" + POST_URL in body
    assert "In this post:\n  - 러스트 UI 툴킷 소식 [3]\n  - Tiny LLM 실험 [4]" in body
    assert f"Unsubscribe: {UNSUBSCRIBE_URL_MARK}" in body
    assert RECIPIENT_EMAIL_MARK in body


def test_every_reference_number_is_listed_once_at_the_end() -> None:
    body = text(language="en")
    main, _, listing = body.partition("\nReferences\n")
    used = {int(n) for n in re.findall(r"\[(\d+)\]", main)}
    listed = [int(n) for n in re.findall(r"^\[(\d+)\] https?://\S+$", listing, re.M)]
    assert listed == sorted(used) == list(range(1, len(listed) + 1))
    assert "[5] https://tools.example.net/rust-ui" in listing


@pytest.mark.parametrize(
    ("summarize", "present", "absent"), [(False, "메모리 4GB", "이번 주에는"), (True, "이번 주에는", "메모리 4GB")]
)
def test_bodies_or_summaries(summarize: bool, present: str, absent: str) -> None:
    body = text(summarize)
    assert present in body
    assert absent not in body


def test_text_is_deterministic() -> None:
    assert text() == text()
