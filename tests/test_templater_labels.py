from __future__ import annotations

from dataclasses import fields

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
