"""Which process holds a lock or runs a run: an owner names its host, pid, kernel boot and PID
namespace, so that a holder that ran in this very kernel and PID namespace and whose process is
gone is known dead at once (not merely one on a host of the same name: containers share names
and pids)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

UNKNOWN_IDENTITY = "unknown"


def _process_identity() -> str:
    """What makes a pid meaningful: the kernel's boot and the PID namespace. Two containers with
    the same host name and pid differ here."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(
                Path(path).read_text().strip() if "boot" in path else str(os.stat(path).st_ino)
            )
        except OSError:
            return UNKNOWN_IDENTITY  # every such host would look the same: trust no pid
    return uuid.uuid5(uuid.NAMESPACE_OID, "|".join(parts)).hex[:12]


_IDENTITY = _process_identity()


def new_owner() -> str:
    """A fresh owner for this process: ``host:pid:identity:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_IDENTITY}:{uuid.uuid4().hex[:12]}"


def process_gone(owner: str) -> bool:
    """True when ``owner`` (a :attr:`Lease.owner`) names a process of this kernel and PID
    namespace that no longer exists; False while it lives, or when this host cannot tell."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[2] != _IDENTITY:
        return False  # another kernel or PID namespace: only the lease can tell
    if _IDENTITY == UNKNOWN_IDENTITY:
        return False  # this kernel or namespace could not be identified: only the lease can tell
    if not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def why_taken_over(owner: str | None) -> str:
    """Why a run that another run took over ended, as its error says after "taken over by run
    <id>: ": known when its process was of this host and is gone, else only by its lease."""
    if owner and process_gone(owner):
        return "its process was gone (killed)"
    return (
        "it was killed on another host, or it stalled past its lease and changed nothing after that"
    )
