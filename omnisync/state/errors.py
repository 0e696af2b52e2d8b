"""The state store's errors, by what the caller should do next::

StateError      the state database cannot be used as configured: fix OMNISYNC_STATE_URL
├── LockHeld    another run holds the stream: this run did nothing (not a failure)
└── LockLost    this run's lock was taken over: it must change nothing more
"""

from __future__ import annotations


class StateError(Exception):
    """The state database cannot be used as configured (OMNISYNC_STATE_URL): fix the URL/server."""


class LockHeld(StateError):
    """Another run of the stream holds the lock: this run did nothing (not a failure)."""


class LockLost(StateError):
    """This run's lock was taken over (it stalled past its lease): it must change nothing more."""
