"""What a verification found: the verdict line, the run log's counts and the JSON report.

Kinds of difference, each judged after a second look at the customer (see ``run.py``):

============  ======================================================================
missing       Omnitron has the customer (modified before the watermark), the lake not
stale         the lake holds another version than Omnitron's (modified before the watermark)
deleted       the lake holds a customer Omnitron does not have
duplicated    a reader of the lake sees more than one row for the pk (G2 broken)
quarantined   Omnitron's version is in ``quarantine/customers/`` (it cannot be represented)
              and the lake says so: its row is marked with a pointer to that version, or it
              never had a row (``quarantined.py``); named, not a difference. A quarantined
              version without that proof (a row removed or rolled back) stays missing or stale
============  ======================================================================

A file of ``customers/`` that cannot be read is reported too (``unreadable``): every reader of
the lake loses its rows. *Behind* is not a difference: a customer modified or created at or
after the watermark is what the next incremental sync reads.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from omnisync.lake import LakeStorage
from omnisync.state.times import iso

KINDS = ("missing", "stale", "deleted", "duplicated", "quarantined")
#: the kinds that make the lake different from Omnitron (exit 1)
DIFFERENCES = KINDS[:4]
REPORTS = "_reports/verify"
#: pks named on the verdict line, per kind
SHOWN = 5


@dataclass
class Outcome:
    run_id: str
    watermark: dt.datetime
    full: bool
    lake_rows: int
    lake_files: int
    unreadable: dict[str, str]
    found: dict[str, list[int]]
    behind: int
    #: differences seen once that a second look did not confirm (changed meanwhile)
    vanished: int
    requests: int
    #: where the server was split: everything before it compared by counts
    cut: str | None
    ranges_listed: int = 0
    report: str | None = None
    datetimes: bool | None = None
    #: Omnitron's modified_date (µs) of each missing or stale customer: what a repair reads
    versions: dict[int, int] = field(default_factory=dict)
    #: the rolling audit's slice: ``from`` and ``to`` pks (None: open), customers compared
    audit: dict[str, int | None] | None = None

    @property
    def equal(self) -> bool:
        return not self.unreadable and not any(self.found.get(kind) for kind in DIFFERENCES)

    def counts(self) -> dict[str, Any]:
        """For the run log (``omnisync status``): numbers, and the verdict."""
        return {
            "verdict": "equal" if self.equal else "different",
            "checked": self.lake_rows,
            **{kind: len(self.found.get(kind, [])) for kind in KINDS},
            "unreadable_files": len(self.unreadable),
            "behind": self.behind,
            "requests": self.requests,
            "full": self.full,
            "report": self.report,
            # the next slice's first pk, as text: ``omnisync status`` shows numbers as counts
            **(
                {
                    "audit_compared": self.audit["compared"],
                    "audit_next": None if self.audit["to"] is None else str(self.audit["to"]),
                }
                if self.audit is not None
                else {}
            ),
        }

    def line(self) -> str:
        """The verdict in one line."""
        mark = iso(self.watermark)
        if self.equal:
            how = "every customer compared" if self.full else "by counts"
            if self.audit is not None:
                how += f", {self.audit['compared']:,} compared one by one (rolling audit)"
            return (
                f"equal: the lake's {self.lake_rows:,} customers match Omnitron as of the "
                f"watermark {mark} ({how}; {self.behind:,} changed since, left for the next "
                f"sync){self._quarantined()}; {self.requests:,} list requests"
            )
        parts = []
        for kind in KINDS:
            pks = sorted(self.found.get(kind, []))
            if pks or kind in DIFFERENCES[:3]:
                shown = ", ".join(str(pk) for pk in pks[:SHOWN])
                more = ", ..." if len(pks) > SHOWN else ""
                parts.append(f"{len(pks):,} {kind}" + (f" (pks {shown}{more})" if pks else ""))
        if self.unreadable:
            parts.append(
                f"{len(self.unreadable)} unreadable file(s) ({next(iter(self.unreadable))})"
            )
        return (
            f"different as of the watermark {mark}: {', '.join(parts)}; "
            f"{self.requests:,} list requests; report {self.report}"
        )

    def _quarantined(self) -> str:
        pks = sorted(self.found.get("quarantined", []))
        if not pks:
            return ""
        shown = ", ".join(str(pk) for pk in pks[:SHOWN]) + (", ..." if len(pks) > SHOWN else "")
        return (
            f", except {len(pks):,} quarantined (pks {shown}): their newest version is in "
            "quarantine/customers/"
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["versions"] = {str(pk): stamp for pk, stamp in sorted(self.versions.items())}
        body["watermark"] = iso(self.watermark)
        body["verdict"] = "equal" if self.equal else "different"
        body["found"] = {kind: sorted(self.found.get(kind, [])) for kind in KINDS}
        return body


def read_report(storage: LakeStorage, path: str) -> Outcome | None:
    """The findings of an earlier verification from its report, or None if it is gone or
    unreadable (the caller then verifies afresh)."""
    root = storage.path("")
    relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
    try:
        body = storage.read_json(relative)
        if body is None:
            return None
        return Outcome(
            run_id=str(body["run_id"]),
            watermark=dt.datetime.fromisoformat(str(body["watermark"]).replace("Z", "+00:00")),
            full=bool(body["full"]),
            lake_rows=int(body["lake_rows"]),
            lake_files=int(body["lake_files"]),
            unreadable={str(k): str(v) for k, v in body["unreadable"].items()},
            found={kind: [int(pk) for pk in body["found"].get(kind, [])] for kind in KINDS},
            behind=int(body["behind"]),
            vanished=int(body["vanished"]),
            requests=int(body["requests"]),
            cut=body.get("cut"),
            report=path,
            datetimes=body.get("datetimes"),
            versions={int(pk): int(stamp) for pk, stamp in body["versions"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def write_report(storage: LakeStorage, outcome: Outcome, at: dt.datetime) -> str:
    """Write the JSON report under ``_reports/verify/``; returns its path in the lake."""
    relative = f"{REPORTS}/{at:%Y%m%dT%H%M%SZ}-{outcome.run_id[:8]}.json"
    outcome.report = storage.path(relative)
    storage.write_bytes(relative, json.dumps(outcome.to_json(), indent=1).encode())
    return outcome.report
