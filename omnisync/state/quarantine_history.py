"""The quarantined share of a stream's recent records, from the run log (G6).

Each succeeded sync run records how many records it read and quarantined after its watermark
(its ``counts``: the lookback's re-reads were counted by the run before). A
break that quarantines a few records in every run never fills one run to
``OMNISYNC_QUARANTINE_MIN_ROWS``; summed over the latest runs it does. No table of its own: the
run log already holds these counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from omnisync.state.store import StateStore

#: the run log's kinds of sync run (a verification records itself under the same stream)
SYNC_KINDS = ("incremental", "full")
#: at most this many earlier runs are summed, however few records they read
RUNS_LOOKED_AT = 500


@dataclass(frozen=True)
class RecentRecords:
    """What the latest succeeded runs of a stream read and quarantined, summed."""

    runs: int = 0
    read: int = 0
    quarantined: int = 0


def recent_records(store: StateStore, stream: str, wanted: int) -> RecentRecords:
    """The latest ``wanted`` records of ``stream``'s succeeded sync runs (newest run first; at
    most :data:`RUNS_LOOKED_AT` runs): the oldest run counted gives the part of its records
    that completes ``wanted``, quarantined in its own proportion, so that one large run (a
    backfill) does not drown the latest ones. A run whose counts cannot be read adds nothing."""
    count = read = quarantined = 0
    for text in store.runs.succeeded_counts(stream, SYNC_KINDS, RUNS_LOOKED_AT):
        if read >= wanted:
            break
        try:
            counts = json.loads(text)
            # records after the run's watermark (a lookback's re-reads were counted before);
            # a run recorded before these counts existed gives all it read
            rows = int(counts.get("read_after_watermark", counts.get("read", 0)))
            bad = int(counts.get("quarantined_after_watermark", counts.get("quarantined", 0)))
        except (ValueError, TypeError, AttributeError):
            continue
        if rows <= 0:
            continue
        taken = min(rows, wanted - read)
        count, read = count + 1, read + taken
        quarantined += bad if taken == rows else round(bad * taken / rows)
    return RecentRecords(count, read, quarantined)
