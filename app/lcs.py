"""Longest common substring of two strings, in O(n log n) time and a few bytes per character.

Owns: :func:`longest_common_substring` (the computation behind the ``lcs`` task) and the tie rule.
Does not own: job bookkeeping, queues or storage (see ``app.jobs`` and ``app.tasks``).

How: the two strings are joined as ``a + SEPARATOR + b`` over a dense integer alphabet, a suffix
array is built by libdivsufsort (through the maintained ``pydivsufsort`` wheel, C code) and the
LCP array by Kasai's algorithm (same package). The longest common substring is the largest LCP
between two neighbouring suffixes that start in different strings. Everything after the C calls
is vectorised numpy, so a 1M + 1M character job runs in well under a second on one core with
about 40 bytes of working memory per input character (see ``bench/lcs.py``).

Unicode: strings are compared by code point, so any Python ``str`` works, including the empty
string, astral-plane characters and lone surrogates (encoded with ``surrogatepass``). Code points
are first renumbered to ranks 1..k (0 is the separator, which therefore occurs nowhere else), so
inputs that use at most 255 distinct characters are sorted as single bytes, the fast path.

Tie rule: when several different substrings share the maximal length, the one that starts
earliest in ``a`` is returned. ``longest_common_substring("abXcd", "cdYab") == "ab"``.
"""

from __future__ import annotations

import numpy as np
import pydivsufsort

__all__ = ["longest_common_substring", "longest_common_substring_reference"]


def _code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as uint32, without a Python-level loop."""
    # surrogatepass: a Python str may hold lone surrogates (e.g. from os.fsdecode); they are
    # ordinary code points for this algorithm, not an error.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _dense_symbols(a_points: np.ndarray, b_points: np.ndarray) -> np.ndarray:
    """``a + [0] + b`` with code points renumbered 1..k, in the smallest unsigned dtype."""
    both = np.concatenate((a_points, b_points))
    table_size = int(both.max()) + 1
    if table_size <= 4 * len(both) + 65_536:
        # A lookup table up to the largest code point is linear time (no sort) and small
        # compared with the suffix array: the usual case (text below U+10000 or long input).
        present = np.zeros(table_size, dtype=np.bool_)
        present[both] = True
        ranks = np.cumsum(present, dtype=np.uint32)  # rank of each present code point, from 1
        alphabet_size = int(ranks[-1])
        dense = ranks[both]
    else:
        # Few characters spread over the code space (e.g. one emoji in a short text): sort.
        alphabet, inverse = np.unique(both, return_inverse=True)
        alphabet_size = len(alphabet)
        dense = inverse.astype(np.uint32) + 1
    if alphabet_size < 2**8:
        dtype = np.uint8
    elif alphabet_size < 2**16:
        dtype = np.uint16
    else:
        dtype = np.uint32
    symbols = np.empty(len(both) + 1, dtype=dtype)
    symbols[: len(a_points)] = dense[: len(a_points)]
    symbols[len(a_points)] = 0
    symbols[len(a_points) + 1 :] = dense[len(a_points) :]
    return symbols


def longest_common_substring(a: str, b: str) -> str:
    """The longest string that is a substring of both ``a`` and ``b`` ('' if none).

    Ties between different substrings of the maximal length go to the one that starts earliest
    in ``a``. Raises ``TypeError`` for non-``str`` arguments.
    """
    if not isinstance(a, str) or not isinstance(b, str):
        raise TypeError(
            "longest_common_substring(a, b) takes two str values, got "
            f"{type(a).__name__} and {type(b).__name__}"
        )
    if not a or not b:
        return ""
    a_length = len(a)
    symbols = _dense_symbols(_code_points(a), _code_points(b))
    suffix_array = pydivsufsort.divsufsort(symbols)
    # lcp[i] = length of the common prefix of the suffixes at suffix_array[i] and [i + 1].
    lcp = pydivsufsort.kasai(symbols, suffix_array)[:-1]

    starts_in_a = suffix_array < a_length
    starts_in_b = suffix_array > a_length  # the separator's own suffix is in neither
    # The separator is unique, so no common prefix runs across it: a neighbouring pair from
    # different strings shares exactly a common substring of a and b.
    crossing = (starts_in_a[:-1] & starts_in_b[1:]) | (starts_in_b[:-1] & starts_in_a[1:])
    if not crossing.any():
        return ""
    best_length = int(lcp[crossing].max())
    if best_length == 0:
        return ""

    # Tie rule. Suffixes sharing one prefix of length best_length form a contiguous run of the
    # suffix array linked by lcp >= best_length. A run holding suffixes of both strings is one
    # longest common substring; its earliest start in a is that substring's first occurrence.
    linked = lcp >= best_length
    run_starts = np.flatnonzero(np.concatenate(([True], ~linked)))
    has_a = np.logical_or.reduceat(starts_in_a, run_starts)
    has_b = np.logical_or.reduceat(starts_in_b, run_starts)
    a_positions = np.where(starts_in_a, suffix_array, np.iinfo(suffix_array.dtype).max)
    first_in_a = np.minimum.reduceat(a_positions, run_starts)
    start = int(first_in_a[has_a & has_b].min())
    return a[start : start + best_length]


def longest_common_substring_reference(a: str, b: str) -> str:
    """Brute force with the same tie rule: the oracle for tests, hopeless beyond ~1k chars."""
    for length in range(min(len(a), len(b)), 0, -1):
        for start in range(len(a) - length + 1):
            if a[start : start + length] in b:
                return a[start : start + length]
    return ""
