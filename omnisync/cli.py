"""The ``omnisync`` command line (SPEC 3.2).

A user's mistake ends with a one-line message naming what to fix and exit code 2, never a traceback.
The sandbox is imported only inside the commands that run it: production paths never load it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="omnisync",
    help="Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
# Before Prefect is imported: no telemetry from an offline scheduler host.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.callback()
def _root() -> None:
    """Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron."""


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line and an exit code; never a traceback."""
    from omnisync.client import AuthenticationFailed, ConfigurationError, OmnitronError
    from omnisync.lake import LakeError
    from omnisync.settings import SettingsError
    from omnisync.state import LockHeld, StateError
    from omnisync.sync import BatchRejected
    from transforms.customers import SchemaDrift

    try:
        yield
    except (SettingsError, ConfigurationError, AuthenticationFailed, LakeError) as exc:
        raise _fail(str(exc), 2) from None
    except LockHeld as exc:
        raise _fail(str(exc), 3) from None
    except StateError as exc:
        raise _fail(str(exc), 2) from None
    except OmnitronError as exc:
        raise _fail(f"Omnitron: {exc}", 1) from None
    except (BatchRejected, SchemaDrift) as exc:
        raise _fail(f"the batch was rejected, watermark unchanged: {exc}", 1) from None


@app.command()
def sync(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="re-read the whole history"),
) -> None:
    """Run the customer sync once: incremental from the watermark, or a full refresh."""
    with _user_errors():
        from omnisync.settings import load_settings
        from omnisync.sync import preflight

        settings = load_settings()
        with console.status("checking the lake, the state database and Omnitron ..."):
            preflight(settings)
        from flows.sync_customers import sync_customers

        with console.status("syncing customers ..."):
            result = sync_customers(full_refresh=full_refresh, settings=settings)
    console.print(
        f"[green]ok[/green] {result['read']:,} read, {result['written']:,} written, "
        f"{result['quarantined']:,} quarantined, {result['flagged']:,} flagged in "
        f"{result['windows']} window(s); watermark {result['watermark_before']} -> "
        f"{result['watermark_after']}",
        highlight=False,
        soft_wrap=True,
    )
    if result.get("data_docs"):
        console.print(f"Data Docs: {result['data_docs']}", highlight=False, soft_wrap=True)


@app.command()
def status() -> None:
    """Show watermarks and the last runs with their outcome."""
    from rich.table import Table

    with _user_errors():
        from omnisync.settings import load_settings
        from omnisync.state import StateStore

        settings = load_settings()
        store = StateStore(settings.state_url.get_secret_value())
        store.migrate()
        marks = store.all_watermarks()
        runs = store.recent_runs(limit=10)
    out = Console()
    table = Table(title="watermarks")
    for column in ("stream", "watermark", "set by run"):
        table.add_column(column)
    for mark in marks:
        table.add_row(mark["stream"], mark["value_iso"], mark["run_id"])
    out.print(table if marks else "no watermark yet: the first run reads the whole history")
    history = Table(title="last runs")
    for column in ("run", "stream", "kind", "status", "watermark after", "error"):
        history.add_column(column)
    for run in runs:
        history.add_row(
            run["run_id"][:12],
            run["stream"],
            run["kind"],
            run["status"],
            run["watermark_after_iso"] or "",
            (run["error"] or "")[:80],
        )
    out.print(history if runs else "no runs yet")


@app.command()
def sandbox(
    port: int = typer.Option(8000, help="port to listen on (0 picks a free one)"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    customers: int = typer.Option(20_000, min=0, help="seed customers to create"),
    seed: int = typer.Option(7, help="random seed: the same seed gives the same customers"),
    username: str = typer.Option("sandbox", help="user that may log in"),
    password: str = typer.Option("sandbox", help="that user's password"),
    writers: float = typer.Option(0.0, min=0, help="live writer operations per second"),
    shuffle_ties: bool = typer.Option(False, help="random order among equal sort keys"),
    late_commit: float = typer.Option(
        0.0, min=0, help="writer changes become visible this late (s)"
    ),
    date_only: bool = typer.Option(False, help="reject datetime values in date filters (400)"),
    token_max_requests: int | None = typer.Option(
        None, min=1, help="tokens expire after N requests"
    ),
    max_limit: int = typer.Option(1000, min=1, help="server-side cap on ?limit="),
    fault_rate: float = typer.Option(0.0, min=0, max=1, help="share of API requests that fail"),
    bulk_update: int = typer.Option(0, min=0, help="at start, give N customers one modified_date"),
) -> None:
    """Run the local Omnitron-compatible sandbox server (for the demo, development and tests)."""
    from sandbox.modes import FaultModes, SandboxModes
    from sandbox.server import serve_forever

    modes = SandboxModes(
        writers_per_second=writers,
        shuffle_ties=shuffle_ties,
        late_commit_seconds=late_commit,
        date_only_filters=date_only,
        token_max_requests=token_max_requests,
        max_limit=max_limit,
        faults=FaultModes(rate=fault_rate),
    )

    def ready(url: str) -> None:
        console.print(
            f"Omnitron sandbox with {customers:,} customers at [bold]{url}[/bold] "
            f"(log in as {username!r}; admin API under {url}/_sandbox/, docs at "
            f"{url}/_sandbox/docs). Ctrl-C stops it."
        )
        print(url, flush=True)  # on stdout alone, for scripts

    serve_forever(
        customers=customers,
        seed=seed,
        modes=modes,
        port=port,
        host=host,
        on_ready=ready,
        users={username: password},
        bulk_update=bulk_update,
    )


@app.command()
def demo(
    lake: Path = typer.Option(Path("lake"), help="where to write the demo lake"),
    customers: int = typer.Option(20_000, min=1, help="customers in the sandbox"),
) -> None:
    """Run the story end to end on a local sandbox and print where the results are."""
    from omnisync.demo import print_summary, run_demo
    from omnisync.lake import LakeError

    try:
        counts = run_demo(lake, customers, console)
    except LakeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print_summary(lake, counts, console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
