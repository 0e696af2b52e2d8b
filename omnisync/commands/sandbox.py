"""The two commands that run the local sandbox: ``omnisync sandbox`` serves it, ``omnisync demo``
tells the story on it. Production commands never import the sandbox; only these do."""

from __future__ import annotations

import errno
from pathlib import Path

import typer

from omnisync.commands.terminal import console, fail, results
from omnisync.commands.user_errors import user_errors


def sandbox(
    port: int = typer.Option(8000, help="port to listen on (0 picks a free one)"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    customers: int = typer.Option(20_000, min=0, help="seed customers to create"),
    seed: int = typer.Option(7, help="random seed: the same seed gives the same customers"),
    username: str = typer.Option("sandbox", help="user that may log in"),
    password: str = typer.Option("sandbox", help="that user's password"),
    writers: float = typer.Option(0.0, min=0, help="live writer operations per second"),
    delete_share: float = typer.Option(
        0.0, min=0, max=1, help="share of the writers' edits that delete a customer instead"
    ),
    shuffle_ties: bool = typer.Option(False, help="random order among equal sort keys"),
    shuffle_fields: bool = typer.Option(
        False, help="each customer of a list answer with its fields in a random order"
    ),
    late_commit: float = typer.Option(
        0.0, min=0, help="writer changes become visible this late (s)"
    ),
    date_only: bool = typer.Option(False, help="reject datetime values in date filters (400)"),
    utc_offset_hours: float = typer.Option(
        0.0, min=-12, max=14, help="the server's time zone: a bare date is midnight there"
    ),
    ignore_sort: bool = typer.Option(False, help="ignore ?sort= and answer newest first"),
    token_max_requests: int | None = typer.Option(
        None, min=1, help="tokens expire after N requests"
    ),
    max_limit: int = typer.Option(1000, min=1, help="server-side cap on ?limit="),
    fault_rate: float = typer.Option(0.0, min=0, max=1, help="share of API requests that fail"),
    lost_answers: float = typer.Option(
        0.0, min=0, max=1, help="share of PATCHes applied, then answered 502, reset or timed out"
    ),
    lost_answer_edits: float = typer.Option(
        0.0, min=0, max=1, help="share of those followed at once by a person's erp_code edit"
    ),
    bulk_update: int = typer.Option(0, min=0, help="at start, give N customers one modified_date"),
) -> None:
    """Run the local Omnitron-compatible sandbox server (for the demo, development and tests)."""
    from sandbox.modes import FaultModes, LostAnswerModes, SandboxModes
    from sandbox.server import serve_forever

    modes = SandboxModes(
        writers_per_second=writers,
        writer_delete_share=delete_share,
        shuffle_ties=shuffle_ties,
        shuffle_fields=shuffle_fields,
        late_commit_seconds=late_commit,
        date_only_filters=date_only,
        utc_offset_hours=utc_offset_hours,
        ignore_sort=ignore_sort,
        token_max_requests=token_max_requests,
        max_limit=max_limit,
        faults=FaultModes(rate=fault_rate),
        lost_answers=LostAnswerModes(rate=lost_answers, edit_share=lost_answer_edits),
    )

    def ready(url: str) -> None:
        console.print(
            f"Omnitron sandbox with {customers:,} customers at [bold]{url}[/bold] "
            f"(log in as {username!r}; admin API under {url}/_sandbox/, docs at "
            f"{url}/_sandbox/docs). Ctrl-C stops it."
        )
        print(url, flush=True)  # on stdout alone, for scripts

    try:
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
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        raise fail(
            f"the sandbox cannot listen on {host}:{port} ({exc.strerror or exc}): give another "
            "--port (0 picks a free one) or stop what listens there",
            2,
        ) from None


def demo(
    output: Path = typer.Option(
        Path("demo-output"), help="folder for the demo's lake and state (emptied first)"
    ),
    customers: int = typer.Option(20_000, min=1, help="customers in the sandbox"),
) -> None:
    """Run the story on a local sandbox: sync, incremental sync, ERP dry run and write-back."""
    with user_errors(
        stopped=f"the demo did not finish; `omnisync demo` starts it over in {output}"
    ):
        from omnisync.demo import print_summary, run_demo

        report = run_demo(output, customers, console)
    print_summary(report, results())  # its results, on stdout with the hints it prints
