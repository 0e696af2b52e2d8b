"""The lake's storage: a local path or an fsspec URL, with atomic file replacement.

On a local disk a file is written to a temporary name in the same directory and renamed over the
target (atomic on POSIX). On an object store a single PUT is already atomic: readers see the old
object or the new one, never a part.

A run that holds its stream's lock writes through a writer made with the lock's check (the
``guard`` argument, or :meth:`LakeStorage.guarded`), never set on a writer afterwards. The guard is
called immediately before every rename, replace, swap and delete in the lake, after the new
content is already written aside: a run that lost its lock raises there and changes nothing.
Nothing slow runs between the guard and the change it guards (no write, no listing, no network
round trip on a local lake), so the only way past a guard that passed is to be frozen in those few
instructions for longer than the lease it left (see ``omnisync/state/store.py``). On an object
store the guarded change is one PUT or DELETE request, and its duration is part of that window. A
process's own temporary file, under a name no other process uses, is removed without asking.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from omnisync.lake.errors import LakeDamaged, LakeError, damage_in
from omnisync.lake.file_options import ROW_GROUP_ROWS, SCRATCH_OPTIONS, lake_options
from omnisync.lake.renames import exchange_paths, missing, renameat2_function, temporary_path
from omnisync.url_credentials import userinfo_hidden, userinfo_hidden_in, without_userinfo

#: marks a staged tree whose switch into place (without an atomic swap) has begun
_REPLACING = "_apply.json"


class LakeStorage:
    def __init__(
        self, root: str, *, guard: Callable[[], None] | None = None, **storage_options: Any
    ) -> None:
        try:
            fs, path = fsspec.core.url_to_fs(root, **storage_options)
        except (ValueError, ImportError) as exc:  # an unknown scheme, or its package missing
            reason = userinfo_hidden(str(exc), root)
            raise LakeError(f"OMNISYNC_LAKE {without_userinfo(root)!r}: {reason}") from None
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = path.rstrip("/")
        self.local = isinstance(fs, LocalFileSystem)
        self.url = root
        #: the root as messages show it: ``user:pass@`` of a URL hidden
        self.shown = without_userinfo(root)
        self._guard = guard

    def guarded(self, guard: Callable[[], None]) -> LakeStorage:
        """A writer of this lake guarded by ``guard`` (a fence's check); this one is unchanged."""
        writer = copy.copy(self)
        writer._guard = guard
        return writer

    def _changing(self) -> None:
        if self._guard is not None:
            self._guard()

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def _hidden(self, text: str) -> str:
        """``text`` with the lake's URL as shown to people and its ``user:pass`` as ``***``."""
        return userinfo_hidden(text, self.url)

    @contextlib.contextmanager
    def reading(self, relative: str) -> Iterator[None]:
        """Arrow's errors of decoding one file as :class:`LakeDamaged`; others pass, without the
        URL's user:pass. Wrap only a file's reading, not the caller's own work."""
        try:
            yield
        except Exception as exc:
            if not damage_in(exc):
                if isinstance(exc, OSError):  # fsspec's name the path
                    userinfo_hidden_in(exc, self.url)
                raise
            said = " ".join(str(exc).split())  # Arrow's messages span lines; this is one line
            reason = self._hidden(f"{type(exc).__name__}: {said}")[:300]  # hidden, then cut
            shown = posixpath.join(self.shown.rstrip("/"), relative)
            raise LakeDamaged(relative, shown, reason) from exc

    def check_folder(self) -> None:
        """Raise LakeError when the lake root is a file: no other check would say so plainly."""
        if self.fs.isfile(self.root):
            raise LakeError(f"OMNISYNC_LAKE {self.shown!r} is a file, not a folder: give a folder")

    def check_parent(self) -> None:
        """Raise LakeError when a new local lake is under a folder that does not exist either
        (a mistyped path); anything else is left to the write probe, which says why."""
        parent = posixpath.dirname(self.root)
        if self.local and missing(self.root) and missing(parent):
            raise LakeError(
                f"OMNISYNC_LAKE {self.shown!r}: the folder {parent!r} does not exist (a typo?); a "
                "new lake is made only in an existing folder, so create it first"
            )

    def check_writable(self) -> None:
        """Raise LakeError with the reason when the lake root cannot be written. A local lake is
        made on the first run, but only in a folder that exists: a mistyped path would otherwise
        get a new lake, somewhere nobody looks (and a refused run would leave its folders)."""
        self.check_folder()
        self.check_parent()
        probe = self.path(f"_probe-{uuid.uuid4().hex}")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"ok")
            self.fs.rm(probe)
        except Exception as exc:  # any backend's error means the same thing to the user
            reason = self._hidden(str(exc))
            raise LakeError(f"OMNISYNC_LAKE {self.shown!r} is not writable: {reason}") from None

    def write_table(self, relative: str, table: pa.Table) -> None:
        """Write ``table`` as one Parquet file (groups of ``ROW_GROUP_ROWS`` rows), atomically."""
        options = {**lake_options(table.schema), "row_group_size": ROW_GROUP_ROWS}
        self._write(relative, lambda sink: pq.write_table(table, sink, **options))

    def write_row_groups(
        self, relative: str, groups: Iterable[pa.Table], scratch: bool = False
    ) -> None:
        """``groups`` (one schema; a generator holds one at a time) as one file's row groups, in
        order, atomically; ``scratch``: read back only by omnisync, compressed cheaper."""
        parts = iter(groups)
        first = next(parts, None)
        if first is None:
            raise ValueError("write_row_groups needs at least one group")
        options = SCRATCH_OPTIONS if scratch else lake_options(first.schema)

        def write(sink: Any) -> None:
            with pq.ParquetWriter(sink, first.schema, **options) as writer:
                for group in itertools.chain([first], parts):
                    writer.write_table(group, row_group_size=max(1, group.num_rows))

        self._write(relative, write)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write ``data`` as one file, replacing any file at ``relative`` atomically."""

        def write(sink: Any) -> None:
            if isinstance(sink, str):
                with open(sink, "wb") as handle:
                    handle.write(data)
            else:
                sink.write(data)

        self._write(relative, write)

    def _write(self, relative: str, write: Callable[[Any], None]) -> None:
        self._changing()  # a run that already lost its lock writes nothing at all
        target = self.path(relative)
        if self.local:
            folder = posixpath.dirname(target)
            os.makedirs(folder, exist_ok=True)
            # A process killed mid-write leaves its temp file behind: remove those first. One
            # listing of the folder, not fsspec's glob: this runs before every file written.
            left = posixpath.basename(temporary_path(target, ""))
            with os.scandir(folder) as entries:
                for stale in entries:
                    if stale.name.startswith(left):
                        self._changing()
                        os.remove(stale.path)
            temporary = temporary_path(target, uuid.uuid4().hex)
            try:
                write(temporary)
                self._changing()
                os.replace(temporary, target)
            finally:
                if os.path.lexists(temporary):
                    os.remove(temporary)
        else:
            # Written aside first, so that the guard comes right before the one PUT.
            with tempfile.NamedTemporaryFile(suffix=".omnisync") as local:
                write(local.name)
                self._changing()
                self.fs.put_file(local.name, target)

    def open(self, relative: str) -> Any:
        """A binary file object to read ``relative`` (close it, or use it as a context)."""
        try:
            return self.fs.open(self.path(relative), "rb")
        except OSError as exc:  # not in reading: a bare OSError there is taken for damage
            userinfo_hidden_in(exc, self.url)
            raise

    @contextlib.contextmanager
    def parquet_file(self, relative: str) -> Iterator[pq.ParquetFile]:
        """One file, not by ``pq.read_table``: its dataset costs memory (performance.md)."""
        if self.local:
            with self.reading(relative):
                file = pq.ParquetFile(self.path(relative), page_checksum_verification=True)
            with file:
                yield file
        else:
            with self.open(relative) as handle:
                with self.reading(relative):
                    file = pq.ParquetFile(handle, page_checksum_verification=True)
                with file:
                    yield file

    def read_table(self, relative: str, columns: list[str] | None = None) -> pa.Table:
        """One file (``columns``: only those, each of which it must have)."""
        with self.parquet_file(relative) as file:
            if columns is not None:
                # ParquetFile.read skips a column it does not have; a caller that names it
                # relies on it
                missing = [c for c in columns if c not in file.schema_arrow.names]
                if missing:
                    shown = posixpath.join(self.shown.rstrip("/"), relative)  # no user:pass
                    raise LakeError(f"{shown} has no column(s) {missing}")
            with self.reading(relative):  # one thread: its pool costs CPU (docs/performance.md)
                return file.read(columns=columns, use_threads=False)

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
        self.write_bytes(relative, json.dumps(value).encode())  # replaced atomically

    def swap_directories(self, staged: str, target: str) -> bool:
        """Put the directory ``staged`` at ``target`` in one atomic step, leaving what was at
        ``target`` at ``staged``. False where this storage cannot (object stores, file systems
        without an atomic exchange): nothing is changed then, and the caller falls back."""
        self._changing()
        if not self.local:
            return False
        source, destination = self.path(staged), self.path(target)
        if not self.fs.exists(destination):
            self.fs.makedirs(posixpath.dirname(destination), exist_ok=True)
            self._changing()
            os.rename(source, destination)
            self.fs.makedirs(source, exist_ok=True)
            return True
        renameat2_function()  # looked up before the guard, not between it and the swap
        self._changing()
        return exchange_paths(source, destination)

    def replace_directory(self, staged: str, target: str) -> None:
        """Make the tree built at ``staged`` the one at ``target`` (what was there goes): one
        atomic exchange where the storage has it; else a marker in ``staged``, the old tree
        removed first (a reader never sees both, but may briefly see neither), then the new one
        copied in, a switch :meth:`finish_replace` completes if it was interrupted."""
        if self.swap_directories(staged, target):
            self.delete_tree(staged)  # the old generation, now out of sight
            return
        self.write_json(f"{staged}/{_REPLACING}", {"target": target})
        self.finish_replace(staged, target)

    def finish_replace(self, staged: str, target: str) -> bool:
        """Complete a :meth:`replace_directory` that stopped after its marker; False if none did.
        Idempotent: the staged files go only after the marker, which goes only after the copy."""
        marker = f"{staged}/{_REPLACING}"
        if not self.exists(marker):
            return False
        self.delete_tree(target)
        for path in self.files(staged):
            self.copy(path, target + path[len(staged) :])
        self.delete(marker)
        self.delete_tree(staged)
        return True

    def copy(self, source: str, target: str) -> None:
        """Copy one file, replacing ``target`` atomically (a rename locally, one PUT remotely)."""
        self.write_table(target, self.read_table(source))

    def delete_tree(self, relative: str) -> None:
        """Delete the files under ``relative``, each guarded on its own, then its empty folders."""
        self._changing()
        base = self.path(relative)
        if not self.fs.exists(base):
            return
        if not self.fs.isdir(base):
            self._changing()
            self.fs.rm_file(base)
            return
        for found in sorted(self.fs.find(base), reverse=True):
            self._changing()
            self.fs.rm_file(found)
        if self.local:
            for folder in sorted((f for f, _, _ in os.walk(base)), reverse=True):
                self._changing()
                os.rmdir(folder)

    def delete(self, relative: str) -> None:
        self._changing()
        if self.exists(relative):
            self._changing()
            self.fs.rm_file(self.path(relative))
