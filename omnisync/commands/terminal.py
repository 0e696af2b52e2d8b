"""What the commands print and log to the terminal: a command's results (its summary or verdict)
on stdout, for scripts and pipes; on stderr the console of everything else (progress, notes, the
one-line error and skip messages with their exit codes) and the run's own log lines."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def results() -> Console:
    """The console of a command's results, on stdout. Made before any status line starts: while
    one spins, ``sys.stdout`` is redirected to the status's own console, on stderr."""
    import sys

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    # Escaped: a message quotes paths and URLs, whose brackets are not markup ("[/:]").
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def skip(message: str) -> typer.Exit:
    """A run that did nothing because another is working: exit 3, and not called an error."""
    console.print(f"[yellow]skipped:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(3)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now: rich's status line swaps it while it spins."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def run_log(level: str, local: bool) -> Iterator[None]:
    """The run's own lines (``omnisync.*`` loggers) at ``OMNISYNC_LOG_LEVEL``: on stderr for a
    run in this process; a Prefect run ships them with the run instead."""
    logger = logging.getLogger("omnisync")
    logger.setLevel(level)
    handler = _Stderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s - %(message)s", "%H:%M:%S")
    )
    if local:
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def sync_counts(counts: dict[str, object]) -> str:
    """A sync's counts as its result line and ``status`` both say them. "new or changed" are
    the versions the change log had not seen: the lookback's re-reads are read, and change
    nothing."""
    return (
        f"{counts.get('read', 0):,} read, {counts.get('changes_logged', 0):,} new or changed, "
        f"{counts.get('deleted', 0):,} deleted, {counts.get('quarantined', 0):,} quarantined, "
        f"{counts.get('flagged', 0):,} flagged"
    )
