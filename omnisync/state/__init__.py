"""The state store (SQLAlchemy 2 + Alembic): watermarks, run log, plans, the lease, the ledger."""

from omnisync.state.errors import LockHeld, LockLost, LockUnproven, StateError
from omnisync.state.fence import Fence
from omnisync.state.plans import Window
from omnisync.state.record import RunRecord
from omnisync.state.store import StateStore

__all__ = [
    "Fence",
    "LockHeld",
    "LockLost",
    "LockUnproven",
    "RunRecord",
    "StateError",
    "StateStore",
    "Window",
]
