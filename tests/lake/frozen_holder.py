"""A lock holder that stops at one point of its own progress, for tests/lake/test_fencing.py.

``python -m tests.lake.frozen_holder STATE_URL LAKE STREAM KIND LEASE`` takes the stream's lock,
guards the lake with its fence and starts one change of kind KIND. At the point named below it
prints ``paused`` and waits for a line on stdin; the test freezes it there (SIGSTOP), takes the
stream over, changes the lake, then sends the line and SIGCONT. The holder then prints
``changed`` (exit 0) or ``LockLost: ...`` (exit 3).

While it waits it holds the fence's renewal lock: the freeze then never lands inside a heartbeat's
transaction, whose row lock (or SQLite's write lock) would keep the taker waiting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from omnisync.lake import LakeStorage
from omnisync.state import Fence, LockLost, StateStore

BUCKET = "customers/bucket=0/part.parquet"


def rows(label: str) -> pa.Table:
    return pa.table({"pk": [1, 2], "first_name": [label, label]})


def pause(fence: Fence) -> None:
    with fence.renewing:
        print("paused", flush=True)
        sys.stdin.readline()


class PausingStorage(LakeStorage):
    """Pauses inside the temporary write of a file, after its bytes are written and before the
    rename: where a holder that checked before writing would have had nothing left to ask."""

    fence: Fence

    def _write(self, relative: str, write: Callable[[Any], None]) -> None:
        def write_then_pause(sink: Any) -> None:
            write(sink)
            pause(self.fence)

        super()._write(relative, write_then_pause)


def main(url: str, lake: str, stream: str, kind: str, lease: float) -> int:
    store = StateStore(url, lease_seconds=lease)
    try:
        with store.lease.locked(stream) as fence:
            calls = 0

            def pause_then_check(at: int = 1) -> Callable[[], None]:
                """A guard that pauses at its ``at``-th call, between the change before (and
                its check) and this change's own check."""

                def guard() -> None:
                    nonlocal calls
                    calls += 1
                    if calls == at:  # once: later changes only check
                        pause(fence)
                    fence.check()

                return guard

            storage = LakeStorage(lake, guard=fence.check)
            if kind == "replace-file":
                pausing = PausingStorage(lake, guard=fence.check)
                pausing.fence = fence
                pausing.write_table(BUCKET, rows("frozen holder"))
            elif kind == "replace-directory":
                storage.write_table(f"_staging/frozen/{BUCKET}", rows("frozen holder"))
                storage.guarded(pause_then_check()).replace_directory(
                    "_staging/frozen/customers", "customers"
                )
            elif kind == "delete-file":
                storage.guarded(pause_then_check()).delete(BUCKET)
            elif kind == "delete-tree":
                # in the middle of the tree: after the first file's removal, before the next
                storage.guarded(pause_then_check(at=3)).delete_tree("customers")
            else:
                raise ValueError(kind)
    except LockLost as exc:
        print(f"LockLost: {exc}", flush=True)
        return 3
    finally:
        store.dispose()
    print("changed", flush=True)
    return 0


if __name__ == "__main__":
    url, lake, stream, kind, lease = sys.argv[1:]
    sys.exit(main(url, lake, stream, kind, float(lease)))
