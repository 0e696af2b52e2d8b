"""What can go wrong with the lake, by what its reader should do: :class:`LakeError` (fix the
path or the access), :class:`LakeDamaged` (a file whose bytes cannot be decoded: repair or
restore it), and :func:`damage_in`, which tells a file's damage from a failure to read it now."""

from __future__ import annotations

import pyarrow as pa


class LakeError(Exception):
    """The lake cannot be written or read as configured (OMNISYNC_LAKE): fix the path or access."""


#: what a damaged staged file's error advises (``omnisync status`` finds it there too)
STAGED_DAMAGE = (
    "it holds a window of a plan not finished: the next `omnisync sync` reads that window from "
    "Omnitron again"
)


#: what a damaged staged file of no window of the open plan advises (``omnisync status`` too)
NO_WINDOW = (
    "it is of no window of the open plan: move it out of the lake, or run `omnisync sync "
    "--full-refresh`, which reads every customer again and leaves that plan"
)


class LakeDamaged(LakeError):
    """A file of the lake whose bytes Arrow cannot decode (a broken footer, a damaged page). In
    ``customers/``, ``omnisync verify --full --repair`` removes it and reads its customers from
    Omnitron again; a window's staged file, the next sync reads its window again
    (``sync/staging_upkeep.py``); elsewhere nothing can read its rows again, so it is named for a
    person."""

    def __init__(self, relative: str, shown: str, reason: str, advice: str | None = None) -> None:
        """``advice``: what to do, when not the default of the file's dataset."""
        if advice is None:
            advice = _advice(relative)
        super().__init__(f"the lake's file {shown} cannot be read ({reason}): {advice}")
        self.relative, self.shown, self.reason = relative, shown, reason


def _advice(relative: str) -> str:
    if relative.startswith("_staging/"):
        return STAGED_DAMAGE
    if relative.startswith("customers/"):
        return (
            "run `omnisync verify --full --repair` to remove it and read its customers from "
            "Omnitron again"
        )
    return (
        "restore it from a backup, or move it out of the lake (its rows are then gone from that "
        "dataset); `omnisync verify --full --repair` mends customers/ only"
    )


def damage_in(exc: BaseException) -> bool:
    """Whether ``exc`` says a file's bytes are damaged, not that reading it failed for now: Arrow's
    decoding errors (a broken footer is ``ArrowInvalid``; a damaged page an ``OSError`` of Arrow's
    with no errno). A system's error (permission, a full table of open files, a timeout, an
    object replaced while read) has an errno or another class and is not damage: a repair that
    removed the file would remove healthy customers."""
    if isinstance(exc, pa.ArrowMemoryError):
        return False
    if isinstance(exc, pa.ArrowException) and not isinstance(exc, OSError):
        return True
    if isinstance(exc, UnicodeDecodeError):  # a footer's name or metadata bytes (a review's fuzz)
        return True
    return type(exc) is OSError and exc.errno is None
