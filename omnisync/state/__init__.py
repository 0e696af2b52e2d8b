"""The state store (SQLAlchemy 2 + Alembic): watermarks, run log, locks, windows, ledger."""

from omnisync.state.store import LockHeld, StateError, StateStore, Window

__all__ = ["LockHeld", "StateError", "StateStore", "Window"]
