"""Word-count map and reduce functions (the chord itself runs in the integration tests)."""

from __future__ import annotations

from collections import Counter

import pytest

from app.wordcount import chunked, count_words, merge_counts, words


def test_words_are_casefolded_unicode_runs_with_inner_apostrophes() -> None:
    assert list(words("Don't STOP, don't! Straße 42 — Ünïcode")) == [
        "don't",
        "stop",
        "don't",
        "strasse",
        "42",
        "ünïcode",
    ]


def test_map_then_reduce_equals_counting_everything_at_once() -> None:
    documents = ["a b a", "b c", "", "A a", "c c c"]
    partials = [count_words(chunk) for chunk in (documents[:2], documents[2:4], documents[4:])]
    assert merge_counts(partials) == count_words(documents) == Counter(a=4, b=2, c=4)


def test_chunked_covers_every_item_once_in_order() -> None:
    items = list(range(10))
    chunks = chunked(items, 3)
    assert chunks == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert chunked([], 3) == []


@pytest.mark.parametrize("size", [0, -1, 1.5])
def test_chunked_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(ValueError, match="chunk size must be a whole number >= 1"):
        chunked([1, 2], size)  # type: ignore[arg-type]
