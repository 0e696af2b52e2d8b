"""What became of each planned change: the outcome names, the attempt record, and its table.

An outcome is one word that a person can filter the ledger by. A change is made (``APPLIED``) by
a PATCH that was answered, or whose lost answer a re-read showed applied, or that a re-read
showed unapplied and was sent again. A run fails when any change it wanted was not made
(:func:`is_failure`); a person's edit that stands, or a customer Omnitron no longer has, is not
such a failure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from transforms.erp.tables import OUTCOMES_SCHEMA

OK = "ok"
OK_ANSWER_LOST = "ok_answer_lost"  # the answer was lost; a re-read showed it applied
OK_RESENT = "ok_resent"  # the answer was lost; a re-read showed it not applied; sent again
APPLIED = frozenset({OK, OK_ANSWER_LOST, OK_RESENT})
CONFLICT = "conflict"  # a lost answer, then the record changed otherwise: a person's edit stands
UNCONFIRMED = "unconfirmed"  # a lost answer, then no readable re-read: unknown, nothing more sent
DELETED = "deleted"  # Omnitron no longer has the customer (404)
HELD = "skipped_after_lost_answer"  # a later run: what the lost answer left is not settled yet
CHANGED = "skipped_changed_since_plan"  # the customer changed in Omnitron after the plan
EDITED = "skipped_person_edit"  # a later run: a code set in Omnitron over an earlier plan stands
DONE_BEFORE = "skipped_already_patched"  # the ledger holds this change applied by this product
SETTLED = "settled"  # not an attempt: the ERP and Omnitron agree on the code; a hold ends
SET = "set"  # not an outcome: a hold's kind, this product set the code (holds.read_ledger)
FAILED = frozenset({"400", "406", "retries_exhausted", "not_attempted", UNCONFIRMED})


def is_failure(outcome: str) -> bool:
    """Whether an outcome means the change was wanted but not made (the run then fails)."""
    return outcome in FAILED or outcome.startswith("stopped_")


@dataclass
class Attempt:
    pk: int
    erp_code: str
    previous_erp_code: str | None
    based_on_modified: dt.datetime
    outcome: str
    status_code: int | None = None
    detail: str | None = None
    lost_answers: int = 0  # PATCH answers lost on the way (each followed by a re-read)
    #: what the last re-read after a lost answer saw (or, when none could be read, the record
    #: the PATCH was sent against): later runs compare Omnitron's record with it
    seen_modified: dt.datetime | None = None
    seen_erp_code: str | None = None
    patch_sent: bool = False  # a PATCH left this process (not recorded: it decides outcomes)

    def ledger_row(self) -> dict[str, Any]:
        """The attempt as the ledger keeps it (``StateStore.ledger.record``, with the run)."""
        return {
            "pk": self.pk,
            "erp_code": self.erp_code,
            "previous_erp_code": self.previous_erp_code,
            "based_on_modified_iso": iso(self.based_on_modified),
            "outcome": self.outcome,
            "status_code": self.status_code,
            "detail": (self.detail or "")[:2000],
            "lost_answers": self.lost_answers,
            "seen_modified_iso": iso(self.seen_modified) if self.seen_modified else None,
            "seen_erp_code": self.seen_erp_code,
        }


def iso(moment: dt.datetime) -> str:
    """UTC ISO 8601 with ``Z``; a moment without a time zone is refused, never guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_moment(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO 8601 text; None when unreadable or without a time zone."""
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def outcomes_table(attempts: list[Attempt], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "_run_id": run_id,
                "pk": a.pk,
                "erp_code": a.erp_code,
                "previous_erp_code": a.previous_erp_code,
                "based_on_modified": a.based_on_modified,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "detail": a.detail,
                "lost_answers": a.lost_answers,
                "seen_modified": a.seen_modified,
                "seen_erp_code": a.seen_erp_code,
            }
            for a in attempts
        ],
        schema=OUTCOMES_SCHEMA,
    )
