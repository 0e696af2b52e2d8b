"""``_staging/customers/plan=<id>/``: what the windows of a plan staged, until its merge (G5, G9).

Each window of a plan writes its rows here, beside the datasets and never inside one (readers
never see it): a file for each group of :data:`GROUP_BUCKETS` snapshot buckets, with one row group
(or record batch) per bucket and the buckets listed in the file's metadata. A local lake stages
Arrow IPC files (``.arrow``) followed by the CRC-32 of their bytes as stored, checked before
Arrow reads any: written and read back without Parquet's encoding (a 40,000-row window 105 -> 40
ms CPU, its copy in bucket order included, for 2.8 times the bytes; ``python -m
bench.lake_merge``, docs/performance.md). A remote lake stages Parquet (``.parquet``, a CRC on
every page, none on its footer), where the bytes cost more than the CPU; either is read,
whichever an earlier run wrote. A resumed plan reads its staged files before it reads any window,
and reads again from Omnitron the window of one it cannot read (``staging_upkeep.py``); a merge
opens them all (:func:`check_staged`) before it writes any bucket.

The plan's finish (``finish.py``, or ``rebuild.py`` for a full refresh) reads each bucket's
groups from every window's files (:func:`staged_by_bucket`), so a backfill rewrites each bucket
once. A retried window replaces its files.

Staging is per plan. Files of a plan the state store records as merged or abandoned belong to
no run and are removed (``staging_upkeep.py``); those of a plan that is still open, or that the
store does not know, are never removed, so no run deletes the staged rows of a plan another run
may resume.

A deleted customer's staged rows are taken out of every plan's files, open ones included, when
its deletion is erased (:func:`remove_staged`): a plan finished later must not merge the
customer back into ``customers/``, and no byte of its values may stay in the lake.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import zlib
from collections.abc import Callable, Collection, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage, Snapshot

log = logging.getLogger("omnisync.sync")

STAGING = "_staging/customers"  # beside the datasets, never inside one: readers never see it
BUCKETS_KEY = b"omnisync.buckets"
IPC = ".arrow"
PARQUET = ".parquet"
#: buckets per staged file. The merge holds open the files of one group of buckets at a time: a
#: window's one file of all 64 buckets kept about 1.65 MiB of parsed Parquet metadata in memory
#: while every window's file was open, 38 MiB through a 1M sync's merge (docs/performance.md).
GROUP_BUCKETS = 8


def staging_dir(plan_id: str) -> str:
    return f"{STAGING}/plan={plan_id}"


def stage_window(
    storage: LakeStorage, snapshot: Snapshot, plan_id: str, name: str, rows: pa.Table
) -> None:
    """Stage a window's rows for the merge: a file per group of :data:`GROUP_BUCKETS` buckets
    (``<window>.g<group>.arrow``, or ``.parquet`` on a remote lake), one row group or batch per
    bucket, the buckets listed in the file's metadata. Each group's rows are copied in bucket
    order on their own, not the whole window at once. A group the window has no row in loses the
    file an earlier attempt may have left, in either format."""
    folder = staging_dir(plan_id)
    # one file for every bucket, as an earlier omnisync staged a window: a retry replaces it
    storage.delete(f"{folder}/{name}.parquet")
    suffix = IPC if storage.local else PARQUET
    pks = rows.column("pk").to_numpy() if rows.num_rows else np.zeros(0, np.int64)
    order, runs = snapshot.bucket_runs(pks)
    touched = 0
    for first in range(0, snapshot.buckets, GROUP_BUCKETS):
        stem = f"{folder}/{name}.g{first // GROUP_BUCKETS:02d}"
        storage.delete(stem + (PARQUET if suffix == IPC else IPC))  # an earlier omnisync's
        group = [run for run in runs if first <= run[0] < first + GROUP_BUCKETS]
        if not group:
            storage.delete(stem + suffix)
            continue
        lo, hi = group[0][1], group[-1][2]
        part = rows.take(pa.array(order[lo:hi]))
        buckets = [bucket for bucket, _, _ in group]
        write_staged(
            storage,
            stem + suffix,
            buckets,
            [part.slice(start - lo, end - start) for _, start, end in group],
        )
        touched += len(buckets)
        del part
    log.debug("staged window %s: %d rows in %d bucket(s)", name, rows.num_rows, touched)


def write_staged(
    storage: LakeStorage, path: str, buckets: list[int], parts: list[pa.Table]
) -> None:
    """One staged file of ``parts`` (one for each of ``buckets``, none empty), atomically, as
    Arrow IPC or Parquet by ``path``'s suffix."""
    metadata = {**(parts[0].schema.metadata or {}), BUCKETS_KEY: orjson.dumps(buckets)}
    if not path.endswith(IPC):
        groups = [part.replace_schema_metadata(metadata) for part in parts]
        storage.write_row_groups(path, groups, scratch=True)
        return
    schema = parts[0].schema.with_metadata(metadata)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        for part in parts:
            # one batch a bucket, as the bucket list says (a part of several chunks is joined)
            (batch,) = part.replace_schema_metadata(metadata).combine_chunks().to_batches()
            writer.write_batch(batch)
    data = sink.getvalue().to_pybytes()
    storage.write_bytes(path, data + _TRAILER.pack(zlib.crc32(data), _MAGIC))


#: after a staged Arrow IPC file's own bytes: the CRC-32 of those bytes, then this mark. Of the
#: bytes as stored, not as Arrow would encode them again: a pyarrow that encodes a batch another
#: way still reads the files an earlier one staged.
_MAGIC = b"OMNICRC1"
_TRAILER = struct.Struct("<I8s")


class StagedFile:
    """One staged window file, open: the bucket of each of its row groups (or batches), and
    each one's rows. A file whose bytes are not those written (an Arrow IPC file's CRC-32, a
    Parquet page's CRC) or that does not decode is :class:`LakeDamaged`."""

    def __init__(
        self, buckets: list[int], read: Callable[[int, list[str] | None], pa.Table]
    ) -> None:
        self.buckets = buckets
        self._read = read

    def read(self, index: int, columns: list[str] | None = None) -> pa.Table:
        """The rows of row group (or batch) ``index``; ``columns``: only those."""
        return self._read(index, columns)


def _buckets(metadata: dict[bytes, bytes] | None) -> list[int]:
    """The bucket list of a staged file's metadata; a file without a readable one is damaged
    (raised inside ``LakeStorage.reading``, as Arrow's own errors are)."""
    try:
        buckets = orjson.loads((metadata or {})[BUCKETS_KEY])
    except (KeyError, orjson.JSONDecodeError):
        buckets = None
    if not isinstance(buckets, list) or not all(type(b) is int for b in buckets):
        raise OSError("its list of buckets is missing or unreadable")
    return buckets


def _checked_size(source: Any) -> int:
    """The size of a staged Arrow IPC file's own bytes, once their CRC-32 is found to be the
    one written after them (read in blocks: the file is not held). Raises OSError (damage)."""
    size: int = source.seek(0, 2) - _TRAILER.size
    if size <= 0:
        raise OSError("too short to be a staged file")
    source.seek(size)
    tail = source.read(_TRAILER.size)
    if len(tail) != _TRAILER.size:
        raise OSError("shorter than it says")
    crc, magic = _TRAILER.unpack(tail)
    if magic != _MAGIC:
        raise OSError("no CRC after its bytes")
    source.seek(0)
    found, left = 0, size
    while left:
        block = source.read(min(left, 1 << 20))
        if not block:
            raise OSError("shorter than it says")
        found, left = zlib.crc32(block, found), left - len(block)
    if found != crc:
        raise OSError("its bytes do not match their CRC-32")
    return size


def _counts_agree(metadata: Any) -> None:
    """A Parquet staged file's footer (no CRC covers it) tells its rows twice: the file's count
    and its row groups'. A review's fuzz found one flipped bit setting a group's rows to 0
    while its column held 2: its rows read as none. (Not asked of its column chunks: reading a
    damaged one's metadata stops the process in Arrow's C++.)"""
    counted = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    if counted != metadata.num_rows:
        raise OSError(f"its row groups hold {counted} rows, and it says {metadata.num_rows}")


@contextlib.contextmanager
def open_staged(storage: LakeStorage, name: str) -> Iterator[StagedFile]:
    """A staged file of either format, open for the length of the ``with``."""
    if not name.endswith(IPC):
        with storage.parquet_file(name) as file:
            with storage.reading(name):
                buckets = _buckets(file.schema_arrow.metadata)

                _counts_agree(file.metadata)

            def read_group(index: int, columns: list[str] | None = None) -> pa.Table:
                with storage.reading(name):  # on one thread, as read_table
                    return file.read_row_group(index, columns=columns, use_threads=False)

            yield StagedFile(buckets, read_group)
        return
    with pa.OSFile(storage.path(name)) if storage.local else storage.open(name) as source:
        with storage.reading(name):
            reader = pa.ipc.open_file(source, footer_offset=_checked_size(source))
            buckets = _buckets(reader.schema.metadata)
            if reader.num_record_batches != len(buckets):
                raise OSError(f"{reader.num_record_batches} batches for {len(buckets)} buckets")

        def read_batch(index: int, columns: list[str] | None = None) -> pa.Table:
            with storage.reading(name):
                batch = reader.get_batch(index)
                batch.validate()  # its bytes are those written; a cheap check of its shape
            rows = pa.Table.from_batches([batch])
            return rows if columns is None else rows.select(columns)

        yield StagedFile(buckets, read_batch)


def staged_files(storage: LakeStorage, folder: str) -> list[str]:
    """The staged window files under ``folder`` (one plan's, or every plan's), of both formats."""
    return [name for name in storage.files(folder, suffix="") if name.endswith((IPC, PARQUET))]


def without_staging_metadata(rows: pa.Table) -> pa.Table:
    metadata = {k: v for k, v in (rows.schema.metadata or {}).items() if k != BUCKETS_KEY}
    return rows.replace_schema_metadata(metadata or None)


def check_staged(storage: LakeStorage, plan_id: str, buckets: int) -> dict[str, list[int]]:
    """Every file the plan staged, opened (an Arrow IPC file's CRC-32 checked, a Parquet file's
    footer read): the buckets of each. A merge calls it before it writes any bucket (a resumed
    plan reads them more thoroughly first: ``staging_upkeep.read_damaged_again``). Raises
    :class:`LakeDamaged`."""
    return {
        name: checked_buckets(storage, name, buckets)
        for name in staged_files(storage, staging_dir(plan_id))
    }


def checked_buckets(
    storage: LakeStorage, name: str, buckets: int, schema: pa.Schema | None = None
) -> list[int]:
    """The buckets of staged file ``name``, once it is opened (see :func:`check_staged`); with
    ``schema``, its every row group read too (a Parquet file's page CRCs are checked only then)
    and found of that schema (a flipped bit in a footer, which no CRC covers, renamed a column
    that the merge then left empty: a review's fuzz)."""
    with open_staged(storage, name) as file:
        held = file.buckets
        for index in range(len(held) if schema is not None else 0):
            found = without_staging_metadata(file.read(index)).schema.remove_metadata()
            if schema is not None and not found.equals(schema.remove_metadata()):
                with storage.reading(name):
                    raise OSError(f"its columns are not the lake's: {found.names}")
    # A bucket the merge never asks for would leave its rows out without a word (found by a
    # review: a Parquet footer's bucket list has no CRC).
    if not held or len(set(held)) != len(held) or not set(held) <= set(range(buckets)):
        with storage.reading(name):
            raise OSError(f"it lists buckets {held} of a layout of {buckets}")
    return held


def staged_by_bucket(
    storage: LakeStorage, plan_id: str, buckets: int
) -> Iterator[tuple[int, list[pa.Table]]]:
    """Each bucket's staged row groups, bucket by bucket (every bucket, with an empty list where
    the plan staged none). The files of one group of buckets are open at a time, so the parsed
    metadata held is a group's, not every window's; a file of any layout is read by the buckets
    its metadata lists (a window staged by an earlier omnisync in one file is opened for each
    group)."""
    # Every file checked before any bucket is written: damage found in a later group would
    # otherwise stop a merge that had written the buckets before it (a review)
    listed = check_staged(storage, plan_id, buckets)
    for first in range(0, buckets, GROUP_BUCKETS):
        group = range(first, min(first + GROUP_BUCKETS, buckets))
        names = [name for name, held in listed.items() if set(held) & set(group)]
        with contextlib.ExitStack() as stack:
            # each file's own list: one replaced since it was listed is read as it is now
            opened = [stack.enter_context(open_staged(storage, name)) for name in names]
            for bucket in group:
                rows = [
                    file.read(file.buckets.index(bucket))
                    for file in opened
                    if bucket in file.buckets
                ]
                yield bucket, [without_staging_metadata(part) for part in rows]


def remove_staged(storage: LakeStorage, pks: Collection[int]) -> int:
    """Take the rows of ``pks`` out of every staged window file, keeping its layout (a row
    group or batch per bucket, the buckets in its metadata, its format); a file left with no row
    goes. Each file is replaced atomically; one without such a row is not rewritten. Returns the
    files changed."""
    wanted = pa.array(sorted({int(pk) for pk in pks}), pa.int64())
    changed = 0
    for path in staged_files(storage, STAGING):
        with open_staged(storage, path) as file:
            buckets = file.buckets
            held = [file.read(index, ["pk"]).column("pk") for index in range(len(buckets))]
            if not any(pc.any(pc.is_in(column, value_set=wanted)).as_py() for column in held):
                continue
            groups = [file.read(index) for index in range(len(buckets))]
        kept = [
            (bucket, group.filter(pc.invert(pc.is_in(group.column("pk"), value_set=wanted))))
            for bucket, group in zip(buckets, groups, strict=True)
        ]
        kept = [(bucket, group) for bucket, group in kept if group.num_rows]
        changed += 1
        if not kept:
            storage.delete(path)
            continue
        write_staged(
            storage,
            path,
            [bucket for bucket, _ in kept],
            [without_staging_metadata(group) for _, group in kept],
        )
    return changed
