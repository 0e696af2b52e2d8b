"""Start the sandbox in its own process, so a benchmark's CPU figures are the client's alone."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def sandbox_child(customers: int, *extra: str) -> Iterator[tuple[str, int]]:
    """Yield the base URL and the process id of a sandbox with ``customers`` customers running in
    a subprocess (the id lets a benchmark read the sandbox's own CPU time and memory)."""
    command = [
        sys.executable,
        "-m",
        "omnisync.cli",
        "sandbox",
        "--port",
        "0",
        "--customers",
        str(customers),
        *extra,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the sandbox did not start (printed {url!r})")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def sandbox_process(customers: int, *extra: str) -> Iterator[str]:
    """Yield the base URL of a sandbox with ``customers`` customers running in a subprocess."""
    with sandbox_child(customers, *extra) as (url, _):
        yield url


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """A running process's resident memory now (MiB)."""
    return _status_kib(pid, "VmRSS:") / 1024


def peak_rss_mib(pid: int) -> float:
    """A running process's peak resident memory so far (MiB)."""
    return _status_kib(pid, "VmHWM:") / 1024


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
