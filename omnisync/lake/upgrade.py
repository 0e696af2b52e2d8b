"""The lake's format version, and the one-time rewrite of datasets an earlier omnisync wrote.

Version 2 writes JSON columns with Parquet's JSON logical type; version 1 wrote them as plain
strings tagged ``omnisync.format=json``. Version 3 gives every row of the change log ``_op``
(``upsert`` for the versions an earlier omnisync logged). omnisync reads every version
(``LakeStorage.read_table``), but Polars refuses a dataset whose files differ in types or
columns (DuckDB needs ``union_by_name``), so the first sync after the upgrade rewrites every file
of each dataset the new versions changed into a staged copy, and switches it into place whole
(``LakeStorage.replace_directory``): a reader sees the old files or the new, never both. The
version is recorded in ``_meta/lake-format.json`` only once every dataset is done, so a run
interrupted half way does the rest next time.
"""

from __future__ import annotations

import logging

from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.changes import with_op
from omnisync.lake.quarantine import DATASET as QUARANTINE
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.lake.storage import LakeStorage

log = logging.getLogger("omnisync.lake")
FORMAT = "_meta/lake-format.json"
VERSION = 3
DATASETS = (SNAPSHOT, CHANGES, QUARANTINE)
#: the datasets each version rewrites
CHANGED_IN = {2: DATASETS, 3: (CHANGES,)}
STAGING = "_staging/upgrade"


def upgrade(storage: LakeStorage) -> int:
    """Bring the lake to :data:`VERSION`; returns how many datasets were rewritten. Call it
    while holding the stream's lock, after the datasets' own ``recover``."""
    recorded = storage.read_json(FORMAT)
    version = 1 if recorded is None else int(recorded.get("version", 1))
    if version >= VERSION:
        return 0
    rewritten = 0
    for dataset in DATASETS:
        if not any(dataset in CHANGED_IN[v] for v in range(version + 1, VERSION + 1)):
            continue
        staged = f"{STAGING}/{dataset}"
        if storage.finish_replace(staged, dataset):
            rewritten += 1
            continue
        storage.delete_tree(staged)  # a copy never switched, or the old generation
        files = storage.files(dataset)
        if not files:
            continue
        for path in files:  # read_table gives JSON columns their type; write keeps it
            table = storage.read_table(path)
            storage.write_table(
                staged + path[len(dataset) :], with_op(table) if dataset == CHANGES else table
            )
        storage.replace_directory(staged, dataset)
        log.info("rewrote %s (%d files) to lake format %d", dataset, len(files), VERSION)
        rewritten += 1
    storage.write_json(FORMAT, {"version": VERSION})
    return rewritten
