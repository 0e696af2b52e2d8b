"""The lake's format version, and the one-time rewrite of datasets an earlier omnisync wrote.

Version 2 writes JSON columns with Parquet's JSON logical type; version 1 wrote them as plain
strings tagged ``omnisync.format=json``. omnisync reads both (``LakeStorage.read_table``), but
Polars refuses a dataset that mixes the two, so the first sync after the upgrade rewrites every
file of each dataset into a staged copy and switches it into place whole
(``LakeStorage.replace_directory``): a reader sees the old files or the new, never both. The
version is recorded in ``_meta/lake-format.json`` only once every dataset is done, so a run
interrupted half way does the rest next time.
"""

from __future__ import annotations

import logging

from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.quarantine import DATASET as QUARANTINE
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.lake.storage import LakeStorage

log = logging.getLogger("omnisync.lake")
FORMAT = "_meta/lake-format.json"
VERSION = 2
DATASETS = (SNAPSHOT, CHANGES, QUARANTINE)
STAGING = "_staging/upgrade"


def upgrade(storage: LakeStorage) -> int:
    """Bring the lake to :data:`VERSION`; returns how many datasets were rewritten. Call it
    while holding the stream's lock, after the datasets' own ``recover``."""
    recorded = storage.read_json(FORMAT)
    if recorded is not None and recorded.get("version", 1) >= VERSION:
        return 0
    rewritten = 0
    for dataset in DATASETS:
        staged = f"{STAGING}/{dataset}"
        if storage.finish_replace(staged, dataset):
            rewritten += 1
            continue
        storage.delete_tree(staged)  # a copy never switched, or the old generation
        files = storage.files(dataset)
        if not files:
            continue
        for path in files:  # read_table gives JSON columns their type; write keeps it
            storage.copy(path, staged + path[len(dataset) :])
        storage.replace_directory(staged, dataset)
        log.info("rewrote %s (%d files) with Parquet's JSON type", dataset, len(files))
        rewritten += 1
    storage.write_json(FORMAT, {"version": VERSION})
    return rewritten
