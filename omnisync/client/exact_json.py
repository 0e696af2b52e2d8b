"""Decoding Omnitron's JSON exactly as sent (G6: source values are never rewritten).

A float parsed into a Python ``float`` and written back changes its text (``12.10`` becomes
``12.1``, ``1e2`` becomes ``100.0``), and orjson turns integers past 64 bits into floats. Here
every number that is not a 64-bit integer is kept as a :class:`JsonNumber` holding its text, and
integers stay exact Python ints. Key order is kept as sent. Writing them back verbatim is
``transforms.exact_json.dumps_exact``'s work: it knows a kept number by its ``text`` (the
client and the transforms import nothing of each other).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INT64 = range(-(2**63), 2**63)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class JsonNumber:
    """A JSON number that is not a 64-bit integer, kept as the text the server sent
    (``text``: what ``transforms.exact_json.dumps_exact`` writes)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _int(text: str) -> int | JsonNumber:
    value = int(text)
    return value if value in _INT64 else JsonNumber(text)


def loads_exact(body: bytes | str) -> Any:
    """Parse JSON keeping every number's text; raises ValueError if ``body`` is not JSON.

    orjson reads it first (it is faster than the stdlib with hooks); its result is
    kept when it holds no float and no integer outside 64 bits, since then no number's text can
    differ. Anything else (a float, a big integer, or what orjson refuses but the stdlib reads,
    like a lone surrogate escape) is read again by the stdlib, number by number."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    else:
        if _exact_as_read(value):
            return value
    return json.loads(body, parse_float=JsonNumber, parse_int=_int)


def _exact_as_read(value: Any) -> bool:
    """Whether no number in ``value`` is a float or an integer outside 64 bits.

    Dispatches on ``type(...) is``: a page is mostly strings, and four ``isinstance`` calls for
    each made this walk cost more than orjson's own parse."""
    pending: list[Any] = [[value]]  # wrapped: a body may be a bare number
    pop, push = pending.pop, pending.append
    while pending:
        item = pop()
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is dict or kind is list:
                push(child)
            elif kind is not int or not _INT64_MIN <= child <= _INT64_MAX:
                return False  # a float, an integer past 64 bits, or nothing orjson makes
    return True
