"""GX's import overlaps planning's requests, and no other thread imports a module meanwhile.

A sync starts GX's import on its own thread before planning (``RunContext.prepare_validator``),
so that planning's requests wait on Omnitron while GX imports. That is safe only while no other
thread imports anything: two threads importing modules of one package can each hold a module
the other needs, and Python then hands one of them a module half made (an ImportError or an
AttributeError, at random). Each sync here runs in a fresh process with a finder at the head of
``sys.meta_path`` that writes down every module another thread looks for while GX's import thread
lives, and that thread starts importing only once planning is over, so that the watch spans all
of planning whatever the machine's speed; the lists must be empty. The test also proves that the
overlap happened: planning started while GX was being imported.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from tests.sync.sandbox_runs import (
    ROOT,
    assert_lake_matches_truth,
    cli_env,
    forget_stream,
    set_modified,
    wait_for_server_clock,
)

WATCHED_SYNC = r"""
import json, sys, threading

import omnisync.validation.gx_import as gx_import
from omnisync.validation.gx_import import IMPORT_THREAD

found, planning = [], []
planned = threading.Event()
importing = gx_import._import


def after_planning(done):
    planned.wait(120)
    importing(done)


gx_import._import = after_planning


def importing_gx():
    return any(t.name == IMPORT_THREAD and t.is_alive() for t in threading.enumerate())


class Watch:
    @staticmethod
    def find_spec(name, path=None, target=None):
        me = threading.current_thread().name
        if me != IMPORT_THREAD and name not in sys.modules and importing_gx():
            found.append([me, name])
        return None


sys.meta_path.insert(0, Watch)

import omnisync.sync.run as run

plan = run.new_plan


def new_plan(*args, **kwargs):
    planning.append(importing_gx())
    try:
        return plan(*args, **kwargs)
    finally:
        planned.set()


run.new_plan = new_plan
from omnisync.cli import app

try:
    app(["sync"])
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "found": found, "planning": planning}))
"""


def watched_sync(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", WATCHED_SYNC],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.stdout.strip(), done.stderr
    said: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert said["code"] in (0, None), done.stderr
    return said


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_no_thread_imports_while_gx_imports_in_full_and_incremental_syncs(
    make_sandbox: Callable[..., SandboxServer],
    tmp_path: Path,
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    server = make_sandbox(customers=400, seed=11)
    url = f"sqlite:///{tmp_path}/state.db"
    if database == "postgresql":  # the production state store: its driver loads at connecting
        url = request.getfixturevalue("postgres_url")
        forget_stream(url)
    # Pages of 50: the incremental's changes are more than one page, so planning reads the rest
    # of its open query in pk ranges (``_read_since``) while GX imports.
    env = cli_env(
        server,
        tmp_path,
        "",
        OMNISYNC_STATE_URL=url,
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_PAGE_SIZE="50",
    )
    full = watched_sync(env)
    assert full["planning"] == [True], "planning did not overlap GX's import"
    assert full["found"] == []

    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    for pk in range(1, 121):
        set_modified(server, pk, stamp, first_name=f"changed {pk}")
    wait_for_server_clock(server, 0)
    incremental = watched_sync(env)
    assert incremental["planning"] == [True]
    assert incremental["found"] == []
    assert_lake_matches_truth(server, str(tmp_path / "lake"))
