"""Each expectation's configuration built once per validation, not once per question asked of it.

GX 1.x builds an ``ExpectationConfiguration`` afresh (a pydantic ``.dict()`` of the expectation
and a new object) every time ``Expectation.configuration`` is read, and one validation of the
customers suite reads it about 1,200 times: its domain, success and runtime keywords are each
looked up through a new configuration, key by key. That was about 35 ms of every validation's
120 (docs/performance.md), paid once per window.

While :func:`held` is active on a thread, the first configuration of each expectation object is
kept and handed back on every later read, on that thread only; other threads, and this one
outside it, get GX's own property. The validations GX runs build their expectations fresh from
configurations and do not change one while it is validated, and the memo holds each expectation
it saw, so an id is never reused while it is kept. ``tests/validation/test_configurations.py``
holds every suite's results equal with and without it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_installed: list[Any] = []  # GX's own property, once replaced


def install(expectation_class: Any) -> None:
    """Replace ``expectation_class.configuration`` with one that consults the memo of
    :func:`held` (once per process; called with GX's lock held)."""
    if _installed:
        return
    own = expectation_class.__dict__.get("configuration")
    if not isinstance(own, property) or own.fget is None:
        return  # not the GX this was written for: its own property stays, unmemoised
    build = own.fget

    def configuration(self: Any) -> Any:
        memo: dict[int, tuple[Any, Any]] | None = getattr(_local, "memo", None)
        if memo is None:
            return build(self)
        kept = memo.get(id(self))
        if kept is None:
            kept = memo[id(self)] = (self, build(self))
        return kept[1]

    expectation_class.configuration = property(configuration, doc=own.__doc__)
    _installed.append(own)


@contextmanager
def held() -> Iterator[None]:
    """Keep each expectation's configuration for the length of one validation, on this thread."""
    if getattr(_local, "memo", None) is not None:  # nested: the outer one's memo serves
        yield
        return
    _local.memo = {}
    try:
        yield
    finally:
        _local.memo = None
