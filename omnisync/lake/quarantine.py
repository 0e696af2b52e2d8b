"""``quarantine/customers/``: raw records that could not be typed, with their reasons (G6)."""

from __future__ import annotations

import datetime as dt
import posixpath

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.storage import LakeStorage
from transforms.pk_sets import sorted_unique
from transforms.schema import QUARANTINE_SCHEMA, TIMESTAMP

DATASET = "quarantine/customers"


def quarantine_path(window: str, extracted_at: dt.datetime) -> str:
    """Where a window's rejected records go (a file per window, under its extraction day)."""
    day = extracted_at.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return f"{DATASET}/extracted_day={day}/part-{window}.parquet"


def write_quarantine(
    storage: LakeStorage, rejected: pa.Table, window: str, extracted_at: dt.datetime
) -> int:
    """Write one window's rejected records, replacing a previous try of the same window, also
    one written on another day (a window retried after midnight, or resumed by the next day's
    run): a retried window never leaves its rejected records twice. Removes the file when this
    try rejected nothing.

    A lake whose dataset would have no file at all gets this window's empty file, with the
    schema: the path people are told to read exists from the first run on, also on a healthy
    lake, and every reader gives zero rows with the right columns instead of an error."""
    target = quarantine_path(window, extracted_at)
    name = posixpath.basename(target)
    for earlier in storage.files(DATASET):
        if posixpath.basename(earlier) == name and earlier != target:
            storage.delete(earlier)
    if rejected.num_rows == 0:
        storage.delete(target)
        if not storage.files(DATASET):
            storage.write_table(target, QUARANTINE_SCHEMA.empty_table())
        return 0
    storage.write_table(target, rejected)
    count: int = rejected.num_rows
    return count


def quarantined_before(storage: LakeStorage, window: str, raws: list[str]) -> list[bool]:
    """Whether each of ``raws`` (records exactly as served) is already in the quarantine, in a
    file of another window than ``window`` (an earlier read: the same window's file is this
    window's own try, on any day)."""
    own = posixpath.basename(quarantine_path(window, dt.datetime.now(dt.UTC)))
    wanted, seen = set(raws), set[str]()
    for name in storage.files(DATASET):
        if posixpath.basename(name) == own:
            continue
        column = storage.read_table(name, columns=["raw"]).column("raw")
        texts = column.cast(pa.string()) if column.type != pa.string() else column
        seen.update(text for text in texts.to_pylist() if text in wanted)
    return [raw in seen for raw in raws]


def _modified_us(raw: str) -> int | None:
    try:
        value = orjson.loads(raw).get("modified_date")
        stamp = pc.cast(pa.array([value], pa.string()), TIMESTAMP)[0].as_py()
    except (orjson.JSONDecodeError, AttributeError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if stamp is None:
        return None
    return int((stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))


def quarantined_versions(storage: LakeStorage) -> dict[int, set[int | None]]:
    """Per quarantined pk, the ``modified_date`` (µs) of each of its quarantined versions
    (None: a version whose date cannot be read). Records without a pk name no customer."""
    versions: dict[int, set[int | None]] = {}
    for name in storage.files(DATASET):
        table = storage.read_table(name, columns=["pk", "raw"])
        table = table.filter(pc.is_valid(table.column("pk")))
        raws = table.column("raw")
        texts = (raws.cast(pa.string()) if raws.type != pa.string() else raws).to_pylist()
        for pk, raw in zip(table.column("pk").to_pylist(), texts, strict=True):
            versions.setdefault(int(pk), set()).add(_modified_us(raw))
    return versions


def quarantined_pks(storage: LakeStorage) -> np.ndarray:
    """Every pk in ``quarantine/customers/``, sorted, unique."""
    return sorted_unique(
        storage.read_table(name, columns=["pk"]).column("pk").drop_null().to_numpy()
        for name in storage.files(DATASET)
    )
