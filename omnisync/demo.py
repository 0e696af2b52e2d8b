"""``omnisync demo``: the story so far on embedded defaults, against a local sandbox.

It starts the sandbox, reads every customer through the Omnitron client, types them, writes the
change log, the current snapshot and the quarantine to a local lake, and prints where the results
are with a DuckDB query to paste. The scheduled incremental Prefect flow (watermarks, state store,
validation) is the next step of the roadmap; this demo does one full read.

Only the CLI's ``demo`` command imports this module (it loads the sandbox).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.lake import ChangeLog, LakeStorage, Snapshot, window_key, write_quarantine
from transforms.customers import Lineage, to_table

PAGES_PER_CHUNK = 5


def run_demo(lake: Path, customers: int, console: Console) -> dict[str, int]:
    from sandbox import SandboxServer

    started = time.perf_counter()
    console.print(f"Starting the Omnitron sandbox with {customers:,} customers ...")
    with SandboxServer(customers=customers, seed=7) as server:
        console.print(f"Sandbox at [bold]{server.url}[/bold]")
        storage = LakeStorage(str(lake))
        storage.check_writable()
        changes, snapshot = ChangeLog(storage), Snapshot(storage)
        upper = dt.datetime.now(dt.UTC)
        window = window_key(None, upper)
        lineage = Lineage(f"demo-{uuid.uuid4().hex[:8]}", upper, server.url)
        counts = {"read": 0, "typed": 0, "quarantined": 0}
        client = OmnitronClient(
            server.url,
            username="sandbox",
            password=SecretStr("sandbox"),
            page_size=1000,
            max_rps=1000,
        )
        with (
            client,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            task = progress.add_task("Reading customers", total=None)
            # modified_date order keeps each chunk within few days of the change log
            pages = client.list_customers(CustomerQuery(sort="modified_date", modified_lt=upper))
            chunk: list[dict[str, object]] = []
            for number, page in enumerate(pages, start=1):
                progress.update(task, total=page.count, advance=len(page.results))
                chunk.extend(page.results)
                if number % PAGES_PER_CHUNK == 0 or not page.has_next:
                    result = to_table(chunk, lineage)
                    changes.write_window(result.table, f"{window}-{number}")
                    snapshot.merge(result.table)
                    write_quarantine(storage, result.rejected, f"{window}-{number}")
                    counts["read"] += len(chunk)
                    counts["typed"] += result.table.num_rows
                    counts["quarantined"] += result.rejected.num_rows
                    chunk = []
    counts["seconds"] = round(time.perf_counter() - started)
    return counts


def print_summary(lake: Path, counts: dict[str, int], console: Console) -> None:
    root = lake.resolve()
    # Printed for a person to paste, never executed here.
    query = (
        f"select channel, count(*) from read_parquet('{root}/customers/**/*.parquet') group by 1"  # noqa: S608
    )
    console.print(
        f"\n[bold green]Done[/bold green] in {counts['seconds']} s: {counts['read']:,} customers "
        f"read, {counts['typed']:,} written, {counts['quarantined']:,} quarantined.\n"
        f"  current customers   {root}/customers/\n"
        f"  change log          {root}/customer_changes/\n"
        f"  quarantine          {root}/quarantine/customers/\n"
        "Try it in DuckDB:"
    )
    print(f'  duckdb -c "{query}"')  # plain print: rich would wrap the line a user copies
