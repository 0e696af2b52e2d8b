"""The ``omnisync`` command line run inside the test's process, as a subprocess would see it.

A subprocess pays Python's, Prefect's and Great Expectations' imports (seconds of CPU) on every
run; in the test's process they are paid once. The command sees exactly the environment it is
given (nothing of the test's own), runs from the repository's root, and answers with what a
process would: its exit code, its stdout, and its stderr, where an uncaught exception is printed
as the traceback a process would print (so "no traceback" assertions keep their meaning). Tests
whose point is the process itself (a kill, a signal, a fresh interpreter's imports) start a real
one instead (``tests/sync/sandbox_runs.py``: ``omnisync_process``, ``start_omnisync``).
"""

from __future__ import annotations

import os
import subprocess
import traceback
from pathlib import Path
from unittest import mock

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def run_cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``omnisync ARGS`` with environment ``env``, in this process, in folder ``cwd``."""
    from omnisync.cli import app

    before = Path.cwd()
    with mock.patch.dict(os.environ, env, clear=True):
        os.chdir(cwd)
        try:
            result = CliRunner().invoke(app, list(args), prog_name="omnisync")
        finally:
            os.chdir(before)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["omnisync", *args], result.exit_code, result.stdout, stderr)
