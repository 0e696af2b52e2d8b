"""The Parquet lake (docs/lake.md): change log, current snapshot and quarantine, atomic writes."""

from omnisync.lake.changes import ChangeLog, window_key
from omnisync.lake.errors import LakeError
from omnisync.lake.quarantine import write_quarantine
from omnisync.lake.snapshot import Snapshot
from omnisync.lake.storage import LakeStorage

__all__ = ["ChangeLog", "LakeError", "LakeStorage", "Snapshot", "window_key", "write_quarantine"]
