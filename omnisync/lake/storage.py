"""The lake's storage: a local path or an fsspec URL, with atomic file replacement.

On a local disk a file is written to a temporary name in the same directory and renamed over the
target (atomic on POSIX). On an object store a single PUT is already atomic: readers see the old
object or the new one, never a part.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


def temporary_path(target: str, tag: str) -> str:
    """Where ``target`` is written before its rename: a hidden name (leading dot), which
    pyarrow, pandas, Polars, DuckDB globs and Spark all skip, so a file left by a killed
    process is never read as data."""
    return posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.tmp-{tag}")


class LakeError(Exception):
    """The lake cannot be written or read as configured (OMNISYNC_LAKE): fix the path or access."""


class LakeStorage:
    def __init__(self, root: str, **storage_options: Any) -> None:
        fs, path = fsspec.core.url_to_fs(root, **storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = path.rstrip("/")
        self.local = isinstance(fs, LocalFileSystem)
        self.url = root

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def check_writable(self) -> None:
        """Raise LakeError with the reason when the lake root cannot be written."""
        probe = self.path(f"_probe-{uuid.uuid4().hex}")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"ok")
            self.fs.rm(probe)
        except Exception as exc:  # any backend's error means the same thing to the user
            raise LakeError(f"OMNISYNC_LAKE {self.url!r} is not writable: {exc}") from None

    def write_table(self, relative: str, table: pa.Table) -> None:
        """Write ``table`` as one Parquet file, replacing any file at ``relative`` atomically."""
        target = self.path(relative)
        if self.local:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            # A process killed mid-write leaves its temp file behind: remove those first.
            for stale in self.fs.glob(temporary_path(target, "*")):
                self.fs.rm(stale)
            temporary = temporary_path(target, uuid.uuid4().hex)
            try:
                pq.write_table(table, temporary, filesystem=self.fs, **PARQUET_OPTIONS)
                self.fs.mv(temporary, target)
            finally:
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)
        else:
            with self.fs.open(target, "wb") as handle:
                pq.write_table(table, handle, **PARQUET_OPTIONS)

    def read_table(self, relative: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(relative), filesystem=self.fs, columns=columns)

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def files(self, relative: str, suffix: str = ".parquet") -> list[str]:
        """Files under ``relative`` (recursively), as paths relative to the lake root."""
        base = self.path(relative)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        start = len(self.root) + 1
        return sorted(str(p)[start:] for p in found if str(p).endswith(suffix))

    def read_json(self, relative: str) -> dict[str, Any] | None:
        if not self.exists(relative):
            return None
        with self.fs.open(self.path(relative), "rb") as handle:
            value = json.loads(handle.read())
        return value if isinstance(value, dict) else None

    def write_json(self, relative: str, value: dict[str, Any]) -> None:
        target = self.path(relative)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        with self.fs.open(target, "wb") as handle:
            handle.write(json.dumps(value).encode())

    def delete_tree(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.rm(self.path(relative), recursive=True)

    def delete(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.rm(self.path(relative))
