"""The state store (SQLAlchemy 2 + Alembic): watermarks, run log, locks, windows, ledger."""

from omnisync.state.record import RunRecord
from omnisync.state.store import Fence, LockHeld, LockLost, StateError, StateStore, Window

__all__ = ["Fence", "LockHeld", "LockLost", "RunRecord", "StateError", "StateStore", "Window"]
