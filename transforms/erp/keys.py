"""Normalising the key a customer or an ERP row is matched by, one row or a whole column.

Normalisation exists only here: emails are trimmed and case-folded, phone numbers parsed to E.164
(default region TR), ids read as integers. The lake keeps the source values untouched (G6).
"""

from __future__ import annotations

import decimal
import functools
from typing import Any

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from transforms.erp.tables import KEY_COLUMNS, MatchKey


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().casefold()


@functools.lru_cache(maxsize=262_144)
def normalise_phone(value: Any, region: str = "TR") -> str | None:
    """E.164 (``+905321234567``) or None when the number does not parse to a valid one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _integer(value: Any) -> int | None:
    """An id as an int: ``7``, ``"7"``, ``7.0`` and ``"7.0"`` (spreadsheets and float columns
    write ids so) are all 7; anything else, fractional or not a number, is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def key_of(row: dict[str, Any], match_on: MatchKey) -> str | None:
    """The normalised matching key of a customer or ERP row (None: it cannot be matched)."""
    if match_on == "pk":
        pk = _integer(row.get("pk"))
        return None if pk is None else str(pk)
    if match_on == "channel_code":
        channel, code = _integer(row.get("channel")), row.get("channel_code")
        if channel is None or code is None or str(code).strip() == "":
            return None
        return f"{channel}|{str(code).strip()}"
    if match_on == "email":
        return normalise_email(row.get("email"))
    return normalise_phone(row.get("phone_number"))


def key_problem(row: dict[str, Any], match_on: MatchKey) -> str:
    """Why ``key_of`` gave None for an ERP row, naming the column and the value."""
    columns = KEY_COLUMNS[match_on]
    shown = ", ".join(f"{c}={row.get(c)!r:.40}" for c in columns)
    what = {
        "pk": "not an integer",
        "channel_code": "channel not an integer or channel_code empty",
        "email": "empty",
        "phone": "not a valid phone number",
    }[match_on]
    return f"{'/'.join(columns)}: {what} ({shown})"


def _integer_keys(column: pa.ChunkedArray) -> pa.Array:
    """``_integer`` over a column, as strings: vectorised for integers and plain digit strings
    (nearly every input), one value at a time for the rest (``"7.0"``, ``"abc"``)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        plain = pc.fill_null(pc.match_substring_regex(text, r"^-?[0-9]{1,18}$"), False)
        fast = pc.cast(pc.cast(pc.if_else(plain, text, None), pa.int64()), pa.string())
        if pc.all(pc.or_(plain, pc.is_null(text))).as_py():
            return fast
        slow = [
            None if keep else _str_or_none(_integer(value))
            for keep, value in zip(plain.to_pylist(), column.to_pylist(), strict=True)
        ]
        return pc.coalesce(fast, pa.array(slow, pa.string()))
    return pa.array([_str_or_none(_integer(v)) for v in column.to_pylist()], pa.string())


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def stripped(column: pa.ChunkedArray) -> pa.Array:
    """``str(value).strip()`` over a column, None for nulls."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pa.array(
        [None if v is None else str(v).strip() for v in column.to_pylist()], pa.string()
    )


def match_keys(table: pa.Table, match_on: MatchKey) -> pa.Array:
    """``key_of`` over every row of ``table`` (customers or ERP rows), as one string array."""
    if match_on == "pk":
        return _integer_keys(table.column("pk"))
    if match_on == "channel_code":
        channel = _integer_keys(table.column("channel"))
        code = stripped(table.column("channel_code"))
        usable = pc.and_(pc.is_valid(channel), pc.fill_null(pc.not_equal(code, ""), False))
        joined = pc.binary_join_element_wise(channel, code, "|")
        return pc.if_else(usable, joined, pa.scalar(None, pa.string()))
    if match_on == "email":
        return pa.array(
            [normalise_email(v) for v in table.column("email").to_pylist()], pa.string()
        )
    return pa.array(
        [normalise_phone(v) for v in table.column("phone_number").to_pylist()], pa.string()
    )
