"""What a window's quarantined versions leave behind, beside the quarantine itself (G6).

* **Marks**, staged beside the window's rows and applied when the plan's buckets are merged: the
  row of each customer whose newer version was quarantined is marked, so ``customers/`` never
  holds an older version silently (``transforms/quarantine_marks.py`` says what a mark is).
* **Counts after the watermark**: the records a run reads that no earlier run read (the
  lookback re-reads the latest ones), so that the latest records of the stream can be judged
  together without counting a record twice (``finish.py``). A record whose date cannot be read
  is new when no earlier window quarantined that same raw record.
* **The greatest readable date**: a quarantined version counts in the watermark like any other
  read; it is recorded and marked, and reading it again would only quarantine it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage, Snapshot
from omnisync.lake.quarantine import quarantine_path, quarantined_before
from omnisync.lake.snapshot import bucket_path
from transforms.quarantine_marks import MARK_SCHEMA, mark_rows, marks_for
from transforms.schema import TIMESTAMP

#: a window's staged marks: Parquet, named apart from its staged rows (``*.parquet``)
MARKS_SUFFIX = ".quarantined"


@dataclass(frozen=True)
class Quarantined:
    marked: int
    fresh: int
    fresh_quarantined: int
    newest: dt.datetime | None


def record_quarantined(
    storage: LakeStorage,
    staging: str,
    window: str,
    pks: pa.ChunkedArray,
    modified: pa.ChunkedArray,
    extracted_at: dt.datetime,
    rows: pa.Table | None,
    since: dt.datetime | None,
    raws: pa.ChunkedArray | None = None,
) -> Quarantined:
    """Stage the marks of a window's quarantined versions (``pks``, ``modified``, ``raws``: row
    for row of its quarantine file), replacing an earlier try's; count what it read after
    ``since`` (the watermark). ``rows``: the window's rows for the lake."""
    marks = marks_for(pks, modified, quarantine_path(window, extracted_at))
    path = f"{staging}/{window}{MARKS_SUFFIX}"
    if marks.num_rows:
        storage.write_table(path, marks.cast(MARK_SCHEMA))
    else:
        storage.delete(path)
    good = 0 if rows is None else rows.num_rows
    bad = len(modified)
    if since is not None:
        after = pa.scalar(since, TIMESTAMP)
        bad = int(pc.sum(pc.greater(modified, after)).as_py() or 0)
        bad += _undated_new(storage, window, modified, raws)
        if rows is not None:
            good = int(pc.sum(pc.greater(rows.column("modified_date"), after)).as_py() or 0)
    return Quarantined(marks.num_rows, good + bad, bad, pc.max(modified).as_py())


def _undated_new(
    storage: LakeStorage, window: str, modified: pa.ChunkedArray, raws: pa.ChunkedArray | None
) -> int:
    """How many quarantined records whose date cannot be read no earlier read quarantined: the
    lookback lists such a record again (its date on the server is what the filters see), and
    only its raw record, not its date, tells it was counted by the run that first read it."""
    undated = pc.is_null(modified)
    if not pc.any(undated).as_py():
        return 0
    if raws is None:
        return int(pc.sum(undated).as_py() or 0)
    texts = raws.filter(undated)
    texts = texts.cast(pa.string()) if texts.type != pa.string() else texts
    earlier = quarantined_before(storage, window, texts.to_pylist())
    return sum(not seen for seen in earlier)


def staged_marks(storage: LakeStorage, snapshot: Snapshot, staging: str) -> dict[int, pa.Table]:
    """A plan's staged marks, by bucket."""
    files = storage.files(staging, suffix=MARKS_SUFFIX)
    if not files:
        return {}
    marks = pa.concat_tables([storage.read_table(f).cast(MARK_SCHEMA) for f in files])
    return dict(snapshot.split(marks))


def mark_bucket(storage: LakeStorage, bucket: int, marks: pa.Table) -> None:
    """Mark the bucket's rows older than their customer's quarantined version (after its merge:
    a newer version the plan read replaces the row, and then there is nothing to mark). The
    bucket is replaced atomically, and marking again after a crash gives the same rows."""
    path = bucket_path(bucket)
    if not storage.exists(path):
        return
    marked = mark_rows(storage.read_table(path), marks)
    if marked is not None:
        storage.write_table(path, marked)
