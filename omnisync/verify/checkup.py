"""A verification as the people who schedule it see it: verify, repair what differs when asked
and verify again, then say what was found. ``omnisync verify`` prints it; the Prefect flow
``verify-customers`` publishes it as an artifact table. The steps are written once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnisync.settings import Settings
from omnisync.verify.report import KINDS, Outcome
from omnisync.verify.run import last_findings, run_verify


@dataclass
class Checkup:
    #: the verdict that stands: after a repair, the verification that followed it
    outcome: Outcome
    #: what the first verification found, when a repair followed it
    found: Outcome | None = None
    #: what the repair did (``repair.repair``'s counts)
    repaired: dict[str, Any] | None = None

    def rows(self) -> list[tuple[str, Any]]:
        """The counts people compare from run to run, in a fixed order."""
        first = self.found or self.outcome
        rows: list[tuple[str, Any]] = [
            ("verdict", "equal" if self.outcome.equal else "different"),
            ("watermark", self.outcome.watermark.isoformat()),
            ("checked", first.lake_rows),
            *((kind, len(first.found.get(kind, []))) for kind in KINDS),
            ("unreadable files", len(first.unreadable)),
            ("behind (left for the next sync)", first.behind),
            ("list requests", first.requests + (self.outcome.requests if self.found else 0)),
        ]
        if self.repaired is not None:
            rows += [
                ("repaired: customers re-read and written", self.repaired.get("written", 0)),
                ("repaired: rows put back from the change log", self.repaired.get("restored", 0)),
                ("repaired: deleted customers removed and logged", self.repaired["deleted"]),
                ("repaired: unreadable files removed", self.repaired["files_removed"]),
            ]
        return rows

    def markdown(self) -> str:
        table = "\n".join(f"| {name} | {value} |" for name, value in self.rows())
        return (
            f"# verify-customers: {self.outcome.line()}\n\n| what | value |\n|---|---|\n{table}\n"
        )


def checkup(
    settings: Settings,
    *,
    full: bool = False,
    audit: bool = False,
    repair: bool = False,
    say: Callable[[str, str], None] = lambda line, next_step: None,
) -> Checkup:
    """Verify; with ``repair``, mend what differs as a normal run and verify again. ``say``
    gets a line, and what comes next, before the repair and after it. Raises what
    ``run_verify`` and the repair raise (the caller turns them into one line)."""
    # --repair right after a verify at the same watermark mends what that one found.
    earlier = last_findings(settings) if repair else None
    outcome = earlier or run_verify(settings, full=full, audit=audit)
    if not repair or outcome.equal:
        return Checkup(outcome)
    from omnisync.verify.repair import repair as mend

    said = f"(found by the verification at {outcome.report}) " if earlier else ""
    say(f"{said}{outcome.line()}", "repairing")
    done = mend(settings, outcome)
    say(
        f"repaired: {done.get('written', 0):,} customers re-read and written in "
        f"{done['windows']} window(s), {done.get('restored', 0):,} row(s) put back from the "
        "change log (their newer version is quarantined), "
        f"{done['deleted']:,} deleted customer(s) removed (logged as "
        f"deletions) and "
        f"{done['files_removed']} unreadable file(s) removed; verifying again",
        "verifying again",
    )
    return Checkup(run_verify(settings, full=full), found=outcome, repaired=done)
