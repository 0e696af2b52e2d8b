"""The customer sync, one module per step of a run.

context     the run's context (one factory, open_run), opened before any window thread
planning    the upper bound and the windows, from counts (or the plan a crash left open)
window      one window: read (client's paginator), type, validate, stage, log, mark done (G3, G6)
staging     the staged window file: one row group per snapshot bucket, read back by the finish
finish      judge the run's quality, merge, move the watermark, compact (G3, G6)
deletions   the deletion check (G9); applying: the one path a recorded deletion leaves the lake by
deletion_sides  what the deletion check compares: the lake's pks, Omnitron's count and changes
record      the run's start and outcome, written in one place
"""

import contextlib
from collections.abc import Iterator

from omnisync.settings import Settings
from omnisync.state import RunRecord
from omnisync.sync.context import STREAM, RunContext, open_run
from omnisync.sync.finish import PlanTotals, finish_plan
from omnisync.sync.planning import Plan, new_plan, open_plan, plan_windows
from omnisync.sync.window import BatchRejected, WindowResult, sync_window

__all__ = [
    "STREAM",
    "BatchRejected",
    "Plan",
    "PlanTotals",
    "RunContext",
    "RunRecord",
    "WindowResult",
    "finish_plan",
    "new_plan",
    "open_plan",
    "open_run",
    "plan_windows",
    "preflight",
    "sync_window",
]


@contextlib.contextmanager
def preflight(settings: Settings) -> Iterator[RunContext]:
    """Open the lake, the state database and Omnitron before any engine starts, raising the
    error a user can act on (LakeError, StateError, ConfigurationError, AuthenticationFailed,
    RetriesExhausted); the open context is the run's to use until the block ends.

    Opening retries briefly until Omnitron first answers: a person at a terminal wants an
    unreachable Omnitron named in seconds, not after the run's full retry budget, and a host
    that does not exist at once. Once it answered, the client has that full budget."""
    import uuid

    with open_run(settings, uuid.uuid4().hex, validate=False, preflight=True) as context:
        yield context
