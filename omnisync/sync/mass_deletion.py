"""A run refuses to delete much of the lake at once (G9).

Every deletion is confirmed by Omnitron's own answers, but those answers can all be wrong the
same way: a token scoped to another channel, an empty replica behind the load balancer, a
maintenance stub that answers ``count: 0``. Each says, consistently and twice, that customers
are gone. Applied, the lake would lose them (and, with ``OMNISYNC_ERASE_DELETED``, their history
for good). So before any deletion is recorded, a run refuses, applying none, when

* Omnitron counts no customer at all while the lake holds some, or
* the deletions it confirmed number more than ``MINIMUM`` and more than
  ``OMNISYNC_MAX_DELETIONS_SHARE`` of the lake's customers.

The run then fails (exit 1) and says so in one line; what it read before is committed as usual.
A later run finds the same deletions and refuses again, until Omnitron answers as before or an
operator, having checked that Omnitron really lost those customers, sets
``OMNISYNC_MAX_DELETIONS_SHARE=1`` (no limit) for one run.
"""

from __future__ import annotations

from omnisync.settings import Settings

#: below this many deletions in one run, the share is not looked at (a small lake's few)
MINIMUM = 50


class MassDeletionRefused(Exception):
    """Omnitron's answers would delete much of the lake at once: nothing was deleted."""


def refuse_mass_deletion(
    settings: Settings, lake: int, deleting: int, server_total: int | None = None
) -> None:
    """Raise MassDeletionRefused when a run would delete ``deleting`` of the ``lake``'s
    customers, or Omnitron counts ``server_total`` 0 for a lake that is not empty (see the
    module's docstring); nothing when ``OMNISYNC_MAX_DELETIONS_SHARE`` is 1."""
    if settings.max_deletions_share >= 1 or lake <= 0:
        return
    override = "If Omnitron really lost them, run once with OMNISYNC_MAX_DELETIONS_SHARE=1."
    if server_total == 0:
        raise MassDeletionRefused(
            f"Omnitron counts 0 customers while the lake holds {lake}: no deletion was "
            "applied (a token scoped to another channel, an empty replica or a maintenance "
            f"page answers so). {override}"
        )
    if deleting > MINIMUM and deleting > settings.max_deletions_share * lake:
        raise MassDeletionRefused(
            f"Omnitron's answers would delete {deleting} of the lake's {lake} customers, more "
            f"than OMNISYNC_MAX_DELETIONS_SHARE ({settings.max_deletions_share:g}): no "
            f"deletion was applied. {override}"
        )
