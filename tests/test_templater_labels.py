from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from digest.templater.labels import ENGLISH, KOREAN, Labels, labels_for


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", ENGLISH), ("ko", KOREAN), ("ko-KR", KOREAN), ("KO_kr", KOREAN), ("de", ENGLISH), ("", ENGLISH)],
)
def test_labels_for(language: str, expected: Labels) -> None:
    assert labels_for(language) is expected


@pytest.mark.parametrize(("labels", "one", "two"), [(ENGLISH, "1 post", "2 posts"), (KOREAN, "글 1편", "글 2편")])
def test_post_counts(labels: Labels, one: str, two: str) -> None:
    assert (labels.posts(1), labels.posts(2)) == (one, two)


@pytest.mark.parametrize("labels", [ENGLISH, KOREAN])
def test_every_label_is_filled_and_placeholders_match(labels: Labels) -> None:
    for f in fields(Labels):
        value = getattr(labels, f.name)
        assert value.strip()
        assert ("{site}" in value) == ("{site}" in getattr(ENGLISH, f.name)), f.name
        assert ("{recipient}" in value) == ("{recipient}" in getattr(ENGLISH, f.name)), f.name


def test_the_already_subscribed_mail_has_no_empty_lines_where_it_has_nothing_to_say(tmp_path: Path) -> None:
    from digest.config import load_settings
    from digest.templater.pages import render_notice
    from tests.conftest import state_env

    settings = load_settings(site=tmp_path, env=state_env())
    for language in ("en", "ko"):
        text = render_notice(settings, "notice", language, "https://x.example/preferences?token=t").text
        assert "\n\n\n" not in text, text
