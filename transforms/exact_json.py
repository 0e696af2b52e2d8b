"""JSON written with every number exactly as it was read (G6: source values are never rewritten).

The client decodes Omnitron's answers keeping each number that a float or orjson would change
(``12.10``, ``1e2``, integers past 64 bits) as an object holding its text
(``omnisync.client.exact_json.JsonNumber``). Transforms are pure and import nothing of the
client, so such a number is known here by what it is (:class:`ExactNumber`: it has a ``text``)
and written as that text. Key order is kept.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

import orjson


@runtime_checkable
class ExactNumber(Protocol):
    """A JSON number kept as the text it was read in."""

    text: str


def _fragment(value: Any) -> Any:
    if isinstance(value, ExactNumber) and isinstance(value.text, str):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps_exact(value: Any) -> str:
    """Compact JSON text of ``value``, numbers written as they were read. Raises TypeError for
    a value JSON cannot hold (a Python int past 64 bits among them: give it as its text)."""
    return orjson.dumps(value, default=_fragment).decode()


def loads_verbatim(text: str) -> Any:
    """JSON whose numbers are kept as the very text they were written in, for rewriting a
    document (a quarantined record) without changing any of them: each number is only ever
    written back by :func:`dumps_exact`, never compared. Raises ValueError if ``text`` is not
    JSON."""
    return json.loads(text, parse_float=orjson.Fragment, parse_int=orjson.Fragment)
