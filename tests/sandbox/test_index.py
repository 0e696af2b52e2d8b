"""The sorted-block index behind the store: it answers like one sorted list, however it is
changed, across the block splits and emptied blocks that a million values bring (small blocks
here, so that a few hundred changes bring them too)."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.index import SortedInts

values = st.integers(min_value=-50, max_value=400)
operations = st.lists(st.tuples(st.booleans(), values), max_size=300)


def _same_as_a_sorted_list(index: SortedInts, expected: list[int]) -> None:
    assert len(index) == len(expected)
    assert list(index) == expected
    for probe in (-60, -50, 0, 7, 100, 399, 400, 401):
        assert index.rank(probe) == bisect.bisect_left(expected, probe)
        assert (probe in index) == (probe in expected)
    for start in range(-1, len(expected) + 2, 3):
        for stop in range(start, len(expected) + 3, 5):
            assert index.between(start, stop) == expected[max(start, 0) : max(stop, 0)]
    for position in range(-len(expected), len(expected)):
        assert index[position] == expected[position]


@settings(max_examples=200, deadline=None)
@given(initial=st.lists(values, max_size=120), changes=operations, load=st.sampled_from([2, 5]))
def test_the_index_answers_like_a_sorted_list_after_any_inserts_and_removals(
    initial: list[int], changes: list[tuple[bool, int]], load: int
) -> None:
    index = SortedInts(initial, load=load)
    expected = sorted(set(initial))
    for add, value in changes:
        if add:
            index.add(value)
            if value not in expected:
                bisect.insort(expected, value)
        elif value in expected:
            index.remove(value)
            expected.remove(value)
    _same_as_a_sorted_list(index, expected)


def test_an_index_emptied_and_filled_again_still_answers() -> None:
    index = SortedInts(range(0, 100, 2), load=4)
    for value in range(1, 100, 2):
        index.add(value)
    for value in range(100):
        index.remove(value)
    assert len(index) == 0 and list(index) == [] and index.rank(5) == 0
    assert index.between(0, 3) == []
    index.add(9)
    index.add(3)
    _same_as_a_sorted_list(index, [3, 9])


def test_removing_a_value_that_is_not_there_is_a_key_error_and_changes_nothing() -> None:
    index = SortedInts([1, 3])
    for missing in (0, 2, 4):
        with pytest.raises(KeyError):
            index.remove(missing)
    assert list(index) == [1, 3]
