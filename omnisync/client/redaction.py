"""Scrubbing secrets from text: one place that every error message and log line passes through."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# DRF tokens and anything that looks like one in an Authorization header.
_AUTH_HEADER = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:token|bearer)\s+)[^\s'\",}]+"
)


class Redactor:
    """Replaces every known secret value, and any Authorization header value, with ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would mask ordinary words; real tokens and passwords are longer.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
