"""What a reconciliation run found and did (:class:`ReconcileResult`, its summary for the CLI, the
run log and the flow), and the error a run ends with when some wanted change was not made."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from omnisync.erp.outcomes import is_failure
from omnisync.validation.runner import ValidationPage


class WriteBackFailed(Exception):
    """Some wanted changes were not made (refused, or not attempted): see the outcomes."""

    def __init__(self, message: str, result: ReconcileResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class ReconcileResult:
    run_id: str
    planned: int
    conflicts: int
    unknown_in_erp: int
    unmatched_erp_rows: int
    unchanged: int
    erp_rows: int
    dry_run: bool
    outcomes: dict[str, int] = field(default_factory=dict)
    #: PATCH answers lost on the way; each change's outcome says what its re-read found
    lost_answers: int = 0
    #: the reconciliation datasets' folder: this run's tables are ``<table>/run=<id>/`` in it
    report_dir: str = ""
    plan: pa.Table | None = field(default=None, repr=False)
    #: what became of each ERP input row (planned, already_right, conflict, unknown_customer,
    #: invalid); the counts add up to erp_rows
    erp_row_outcomes: dict[str, int] = field(default_factory=dict)
    #: where the write-back's change listing starts (the sync's watermark less its lookback,
    #: read before the snapshot); None: every customer is read again on its own
    guard_since: dt.datetime | None = field(default=None, repr=False)
    #: customers the sync quarantined: the snapshot may lack their newest version
    read_alone: frozenset[int] = field(default=frozenset(), repr=False)
    #: ``pk`` and ``erp_code`` of the ERP rows already right: holds on them end (settled)
    agreed: pa.Table | None = field(default=None, repr=False)
    #: what the human report shows besides the plan: ERP rows, conflicts, Omnitron's codes,
    #: the codes unknown to the ERP
    human: tuple[pa.Table, pa.Table, dict[int, str | None], pa.Table] | None = field(
        default=None, repr=False
    )
    #: the report people open: _reports/reconciliation/run=<id>/summary.html
    summary_page: str = ""
    #: the same, relative to the lake root (for links)
    summary_relative: str = ""
    #: this run's validations (ERP input, plan) and their Data Docs pages
    validation_pages: list[ValidationPage] = field(default_factory=list, repr=False)
    #: a dry run's plan above --max-changes: the one line saying the real run would stop
    would_stop: str = ""

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if is_failure(outcome))

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "erp_rows": self.erp_rows,
            "erp_row_outcomes": self.erp_row_outcomes,
            "planned": self.planned,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "unknown_in_erp": self.unknown_in_erp,
            "unmatched_erp_rows": self.unmatched_erp_rows,
            "dry_run": self.dry_run,
            "outcomes": self.outcomes,
            "lost_answers": self.lost_answers,
            "failed": self.failed,
            "report": self.report_dir,
            "summary": self.summary_page,
            **({"would_stop": self.would_stop} if self.would_stop else {}),
        }
