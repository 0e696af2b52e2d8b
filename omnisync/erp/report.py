"""The reconciliation report people open: a CSV per outcome and one HTML page.

It lives under ``_reports/reconciliation/run=<id>/``, apart from the run's Parquet
(``reconciliation/<table>/run=<id>/``): a folder a reader opens as a dataset holds nothing but
Parquet.

Every file goes through ``LakeStorage``: written whole or not at all, and fenced like the data.

Finance reviews a reconciliation in Excel or a browser, often on a machine without internet: the
CSV files open in any spreadsheet, and ``summary.html`` is one self-contained page (inline style,
no script, nothing fetched) with the counts per outcome, every conflict with both sides (what the
ERP says, what Omnitron holds), what was refused and why, and what was changed.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from omnisync.erp.outcomes import APPLIED
from omnisync.lake import LakeStorage

FOLDER = "_reports/reconciliation"
#: rows shown in a table of the page; the CSV files hold them all
SHOWN = 500
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc;
padding: .25em .6em; text-align: left; vertical-align: top; } th { background: #f2f2f2; }
.refused { background: #fde8e8; border: 1px solid #e99; padding: .8em; }
.dry { background: #fff6d6; border: 1px solid #e5c96b; padding: .8em; }
.note { color: #666; font-size: .9em; }
"""


def _csv(storage: LakeStorage, path: str, table: pa.Table) -> None:
    """A table as CSV (lists written as ``a;b``), through the lake's storage."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_list(column.type):
            column = pa.array(
                [None if v is None else ";".join(map(str, v)) for v in column.to_pylist()],
                pa.string(),
            )
        columns[name] = column
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns), sink)
    storage.write_bytes(path, sink.getvalue().to_pybytes())


def _by_outcome(table: pa.Table, column: str) -> Iterable[tuple[str, pa.Table]]:
    for value in sorted(v for v in pc.unique(table.column(column)).to_pylist() if v):
        yield value, table.filter(pc.equal(table.column(column), value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r[c]))}</td>" for c in columns)
        + "</tr>"
        for r in rows[:SHOWN]
    )
    more = (
        f"<p class='note'>first {SHOWN:,} of {len(rows):,} rows; all are in the CSV</p>"
        if len(rows) > SHOWN
        else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def report_folder(run_id: str) -> str:
    """The lake path of a run's human report."""
    return f"{FOLDER}/run={run_id}"


def write_report(
    storage: LakeStorage,
    run_id: str,
    erp_rows: pa.Table,
    conflicts: pa.Table,
    codes_now: dict[int, str | None],
    unknown_in_erp: pa.Table,
    plan: pa.Table,
    outcomes: pa.Table | None = None,
    refused: str | None = None,
    dry_run: bool = False,
    would_stop: str = "",
) -> str:
    """Write the CSV files and ``summary.html`` under :func:`report_folder`; returns the page's
    lake path. ``codes_now``: Omnitron's erp_code (per the snapshot) of the customers in
    conflicts; ``unknown_in_erp``: the codes Omnitron holds that the ERP does not list. Written
    again after the write-back, with what was changed. ``would_stop``: a dry run's line saying
    the real run would stop on this plan (shown in the dry run's box)."""
    folder = report_folder(run_id)
    storage.delete_tree(folder)  # a re-written report keeps no CSV of an outcome now gone
    files: list[str] = []
    for outcome, rows in _by_outcome(erp_rows, "outcome"):
        _csv(storage, f"{folder}/erp_rows_{outcome}.csv", rows)
        files.append(f"erp_rows_{outcome}.csv")
    _csv(storage, f"{folder}/conflicts.csv", conflicts)
    _csv(storage, f"{folder}/unknown_in_erp.csv", unknown_in_erp)
    _csv(storage, f"{folder}/plan.csv", plan)
    files += ["conflicts.csv", "unknown_in_erp.csv", "plan.csv"]
    if outcomes is not None:
        for outcome, rows in _by_outcome(outcomes, "outcome"):
            _csv(storage, f"{folder}/write_back_{outcome}.csv", rows)
            files.append(f"write_back_{outcome}.csv")
    counts = {
        name: int(pc.sum(pc.equal(erp_rows.column("outcome"), name)).as_py() or 0)
        for name in ("planned", "already_right", "conflict", "unknown_customer", "invalid")
    }
    conflict_rows = [
        {
            **c,
            "pks": ", ".join(map(str, c["pks"] or [])),
            "omnitron_erp_code": "; ".join(
                f"{pk}: {codes_now.get(pk) or '(none)'}" for pk in c["pks"] or []
            ),
        }
        for c in conflicts.to_pylist()
    ]
    what = "ERP reconciliation, dry run" if dry_run else "ERP reconciliation"
    sections = [
        f"<h1>{what} <code>{html.escape(run_id)}</code></h1>",
        f"<p class='note'>written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>",
    ]
    if dry_run:
        sections.append(
            "<div class='dry'><strong>Dry run: nothing was patched.</strong> The planned "
            "changes below are what a write-back would send."
            + (
                f"<br><strong>{html.escape(would_stop[:1].upper() + would_stop[1:])}.</strong>"
                if would_stop
                else ""
            )
            + "</div>"
        )
    if refused:
        sections.append(
            "<div class='refused'><strong>Refused: nothing was patched.</strong><br>"
            f"{html.escape(refused)}</div>"
        )
    sections += [
        f"<h2>ERP rows: {erp_rows.num_rows:,}, each with one outcome</h2>",
        _table([{"outcome": k, "rows": f"{n:,}"} for k, n in counts.items()], ["outcome", "rows"]),
        f"<h2>Conflicts: {conflicts.num_rows:,} (never patched)</h2>",
        "<p class='note'>the ERP's side (code, key) and Omnitron's (the customers it matched, "
        "with the erp_code each holds)</p>",
        _table(conflict_rows, ["kind", "erp_code", "key", "pks", "omnitron_erp_code", "detail"]),
        f"<h2>Codes unknown to the ERP: {unknown_in_erp.num_rows:,}</h2>",
        "<p class='note'>erp_codes Omnitron holds that the ERP does not list (left as they are "
        "unless the run clears them); all are in unknown_in_erp.csv</p>",
        _table(unknown_in_erp.to_pylist(), unknown_in_erp.column_names),
        f"<h2>Planned changes: {plan.num_rows:,}</h2>",
        _table(
            plan.to_pylist(),
            ["pk", "action", "previous_erp_code", "erp_code", "match_key", "match_value"],
        ),
    ]
    if outcomes is not None:
        done = [r for r in outcomes.to_pylist() if r["outcome"] in APPLIED]
        other = [r for r in outcomes.to_pylist() if r["outcome"] not in APPLIED]
        tally: dict[str, int] = {}
        for row in outcomes.to_pylist():
            tally[row["outcome"]] = tally.get(row["outcome"], 0) + 1
        sections += [
            "<h2>Write-back</h2>",
            _table(
                [{"outcome": k, "changes": f"{n:,}"} for k, n in sorted(tally.items())],
                ["outcome", "changes"],
            ),
            f"<h2>Changed in Omnitron: {len(done):,}</h2>",
            _table(done, ["pk", "previous_erp_code", "erp_code", "detail"]),
            f"<h2>Not changed, and why: {len(other):,}</h2>",
            _table(other, ["pk", "erp_code", "outcome", "status_code", "lost_answers", "detail"]),
        ]
    sections.append(
        "<h2>Files</h2><ul>"
        + "".join(f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files)
        + "</ul>"
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{what} {html.escape(run_id)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )
    path = f"{folder}/summary.html"
    storage.write_bytes(path, page.encode())
    return path
