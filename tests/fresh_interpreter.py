"""Run a short script in a fresh interpreter: for what one process's imports and globals would
hide (which modules a run loads, which allocator it leaves Arrow on)."""

from __future__ import annotations

import subprocess
import sys


def printed_by(script: str, *args: str, timeout: float = 120) -> list[str]:
    """The words ``script`` printed (given ``args`` as ``sys.argv[1:]``); fails the test with
    its stderr if it failed."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
