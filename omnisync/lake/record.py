"""The lake's record of itself, ``_meta/lake.json`` (``{"format": 1, "buckets": 64, "pii":
{"email": "hash"}}``), beside the datasets, never inside one.

Until a first release, a lake of another format is not converted: every command refuses it
(:class:`OldLake`) in one line saying to rebuild it, and ``omnisync sync --full-refresh`` moves
its datasets aside (:data:`ASIDE`) and starts a current lake in their place
(``Snapshot.ensure_current``). The PII policy is recorded the same way: a run that writes with
another one would mix clear and hashed values in one column of the change log, so it is refused
(:class:`PolicyChanged`) until a full refresh rebuilds the lake with it. A folder holding
another tool's files and no lake of omnisync's is refused (:class:`ForeignFolder`), never
written into nor moved aside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from omnisync.lake.errors import LakeError
from omnisync.lake.storage import LakeStorage

DATASET = "customers"
# Outside the dataset's folder: a non-Parquet file inside it breaks pl.scan_parquet("customers/").
RECORD = "_meta/lake.json"
#: The format this omnisync reads and writes. Raise it with any change a reader of the files
#: written before would misread; until a first release, a lake of a lower one is rebuilt.
FORMAT = 1
#: what omnisync writes: a lake without RECORD that holds any of these was written before it
WRITTEN = ("_meta", DATASET, "customer_changes", "quarantine")
#: moved aside by a full refresh of an older lake (kept for people, out of every reader's way)
MOVED = (*WRITTEN, "reconciliation")
ASIDE = "_before_rebuild"
REBUILD = "rebuild it with `omnisync sync --full-refresh`"
#: what only omnisync writes: a folder without RECORD holding one of these is an older lake (a
#: ``_meta/`` folder alone is not: other tools use that name too)
OWN_DATA = (DATASET, "customer_changes", "quarantine", ASIDE, "_meta/customers-layout.json")
#: the names of what omnisync writes at the lake's root; any other entry is someone else's
OWN_NAMES = frozenset({*MOVED, ASIDE, "_reports", "_staging"})


class OldLake(LakeError):
    """The lake was written in another format than this omnisync's: rebuild it."""


class PolicyChanged(LakeError):
    """The lake was written with another PII policy than the settings': rebuild it."""


def recorded_policy(policy: Mapping[str, str]) -> dict[str, str]:
    """A PII policy as the lake records it: the columns hashed or dropped, by name."""
    return {name: action for name, action in sorted(policy.items()) if action != "keep"}


class ForeignFolder(LakeError):
    """OMNISYNC_LAKE is a folder omnisync did not write: never written into, nor moved aside."""


def lake_format(storage: LakeStorage) -> int | None:
    """The lake's format: :data:`FORMAT` for a brand-new lake (nothing written yet), None for
    one written before the format was recorded, else the recorded number. Raises
    :class:`ForeignFolder` for a folder that holds something else and no lake of omnisync's."""
    storage.check_folder()
    record = storage.read_json(RECORD)
    if record is not None:
        return int(record.get("format", 0))
    # A rebuild interrupted after moving everything aside is not a new lake either.
    if any(storage.files(d, suffix="") for d in OWN_DATA):
        return None
    others = foreign_entries(storage)
    if others:
        # Not an older lake: a full refresh would move its folders aside, a sync mix ours in.
        raise ForeignFolder(
            f"OMNISYNC_LAKE {storage.shown!r} holds what omnisync did not write "
            f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) and no lake of its "
            "own (no _meta/lake.json, no customers/): it looks like another tool's folder. "
            "Point OMNISYNC_LAKE at a new or empty folder"
        )
    return FORMAT


def foreign_entries(storage: LakeStorage) -> list[str]:
    """The names at the lake's root that omnisync never writes there (hidden ones aside)."""
    if not storage.fs.exists(storage.root):
        return []
    names = {
        str(path).rstrip("/").rsplit("/", 1)[-1]
        for path in storage.fs.ls(storage.root, detail=False)
    }
    return sorted(n for n in names if n not in OWN_NAMES and not n.startswith((".", "_probe-")))


def check_format(storage: LakeStorage) -> None:
    """Raise :class:`OldLake` (one line for the user) unless the lake is of :data:`FORMAT` or
    brand new. Readers call it before they read; it only reads."""
    found = lake_format(storage)
    if found == FORMAT:
        return
    if found is not None and found > FORMAT:
        raise OldLake(
            f"the lake {storage.shown!r} is in format {found}, written by a newer omnisync "
            f"(this one reads format {FORMAT}): upgrade omnisync"
        )
    recorded = "no format recorded" if found is None else f"format {found}"
    raise OldLake(
        f"the lake {storage.shown!r} was written by an earlier omnisync ({recorded}; this one "
        f"reads format {FORMAT}): {REBUILD}"
    )


class LakeNotFound(LakeError):
    """OMNISYNC_LAKE holds no lake, while the state database says one was synced."""


def check_lake_for_state(storage: LakeStorage, watermark: dt.datetime | None) -> None:
    """Raise :class:`LakeNotFound` when the state has a watermark but OMNISYNC_LAKE holds no
    lake of omnisync's (no record, none of its data): a mistyped path would otherwise get a lake
    of only what changed since that watermark, and a verification of it a wrong verdict."""
    if watermark is None or storage.read_json(RECORD) is not None:
        return
    if any(storage.files(d, suffix="") for d in OWN_DATA):
        return
    raise LakeNotFound(
        f"OMNISYNC_LAKE {storage.shown!r} holds no lake, but the state database "
        f"(OMNISYNC_STATE_URL) has synced the customers stream up to {watermark.isoformat()}: "
        "point OMNISYNC_LAKE at that lake, or build a new one here with "
        "`omnisync sync --full-refresh`"
    )
