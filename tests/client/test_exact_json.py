"""Source values are never rewritten (G6): JSON numbers keep the text Omnitron sent."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from omnisync.client.exact_json import JsonNumber, loads_exact
from transforms.exact_json import dumps_exact

number_texts = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3)
    .map(str)
    .filter(lambda t: "E" not in t),
    st.sampled_from(["12.10", "1e2", "1E-7", "-0.0", "0.10", "3.0e+10", "18446744073709551616"]),
)
keys = st.text(min_size=0, max_size=6)


def compact_json(value: Any) -> str:
    """Compact JSON text of a structure whose numbers are given as their texts."""
    if isinstance(value, JsonNumber):
        return value.text
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=False)}:{compact_json(v)}" for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(max_size=8), number_texts.map(JsonNumber)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


@given(document=st.dictionaries(keys, documents, max_size=5))
def test_every_number_and_key_order_survives_a_round_trip(document: dict[str, Any]) -> None:
    text = compact_json(document)
    assert dumps_exact(loads_exact(text.encode())) == text


def test_the_values_a_float_would_change() -> None:
    text = '{"price":12.10,"ratio":1e2,"big":123456789012345678901234567890,"n":[0.10,-0.0]}'
    value = loads_exact(text)
    assert dumps_exact(value) == text
    assert value["big"] == JsonNumber("123456789012345678901234567890")
    assert loads_exact('{"pk": 7}')["pk"] == 7, "64-bit integers stay plain ints"


def reference_loads(body: str) -> Any:
    """The stdlib reading every number by its text: what loads_exact must always equal."""
    return json.loads(body, parse_float=JsonNumber, parse_int=lambda t: _reference_int(t))


def _reference_int(text: str) -> Any:
    value = int(text)
    return value if -(2**63) <= value < 2**63 else JsonNumber(text)


@given(document=st.dictionaries(keys, documents, max_size=5))
def test_the_fast_path_reads_exactly_what_the_stdlib_reads(document: dict[str, Any]) -> None:
    """orjson's answer is kept only where it cannot differ (no float, no integer past 64 bits)."""
    text = compact_json(document)
    assert loads_exact(text.encode()) == reference_loads(text)
    assert list(loads_exact(text.encode())) == list(reference_loads(text)), "key order"


def test_what_orjson_reads_differently_is_read_by_the_stdlib() -> None:
    for text in (
        "[9223372036854775808]",  # past int64: orjson keeps it an int, the record says text
        "[18446744073709551616]",  # orjson: a float
        '{"a": 1.50}',
        '["\\ud800"]',  # a lone surrogate escape: orjson refuses it
    ):
        assert loads_exact(text) == reference_loads(text), text


def test_a_bare_value_is_read_exactly_too() -> None:
    assert loads_exact(b"5") == 5 and loads_exact(b'"x"') == "x" and loads_exact(b"null") is None
    assert loads_exact(b"12.10") == JsonNumber("12.10")
    assert loads_exact(b"123456789012345678901234567890") == JsonNumber(
        "123456789012345678901234567890"
    )
