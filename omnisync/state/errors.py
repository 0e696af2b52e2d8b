"""The state store's errors, by what the caller should do next::

StateError      the state database cannot be used as configured: fix OMNISYNC_STATE_URL
├── LockHeld    another run holds the stream: this run did nothing (not a failure)
├── LockLost    this run's lock was taken over: it must change nothing more
└── LockUnproven  a worker could not ask whether its run holds the lock: that change was
                  not made, and its window may be run again
"""

from __future__ import annotations


class StateError(Exception):
    """The state database cannot be used as configured (OMNISYNC_STATE_URL): fix the URL/server."""


class LockHeld(StateError):
    """Another run of the stream holds the lock: this run did nothing (not a failure)."""


class LockLost(StateError):
    """This run's lock was taken over (it stalled past its lease): it must change nothing more."""


class LockUnproven(StateError):
    """A window on a Dask worker could not ask the state database whether its run still holds
    the lock (the database did not answer): the change it guarded was not made (earlier files of
    the window may be; a run of it again replaces them), and running the window again may pass."""
