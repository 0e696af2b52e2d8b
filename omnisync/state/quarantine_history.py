"""The quarantined share of a stream's recent records, from the run log (G6).

Each succeeded sync run records how many records it read and quarantined (its ``counts``). A
break that quarantines a few records in every run never fills one run to
``OMNISYNC_QUARANTINE_MIN_ROWS``; summed over the latest runs it does. No table of its own: the
run log already holds these counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from omnisync.state.schema import runs
from omnisync.state.store import StateStore

#: at most this many earlier runs are summed, however few records they read
RUNS_LOOKED_AT = 500


@dataclass(frozen=True)
class RecentRecords:
    """What the latest succeeded runs of a stream read and quarantined, summed."""

    runs: int = 0
    read: int = 0
    quarantined: int = 0


def recent_records(store: StateStore, stream: str, wanted: int) -> RecentRecords:
    """The latest succeeded runs of ``stream``, newest first, summed until they read ``wanted``
    records (or :data:`RUNS_LOOKED_AT` runs). A run whose counts cannot be read adds nothing."""
    query = (
        select(runs.c.counts)
        .where(runs.c.stream == stream, runs.c.status == "succeeded")
        .order_by(runs.c.started_us.desc())
        .limit(RUNS_LOOKED_AT)
    )
    count = read = quarantined = 0
    with store.engine.connect() as connection:
        for (text,) in connection.execute(query):
            if read >= wanted:
                break
            try:
                counts = json.loads(text or "{}")
                rows, bad = int(counts.get("read", 0)), int(counts.get("quarantined", 0))
            except (ValueError, TypeError, AttributeError):
                continue
            count, read, quarantined = count + 1, read + rows, quarantined + bad
    return RecentRecords(count, read, quarantined)
