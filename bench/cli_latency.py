"""How fast the command line answers a mistake or a refusal (goal: under 2 s), beside the floor of
starting the interpreter and the command's ``--help`` in the same invocation.

These were assertions in the test suite (``took < 2.0``), which fail on a loaded machine; the
suite now checks what makes them fast (no engine started, one line), and this prints the time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sandbox_process import sandbox_process

GOAL_SECONDS = 2.0
TIMES = 3
#: a port that refuses the connection: a mistake or a server restarting, so briefly retried
REFUSED = "a refused connection"


def _timed(env: dict[str, str], *args: str) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, done.returncode


def _median(env: dict[str, str], *args: str) -> tuple[float, int]:
    runs = [_timed(env, *args) for _ in range(TIMES)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main() -> None:
    from omnisync.state import StateStore

    with tempfile.TemporaryDirectory() as scratch, sandbox_process(100) as url:
        root = Path(scratch)
        env = {
            **os.environ,
            "OMNITRON_URL": url,
            "OMNITRON_USERNAME": "sandbox",
            "OMNITRON_PASSWORD": "sandbox",
            "OMNISYNC_LAKE": str(root / "lake"),
            "OMNISYNC_STATE_URL": f"sqlite:///{root}/state.db",
        }
        env.pop("PREFECT_API_URL", None)
        floor, _ = _median(env, "-c", "pass")
        helped, _ = _median(env, "-m", "omnisync.cli", "--help")
        rows = [("python -c pass (floor)", floor, 0), ("omnisync --help", helped, 0)]
        mistake = {**env, "OMNISYNC_PAGE_SIZE": "abc"}
        rows.append(("a bad setting", *_median(mistake, "-m", "omnisync.cli", "sync")))
        store = StateStore(env["OMNISYNC_STATE_URL"])
        store.migrate()
        with store.lease.locked("customers", run_id="bench-holder"):
            rows.append(("a busy stream", *_median(env, "-m", "omnisync.cli", "sync")))
        typo = {**env, "OMNITRON_URL": "http://omnitron-typo.invalid"}
        rows.append(("a mistyped Omnitron host", *_median(typo, "-m", "omnisync.cli", "sync")))
        gone = {**env, "OMNITRON_URL": "http://127.0.0.1:9"}
        rows.append((REFUSED, *_median(gone, "-m", "omnisync.cli", "sync")))
    print(f"{'what':<26} {'median s':>9} {'exit':>5}  vs floor  goal <= {GOAL_SECONDS:.0f} s")
    for name, seconds, code in rows:
        if name.startswith(("python", "omnisync --help")):
            verdict = ""
        elif name == REFUSED:
            # a server restarting refuses connections too: retried on purpose, not a mistake's
            verdict = "no goal (3 attempts, on purpose)"
        else:
            verdict = "met" if seconds <= GOAL_SECONDS else "NOT met"
        print(f"{name:<26} {seconds:>9.2f} {code:>5}  {seconds / floor:>7.1f}x  {verdict}")


if __name__ == "__main__":
    main()
