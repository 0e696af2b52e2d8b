"""Imports made without the cycle collector, and frozen out of its later passes.

Each case runs in a fresh interpreter: a freeze in the test session would keep its garbage."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from omnisync.validation.gx_import import import_gx
from tests.fresh_interpreter import printed_by

SCENARIO = r"""
import gc, json, sys, weakref
from omnisync.lasting_imports import lasting_imports

class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cycle collector frees it

if sys.argv[1] == "paused":
    gc.disable()
said = {}
before = weakref.ref(Node())  # garbage made before the block
frozen = gc.get_freeze_count()
with lasting_imports():
    said["paused_inside"] = not gc.isenabled()
    import colorsys  # noqa: F401  (a module not loaded yet)
    kept = [Node() for _ in range(100)]
    inside = weakref.ref(Node())  # garbage made in the block
said["collecting_after"] = gc.isenabled()
said["froze"] = gc.get_freeze_count() - frozen
gc.collect()
said["garbage_before_collected"] = before() is None
said["garbage_inside_kept"] = inside() is not None
frozen = gc.get_freeze_count()
with lasting_imports():  # nothing to import: a second run in one process
    more = [Node() for _ in range(100)]
said["second_froze"] = gc.get_freeze_count() - frozen
print(json.dumps(said))
"""


def scenario(how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, how], capture_output=True, text=True, check=True
    )
    said: dict[str, object] = json.loads(done.stdout)
    return said


def test_the_collector_is_paused_for_the_imports_and_what_lasts_is_frozen() -> None:
    said = scenario("collecting")
    assert said["paused_inside"] and said["collecting_after"]
    assert isinstance(said["froze"], int) and said["froze"] >= 100
    assert said["garbage_before_collected"], "garbage made before the block is not frozen"
    assert said["garbage_inside_kept"], "frozen: no later pass walks it (the documented price)"
    assert said["second_froze"] == 0, "a block that imports nothing freezes nothing"


def test_a_paused_collector_stays_paused() -> None:
    said = scenario("paused")
    assert said["paused_inside"] and not said["collecting_after"]


def test_gx_is_imported_and_frozen_once_per_process() -> None:
    """A long-lived process (a Prefect worker) builds a validator per run: only the first
    import freezes, never the runs' objects after it."""
    import_gx()  # the test session imported it first (tests/conftest.py)
    frozen = gc.get_freeze_count()
    import_gx()
    assert gc.get_freeze_count() == frozen


COMMAND = r"""
import gc, os, sys
from pathlib import Path

WATCHED = ("pydantic_settings", "sqlalchemy", "pyarrow", "transforms.pii")
during = {name: 0 for name in WATCHED}


def importing(name):
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))  # set while its module runs


def noted(phase, info):
    if phase == "start":
        for name in WATCHED:
            during[name] += importing(name)


gc.callbacks.append(noted)
root = Path(sys.argv[1])
os.environ.update(
    OMNITRON_URL="http://127.0.0.1:1",  # nothing listens: the command stops at its preflight
    OMNITRON_USERNAME="someone",
    OMNITRON_PASSWORD="secret",
    OMNISYNC_LAKE=str(root / "lake"),
    OMNISYNC_STATE_URL=f"sqlite:///{root}/state.db",
)
sys.argv = ["omnisync", "sync"]
from omnisync.cli import main

try:
    main()
except SystemExit:
    pass
for name in WATCHED:
    assert name in sys.modules, name
    print(name, during[name])
"""


def test_a_commands_settings_and_their_checks_are_imported_without_the_collector(
    tmp_path: Path,
) -> None:
    """The settings, and what their checks import (SQLAlchemy for the state URL, pyarrow for the
    PII columns), are every command's first imports: made without the collector's passes (0.06 to
    0.09 CPU-s of collections a command, docs/performance.md). Counted: the collections that began
    while one of them was being imported."""
    said = printed_by(COMMAND, str(tmp_path))
    assert dict(zip(said[::2], said[1::2], strict=True)) == {
        "pydantic_settings": "0",
        "sqlalchemy": "0",
        "pyarrow": "0",
        "transforms.pii": "0",
    }
