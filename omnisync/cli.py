"""The ``omnisync`` command line (SPEC 3.2).

A user's mistake ends with a one-line message naming what to fix and exit code 2, never a traceback.
The sandbox is imported only inside the commands that run it: production paths never load it.
"""

from __future__ import annotations

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


@app.callback()
def _root() -> None:
    """Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron."""


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
