"""The LCS function against a brute-force oracle, on any Unicode, with its tie rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.lcs import longest_common_substring, longest_common_substring_reference

# Small alphabets make long common substrings (and ties) likely; full text covers all of Unicode,
# including astral characters and lone surrogates.
small_alphabet_text = st.text(alphabet="ab", max_size=40)
dna_text = st.text(alphabet="ACGT", max_size=60)
any_text = st.text(alphabet=st.characters(codec=None), max_size=30)
mixed_text = st.text(alphabet=st.sampled_from("a\u00e9\U0001f600\ud800\x00\uffff"), max_size=30)


@settings(max_examples=400, deadline=None)
@given(a=small_alphabet_text | dna_text | mixed_text, b=small_alphabet_text | dna_text | mixed_text)
def test_lcs_equals_brute_force_including_the_tie_rule(a: str, b: str) -> None:
    assert longest_common_substring(a, b) == longest_common_substring_reference(a, b)


@settings(max_examples=300, deadline=None)
@given(a=any_text, b=any_text)
def test_lcs_equals_brute_force_on_arbitrary_unicode(a: str, b: str) -> None:
    assert longest_common_substring(a, b) == longest_common_substring_reference(a, b)


@settings(max_examples=200, deadline=None)
@given(a=any_text | dna_text, b=any_text | dna_text)
def test_lcs_is_a_common_substring_and_symmetric_in_length(a: str, b: str) -> None:
    forward = longest_common_substring(a, b)
    assert forward in a and forward in b
    assert len(longest_common_substring(b, a)) == len(forward)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", ""),
        ("", "abc", ""),
        ("abc", "", ""),
        ("abc", "xyz", ""),
        ("a", "a", "a"),
        ("xabcx", "abc", "abc"),
        ("banana", "ananas", "anana"),
        # Tie rule: of equally long answers, the one starting earliest in `a` wins.
        ("abXcd", "cdYab", "ab"),
        ("cdXab", "abYcd", "cd"),
        ("\U0001f600\U0001f601x", "y\U0001f600\U0001f601", "\U0001f600\U0001f601"),
        ("\ud800\udc00", "\udc00", "\udc00"),  # lone surrogates are ordinary code points
    ],
)
def test_lcs_examples(a: str, b: str, expected: str) -> None:
    assert longest_common_substring(a, b) == expected


@pytest.mark.parametrize("distinct", [300, 70_000], ids=["uint16-alphabet", "uint32-alphabet"])
def test_lcs_is_correct_with_alphabets_beyond_one_byte(distinct: int) -> None:
    # More than 255 (or 65535) distinct characters takes the wide-symbol path of the suffix sort.
    rng = random.Random(distinct)
    alphabet = [chr(code) for code in rng.sample(range(0x20, 0x10FFFF), distinct)]
    alphabet = [char for char in alphabet if not 0xD800 <= ord(char) <= 0xDFFF]
    shared = "".join(rng.choices(alphabet, k=50))
    a = "".join(alphabet[: len(alphabet) // 2]) + shared + "".join(rng.choices(alphabet, k=500))
    b = "".join(rng.choices(alphabet, k=500)) + shared + "".join(alphabet[len(alphabet) // 2 :])
    result = longest_common_substring(a, b)
    assert len(result) >= 50
    assert result in a and result in b
    # No longer common substring exists: check every extension of every occurrence is absent.
    assert all(a[i : i + len(result) + 1] not in b for i in range(len(a) - len(result)))


def test_lcs_finds_a_long_planted_substring_in_large_random_inputs() -> None:
    rng = random.Random(7)
    planted = "".join(rng.choices("ACGT", k=200))
    a = "".join(rng.choices("ACGT", k=50_000)) + planted + "".join(rng.choices("ACGT", k=50_000))
    b = "".join(rng.choices("ACGT", k=30_000)) + planted + "".join(rng.choices("ACGT", k=70_000))
    result = longest_common_substring(a, b)
    assert planted in result
    assert result in a and result in b


@pytest.mark.parametrize(("a", "b"), [(b"ab", "ab"), ("ab", None), (1, 2)])
def test_lcs_rejects_non_strings_with_a_clear_error(a: object, b: object) -> None:
    with pytest.raises(TypeError, match="two str values"):
        longest_common_substring(a, b)  # type: ignore[arg-type]
