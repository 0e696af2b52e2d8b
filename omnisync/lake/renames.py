"""Atomic renames on a local disk: where a file is written before it replaces its target, and
a swap of two directories in one step where the kernel offers one (``omnisync/lake/storage.py``
uses them; an object store needs neither: one PUT is atomic)."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import posixpath
from typing import Any


def temporary_path(target: str, tag: str) -> str:
    """Where ``target`` is written before its rename: a hidden name (leading dot), which
    pyarrow, pandas, Polars, DuckDB globs and Spark all skip, so a file left by a killed
    process is never read as data."""
    return posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.tmp-{tag}")


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def renameat2_function() -> Any:
    """libc's ``renameat2``, or None where it has none; looked up once, so that nothing but the
    system call runs between a guard and the swap it guards."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def exchange_paths(first: str, second: str) -> bool:
    """Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): a reader
    sees one or the other at each path, never neither and never both. False where the kernel or
    file system cannot (nothing is changed then)."""
    renameat2 = renameat2_function()
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), first)


def missing(path: str) -> bool:
    """Whether nothing is at ``path`` (not: it cannot be looked at, which a write then says)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False
