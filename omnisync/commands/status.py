"""``omnisync status``: the watermarks, the last verification and the last runs, one line each."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from omnisync.commands.user_errors import user_errors


def status() -> None:
    """Show watermarks and the last runs (syncs and reconciliations) with their outcome."""
    with user_errors():
        from omnisync.settings import load_settings
        from omnisync.state import StateStore
        from omnisync.state.store import SCHEMA_REVISION, known_revisions, not_made_yet

        settings = load_settings()
        url = settings.state_url.get_secret_value()
        missing = not_made_yet(url)
        if missing is not None:  # a status is read-only: the first sync makes it
            Console(highlight=False, soft_wrap=True).print(
                f"no state database at {str(missing)!r} yet: no run has used this "
                "OMNISYNC_STATE_URL (the first sync makes it)"
            )
            return
        store = StateStore(url)
        found = store.recorded_revisions()  # an unreachable or unreadable database: exit 2
        if found != {SCHEMA_REVISION}:
            # Read only: a run makes or upgrades the schema, not a status (an upgrade here would
            # change a production database under the workers of the older version).
            at = ", ".join(sorted(found))
            Console(highlight=False, soft_wrap=True).print(
                f"no omnisync state in {store.safe_url} yet (the first sync makes it)"
                if not found
                else f"the state database {store.safe_url} is at revision {at}, written by a "
                f"newer omnisync: this one reads {SCHEMA_REVISION}"
                if not found <= known_revisions()
                else f"the state database {store.safe_url} is at revision {at}; this omnisync "
                f"reads {SCHEMA_REVISION}: the next sync upgrades it"
            )
            return
        marks = store.watermarks.all()
        runs = store.runs.recent(limit=10)
        checks = [r for r in store.runs.recent("customers", limit=50) if r["kind"] == "verify"]
        plan = store.plans.open("customers")
    out = Console(highlight=False, soft_wrap=True)
    out.print("[bold]watermarks[/bold]")
    for mark in marks:
        out.print(
            f"  {mark['stream']:<12} {mark['value_iso']}  "
            f"(set by run {shown_run_id(str(mark['run_id']))})"
        )
    if not marks:
        out.print("  none yet: the first run reads the whole history")
    if plan is not None:
        out.print("[bold]unfinished plan[/bold] (the sync's)")
        out.print("  " + _plan_line(plan[1], store.runs.recent("customers", limit=50)))
    out.print("[bold]last verification[/bold] (omnisync verify)")
    out.print("  " + (_run_lines(checks[0])[0] if checks else "none yet"))
    out.print("[bold]last runs[/bold] (newest first, times in UTC)")
    for run in runs:
        for number, line in enumerate(_run_lines(run)):
            out.print(("  " if number == 0 else "      ") + line)
    if not runs:
        out.print("  none yet")


#: characters of a run's error shown: all the run log keeps (its advice comes last: a new
#: user's was cut at 300 in the middle of the command it gave)
ERROR_SHOWN = 2000
_OUTCOME_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "refused": "yellow",
    "running": "cyan",
    "interrupted": "red",
    "stopped": "yellow",
    "different": "red",
}


def shown_run_id(run_id: str) -> str:
    """A run's ID as ``status`` shows it: a sync's random hex cut to 8 characters, which tell runs
    apart; a reconciliation's whole ID, as in its ``reconciliation/<table>/run=<id>`` folders."""
    is_hex = len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
    return run_id[:8] if is_hex else run_id


def _plan_line(windows: list[Any], runs: list[dict[str, Any]]) -> str:
    """Where a sync's plan stands: its windows read and what they hold, and who finishes it (a
    stopped run's windows are kept; without this line its row says only that it stopped)."""
    import datetime as dt

    from omnisync.lake.errors import NO_WINDOW, STAGED_DAMAGE
    from omnisync.state.quarantine_history import SYNC_KINDS
    from omnisync.state.record import outcome_now

    read = [w for w in windows if w.status != "pending"]
    rows = sum(w.rows or 0 for w in read)
    upper = dt.datetime.fromtimestamp(windows[-1].hi_us / 1e6, dt.UTC)
    working = any(
        r["stream"] == "customers" and r["kind"] != "verify" and outcome_now(r) == "running"
        for r in runs
    )
    # the newest sync's (a repair or a reconcile after it does not read the plan's staging)
    last = next((r for r in runs if r["stream"] == "customers" and r["kind"] in SYNC_KINDS), None)
    who = "a run is working on it" if working else "the next sync finishes it"
    said = "" if working or last is None else str(last["error"] or "")
    if NO_WINDOW in said:  # a review: "finishes it" above an error saying it would not
        who = "the last sync could not read a staged file of no window of it (its error below)"
    elif STAGED_DAMAGE in said:
        # said beside the error below, which names the file: the sync reads its window again
        who += ", reading again the window whose staged file could not be read"
    return (
        f"{len(read)} of {len(windows)} windows read ({rows:,} customers: their new versions in "
        "customer_changes/, and customers/ gets them when the plan is done), up to "
        f"{upper:%Y-%m-%d %H:%M:%S}: {who}"
    )


def _run_lines(run: dict[str, object]) -> list[str]:
    """One run as a line (when, what, outcome, how long, counts), then its details."""
    import datetime as dt

    counts = json.loads(str(run["counts"] or "{}"))
    started = dt.datetime.fromtimestamp(int(str(run["started_us"])) / 1e6, dt.UTC)
    took = (
        f"{(int(str(run['ended_us'])) - int(str(run['started_us']))) / 1e6:.1f} s"
        if run["ended_us"]
        else "-"
    )
    from omnisync.commands.terminal import sync_counts
    from omnisync.state.quarantine_history import SYNC_KINDS
    from omnisync.state.record import outcome_now

    outcome = outcome_now(run)
    verdict = counts.get("verdict")
    if verdict == "different" and outcome == "succeeded":
        # The verification ran to its end and found the lake different: to its reader that is
        # the finding, not a success (it exited 1).
        outcome = "different"
    style = _OUTCOME_STYLE.get(outcome, "white")
    kind = str(run["kind"])
    if kind in SYNC_KINDS:
        shown = [sync_counts(counts)] if counts.get("read") is not None else []
        if kind == "incremental" and not run.get("watermark_before_iso"):
            kind = "first"  # no watermark when it started: it reads the whole history
    else:
        shown = [
            f"{n:,} {name.replace('_', ' ')}"  # in words: "unknown in erp", not a column name
            for name, n in counts.items()
            if isinstance(n, int) and not isinstance(n, bool) and name != "windows"
        ]
    if verdict == "equal":  # a verification's finding; "different" is its outcome above
        shown.insert(0, "equal")
    lines = [
        f"{started:%Y-%m-%d %H:%M:%S}  {run['stream']!s:<13} {kind:<11} "
        f"[{style}]{outcome:<11}[/{style}] {took:>8}  run {shown_run_id(str(run['run_id']))}"
        + (f"  {', '.join(shown)}" if shown else "")
    ]
    outcomes = counts.get("outcomes") or {}
    if outcomes:
        lines.append("write-back: " + ", ".join(f"{n:,} {k}" for k, n in sorted(outcomes.items())))
    unknown = counts.get("unknown_fields") or {}
    if unknown:
        lines.append(
            "fields the schema does not know: "
            + ", ".join(f"{name} ({n:,})" for name, n in unknown.items())
        )
    # the runs an error names (a takeover's), as this list names them
    error = re.sub(
        r"(?<=taken over by run )[0-9a-f]{32}\b",
        lambda m: shown_run_id(m[0]),
        str(run["error"] or ""),
    )
    if error and outcome == "stopped":
        lines.append(f"[yellow]{escape(error[:ERROR_SHOWN])}; nothing was patched[/yellow]")
    elif error:
        lines.append(f"[red]{escape(error[:ERROR_SHOWN])}[/red]")
    elif outcome == "interrupted":
        lines.append("[red]its process is gone: it was killed before it could record an end[/red]")
    return lines
