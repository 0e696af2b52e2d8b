"""The customer sync, one module per step of a run.

parts       what every step shares, opened before any window thread starts
planning    the upper bound and the windows, from counts (or the plan a crash left open)
window      one window: read (client's paginator), type, validate, stage, log, mark done (G3, G6)
finish      judge the run's quality, merge, move the watermark, compact (G3, G6)
record      the run's start and outcome, written in one place
"""

from omnisync.connection import preflight_options
from omnisync.settings import Settings
from omnisync.state import RunRecord
from omnisync.sync.finish import PlanTotals, finish_plan
from omnisync.sync.parts import STREAM, RunParts
from omnisync.sync.planning import Plan, new_plan, open_plan, plan_windows
from omnisync.sync.window import BatchRejected, WindowResult, sync_window

__all__ = [
    "STREAM",
    "BatchRejected",
    "Plan",
    "PlanTotals",
    "RunParts",
    "RunRecord",
    "WindowResult",
    "finish_plan",
    "new_plan",
    "open_plan",
    "plan_windows",
    "preflight",
    "sync_window",
]


def preflight(settings: Settings) -> RunParts:
    """Open the lake, the state database and Omnitron before any engine starts, raising the
    error a user can act on (LakeError, StateError, ConfigurationError, AuthenticationFailed,
    RetriesExhausted); returns the open parts for the run to use (or close).

    Opening retries briefly: a person at a terminal wants an unreachable Omnitron named in
    seconds, not after the run's full retry budget. Once open, the client has that full budget
    back for the run."""
    import uuid

    parts = RunParts.open(
        settings,
        uuid.uuid4().hex,
        validate=False,
        **preflight_options(settings),
    )
    parts.client.retry_attempts = settings.retry_attempts
    parts.client.retry_max_seconds = settings.retry_max_seconds
    return parts
