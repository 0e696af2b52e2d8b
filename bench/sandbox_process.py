"""Start the sandbox in its own process, so a benchmark's CPU figures are the client's alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def sandbox_process(customers: int, *extra: str) -> Iterator[str]:
    """Yield the base URL of a sandbox with ``customers`` customers running in a subprocess."""
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
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
