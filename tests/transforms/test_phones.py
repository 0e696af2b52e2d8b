"""The fast phone check answers exactly what phonenumbers answers, on every shape it takes."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.phones import phone_is_valid, phonenumbers_says_valid, phones_are_valid
from transforms.quality import phones_valid

PREFIXES = ["", "+90", "+90 ", "0", "0 ", "90", "+9", "00", "+", "0090", "+900", "00 90 "]


@st.composite
def phone_like(draw: st.DrawFn) -> str:
    digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=15))
    spaced = "".join(
        d + (" " if draw(st.booleans()) and i % 2 else "") for i, d in enumerate(digits)
    )
    return draw(st.sampled_from(PREFIXES)) + spaced.strip()


@settings(max_examples=3000, deadline=None)
@given(phone_like())
def test_the_fast_check_agrees_with_phonenumbers(raw: str) -> None:
    assert phone_is_valid(raw) == phonenumbers_says_valid(raw.strip()), raw


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["5", "2", "3", "4", "8", "9"]), st.text("0123456789", min_size=6, max_size=12)
)
def test_numbers_that_look_valid_agree_too(first: str, rest: str) -> None:
    """Most random digits are invalid; these start as Turkish numbers do."""
    for raw in (f"+90 {first}{rest}", f"0{first}{rest}", f"{first}{rest}"):
        assert phone_is_valid(raw) == phonenumbers_says_valid(raw), raw


def test_the_shapes_omnisync_sees_most() -> None:
    for raw in (
        "+90 532 123 45 67",
        "05321234567",
        "5321234567",
        "0532 123 45 67",
        "+905321234567",
    ):
        assert phone_is_valid(raw) is True, raw
    assert phone_is_valid("12") is False
    assert phone_is_valid("   ") is None and phone_is_valid(None) is None
    assert phone_is_valid("(0532) 123-45-67") == phonenumbers_says_valid("(0532) 123-45-67")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from(["", "  ", "0532 123 45 67"]), phone_like())),
        max_size=4,
    )
)
def test_a_batch_checks_each_distinct_number_once_with_the_same_answers(
    chunks: list[list[str | None]],
) -> None:
    """Duplicates, missing numbers and several chunks: row for row what the check says."""
    column = pa.chunked_array(chunks, pa.string())
    expected = [phone_is_valid(raw) for chunk in chunks for raw in chunk]
    got = phones_valid(column)
    assert got.dtype == object
    assert got.tolist() == expected


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            phone_like(),
            st.sampled_from(["", "  ", " +90 532 123 45 67", "0532 123 45 67\n", "٠٥٣٢١٢٣٤٥٦٧"]),
            st.text(max_size=16),
        ),
        max_size=40,
    )
)
def test_the_column_wise_check_answers_what_the_one_by_one_check_answers(
    numbers: list[str | None],
) -> None:
    """RE2 for a whole column (no lookahead, ASCII digits) against Python's ``re`` one number at
    a time: the same answer for every number, whatever its shape, spaces, digits or script."""
    got = phones_are_valid(pa.array(numbers, pa.string())).to_pylist()
    assert got == [phone_is_valid(raw) for raw in numbers]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["+90", "+90 ", "0", "0 ", "", "90", "0090", "+900", "9"]),
    st.sampled_from(["5", "2", "3", "4", "8", "9", "0"]),
    st.one_of(st.text("0123456789", min_size=9, max_size=9), st.text("0123456789", max_size=13)),
)
def test_the_column_wise_check_agrees_on_numbers_that_look_valid(
    prefix: str, first: str, rest: str
) -> None:
    numbers = [f"{prefix}{first}{rest}", f"{prefix}{first} {rest[:3]} {rest[3:]}"]
    got = phones_are_valid(pa.array(numbers, pa.string())).to_pylist()
    assert got == [phonenumbers_says_valid(raw) for raw in numbers]


def test_metadata_re2_cannot_take_is_checked_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phonenumbers release whose pattern RE2 refuses (a lookahead, say) costs speed, never an
    answer: every number goes to the Python check."""
    from transforms import phones

    monkeypatch.setattr(phones, "_re2_descriptions", lambda region: (("^(?=5)\\d+$", ()),))
    numbers = ["+90 532 123 45 67", "12", None, "0532 123 45 67"]
    got = phones_are_valid(pa.array(numbers, pa.string())).to_pylist()
    assert got == [phone_is_valid(raw) for raw in numbers] == [True, False, None, True]
