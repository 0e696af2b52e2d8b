"""``omnisync demo``: the whole story on embedded defaults, against a local sandbox.

1. Start the sandbox with 20,000 customers.  2. Run the first sync (a full read).
3. Have the sandbox modify some customers, then run an incremental sync.
4. Reconcile ERP codes against a sample ERP database: a dry run first, then for real.
5. Sync again, so the lake shows the codes just written back; stop the sandbox.
6. Print the counts, where the datasets and Data Docs are, and a DuckDB query to paste.

The steps are the ones ``omnisync sync`` and ``omnisync reconcile`` run from a terminal without a
Prefect API (``omnisync.orchestration.Local``): no Prefect server is started.

Everything goes under one output folder (default ``./demo-output``), emptied at the start, so the
demo never mixes with a real lake or state database. Only the CLI's ``demo`` command imports this
module (it loads the sandbox).
"""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from omnisync.commands.terminal import sync_counts
from omnisync.settings import Settings, load_settings

STEPS = 6


def demo_settings(output: Path, url: str) -> Settings:
    return load_settings(
        omnitron_url=url,
        omnitron_username="sandbox",
        omnitron_password="sandbox",  # noqa: S106 - the local sandbox's fixed demo login
        lake=str(output / "lake"),
        state_url=f"sqlite:///{output / 'state.db'}",
        lag_seconds=0,
        max_rps=2000,
        concurrency=8,
        erp_url=None,
    )


def run_demo(output: Path, customers: int, console: Console, modify: int = 500) -> dict[str, Any]:
    from omnisync.erp import ErpSource
    from omnisync.erp.run import run_reconcile
    from omnisync.orchestration import Local
    from omnisync.sync.run import run_sync
    from sandbox import SandboxServer
    from sandbox.erp_sample import QUERY, write_sample_erp

    started = time.perf_counter()
    # The environment's settings the demo keeps (a PII policy, ...) are checked before anything
    # starts or is emptied: the sandbox's address is not known yet, any URL will do.
    demo_settings(output, "http://127.0.0.1")
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    report: dict[str, Any] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        step = progress.add_task("1/6 starting the Omnitron sandbox", total=STEPS)
        with SandboxServer(customers=customers, seed=7) as server:
            settings = demo_settings(output, server.url)
            progress.update(step, advance=1, description="2/6 first sync (full read)")
            report["first_sync"] = run_sync(settings, False, Local())
            progress.update(
                step, advance=1, description=f"3/6 modifying {modify} customers, incremental sync"
            )
            server.admin.post("modify", json={"count": modify})
            time.sleep(1.1)  # the server clock has 1 s resolution: let the changes age past it
            report["incremental_sync"] = run_sync(settings, False, Local())
            progress.update(
                step, advance=1, description="4/6 ERP reconciliation: dry run, then for real"
            )
            erp_url = write_sample_erp(
                output / "erp.db", server.admin.get("truth").json()["results"]
            )
            settings = load_settings(**{**_overrides(settings), "erp_url": erp_url})
            source = ErpSource(url=erp_url, query=QUERY)
            report["dry_run"] = run_reconcile(settings, source, "pk", Local(), dry_run=True)
            report["reconcile"] = run_reconcile(settings, source, "pk", Local())
            progress.update(
                step, advance=1, description="5/6 syncing the written-back codes, stopping"
            )
            time.sleep(1.1)  # as above: the write-back's changes age past the server clock
            report["after_write_back"] = run_sync(settings, False, Local())
        progress.update(step, advance=2, description="6/6 done")
    report["seconds"] = round(time.perf_counter() - started)
    report["output"] = output.resolve()
    return report


def _overrides(settings: Settings) -> dict[str, Any]:
    values = settings.model_dump()
    for secret in ("omnitron_password", "omnitron_token", "state_url", "pii_salt", "erp_url"):
        value = getattr(settings, secret)
        values[secret] = value.get_secret_value() if value is not None else None
    return values


def print_summary(report: dict[str, Any], console: Console) -> None:
    root = report["output"]
    lake = root / "lake"
    first, second = report["first_sync"], report["incremental_sync"]
    dry, real = report["dry_run"], report["reconcile"]
    outcomes = (
        ", ".join(f"{n:,} {k}" for k, n in sorted(real["outcomes"].items())) or "nothing sent"
    )
    console.print(
        f"\n[bold green]Demo done[/bold green] in {report['seconds']} s\n"
        f"  first sync        {sync_counts(first)}\n"
        f"  incremental sync  {sync_counts(second)} (read: the changes since the watermark, "
        "and what the lookback reads again)\n"
        f"  ERP dry run       {dry['planned']:,} changes planned, {dry['conflicts']} conflicts, "
        f"{dry['unknown_in_erp']:,} codes unknown to the ERP\n"
        f"  ERP write-back    {outcomes}\n"
        f"  sync after it     {sync_counts(report['after_write_back'])} (read: the codes "
        "just written back, and what the lookback reads again)\n\n"
        f"  current customers   {lake}/customers/\n"
        f"  change log          {lake}/customer_changes/\n"
        f"  quarantine          {lake}/quarantine/customers/\n"
        f"  reconciliation      {lake}/reconciliation/<table>/ (plan, conflicts, unknown_in_erp, "
        f"erp_rows, outcomes; for people: {real['summary']})\n"
        f"  Data Docs           {lake}/_reports/data_docs/index.html\n"
        f"  state database      {root}/state.db\n"
        "Try it in DuckDB (from this folder):",
        highlight=False,
        soft_wrap=True,
    )
    # Printed for a person to paste; plain print so it is not wrapped. The duckdb Python package
    # is installed with omnisync (its command-line tool is not).
    print(f"  {duckdb_hint(lake)}")
    console.print("The demo's runs, as `omnisync status` shows them:", highlight=False)
    state_url = shlex.quote(f"sqlite:///{root}/state.db")
    print(f"  OMNISYNC_STATE_URL={state_url} .venv/bin/omnisync status")


def duckdb_hint(lake: Path) -> str:
    """A command that runs as printed, from the repository, on the environment ``make`` built."""
    query = (
        f"select channel, count(*) as customers from read_parquet('{lake}/customers/**/*.parquet')"  # noqa: S608
        " group by 1 order by 1"
    )
    return f'.venv/bin/python -c "import duckdb, sys; duckdb.sql(sys.argv[1]).show()" "{query}"'
