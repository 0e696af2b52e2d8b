"""Scrubbing erased values out of the reports under ``_reports/`` (G9, erasure).

A report quotes a customer's values among everything else: counts, other customers' keys, GX's
own fields. Replacing an erased value wherever its bytes occur would rewrite those too (a phone
``300`` inside the count ``300`` of every validation result, breaking the JSON) and would damage
other customers' text (``yok`` inside ``yok.kept@example.test``). So each format is scrubbed by
its structure, and only where a value is the customer's, as far as the text can tell:

* **JSON** is parsed; a string (value or key) equal to an erased value is replaced by
  :data:`ERASED`, and one that holds an erased value of at least :data:`TOKEN_CHARS` characters
  as a whole token has that token replaced. Numbers, booleans and the document's shape are not
  touched; the file is written back as valid JSON.
* **CSV** is parsed; each cell is treated like a JSON string.
* **HTML** is text with markup: only whole-token occurrences of values of at least
  :data:`TOKEN_CHARS` characters are replaced, as written and HTML-escaped.

A value shorter than :data:`TOKEN_CHARS` is therefore erased from a JSON string or CSV cell that
is exactly that value, never from free text: there it cannot be told apart from other words and
numbers. A token is a run of letters, digits and ``@ . + - _``: an email that is the tail of a
longer one (``b@x.test`` in ``a.b@x.test``) is not a whole token of it and stays.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Collection
from typing import Any

from omnisync.lake.storage import LakeStorage

REPORTS = "_reports"
ERASED = "[erased]"
#: a value this long or longer is also replaced where it is a whole token of a longer text
TOKEN_CHARS = 6
_WORD_CHAR = r"[\w@+\-]"


class _Needles:
    def __init__(self, values: Collection[str]) -> None:
        self.exact = {v for v in values if v}
        long = sorted({v for v in self.exact if len(v) >= TOKEN_CHARS}, key=len, reverse=True)
        self.pattern = _token_pattern(long)
        forms = {form for v in long for form in (v, html.escape(v))}
        self.html_pattern = _token_pattern(sorted(forms, key=len, reverse=True))

    def text(self, value: str) -> str:
        if value in self.exact:
            return ERASED
        return value if self.pattern is None else self.pattern.sub(ERASED, value)

    def tree(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        if isinstance(node, dict):
            return {self.text(k): self.tree(v) for k, v in node.items()}
        return node


def _token_pattern(values: list[str]) -> re.Pattern[str] | None:
    """Any of ``values`` (longest first) where it is a whole token: no token character right
    before it, and none right after (a ``.`` counts when a token character follows it)."""
    if not values:
        return None
    alternatives = "|".join(re.escape(v) for v in values)
    return re.compile(
        rf"(?<!{_WORD_CHAR})(?<!{_WORD_CHAR}\.)(?:{alternatives})(?!{_WORD_CHAR}|\.{_WORD_CHAR})"
    )


def _json(data: bytes, needles: _Needles) -> bytes | None:
    try:
        document = json.loads(data)
    except ValueError:
        return None  # not JSON (nothing of ours): left as it is
    clean = needles.tree(document)
    if clean == document:
        return None
    indent = 2 if data.lstrip()[:1] in (b"{", b"[") and b"\n" in data[:200] else None
    return json.dumps(clean, indent=indent, ensure_ascii=False).encode()


def _csv(data: bytes, needles: _Needles) -> bytes | None:
    text = data.decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    clean = [[needles.text(cell) for cell in row] for row in rows]
    if clean == rows:
        return None
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(clean)
    return out.getvalue().encode()


def _html(data: bytes, needles: _Needles) -> bytes | None:
    if needles.html_pattern is None:
        return None
    text = data.decode("utf-8", "surrogateescape")
    clean = needles.html_pattern.sub(ERASED, text)
    return None if clean == text else clean.encode("utf-8", "surrogateescape")


_BY_SUFFIX = {".json": _json, ".csv": _csv, ".html": _html}


def scrub_reports(storage: LakeStorage, values: Collection[str]) -> int:
    """Replace ``values`` in every report under ``_reports/`` as the module's docstring says;
    returns the files rewritten (each replaced atomically, fenced like every lake change).
    Idempotent: a report holding nothing to erase is not rewritten."""
    needles = _Needles(values)
    if not needles.exact:
        return 0
    scrubbed = 0
    for suffix, scrub in _BY_SUFFIX.items():
        for path in storage.files(REPORTS, suffix):
            with storage.open(path) as handle:
                data = handle.read()
            clean = scrub(data, needles)
            if clean is not None and clean != data:
                storage.write_bytes(path, clean)
                scrubbed += 1
    return scrubbed
