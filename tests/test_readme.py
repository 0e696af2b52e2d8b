"""The README and docs/ stay true: their analyst queries run as written (DuckDB, Polars, pandas) on a
synced lake, the settings reference names exactly the settings of ``omnisync/settings.py``, every
link resolves inside the repository, and the README stays a short front door."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from omnisync.lake.snapshot import DEFAULT_BUCKETS
from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.sync.sandbox_runs import settings_for

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Where the analyst's queries are written: the README shows one, docs/lake.md the rest.
QUERY_PAGES = (README, (ROOT / "docs" / "lake.md").read_text(encoding="utf-8"))
SETTINGS_PAGE = ROOT / "docs" / "settings.md"


def blocks(language: str, marker: str) -> list[str]:
    found = [
        block
        for page in QUERY_PAGES
        for block in re.findall(rf"```{language}\n(.*?)```", page, flags=re.S)
    ]
    return [block for block in found if marker in block]


def test_the_docs_have_the_queries_this_test_runs() -> None:
    assert blocks("sql", "-- DuckDB") and blocks("python", "import polars")
    assert blocks("python", "import pandas")


def test_the_analyst_queries_run_as_written(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sandbox(customers=400, added_fields={"loyalty_tier": "gold"})
    # the README documents the default layout: bucket = pk % 64
    settings = settings_for(server, tmp_path, lag_seconds=0, snapshot_buckets=DEFAULT_BUCKETS)
    outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict) and outcome["read"] == 400
    monkeypatch.chdir(tmp_path)  # the queries say lake/..., as from the folder that holds it
    for block in blocks("sql", "-- DuckDB"):
        statements = [s.strip() for s in block.split(";") if s.strip()]
        for statement in statements:
            rows = duckdb.connect().execute(statement).fetchall()
            assert rows, statement
    for marker in ("import polars", "import pandas"):
        for block in blocks("python", marker):
            exec(compile(block, f"README ({marker})", "exec"), {})
    assert_partition_values_read_the_same(tmp_path / "lake")


def assert_partition_values_read_the_same(lake: Path) -> None:
    """``bucket`` and ``modified_month`` are the same values whichever reader opens the lake:
    ``bucket`` an integer (DuckDB, Polars, pandas and pyarrow alike), ``modified_month`` text."""
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq

    query = f"select pk, bucket from read_parquet('{lake}/customers/**/*.parquet', hive_partitioning=true)"
    by_duckdb = dict(duckdb.connect().execute(query).fetchall())
    by_polars = dict(pl.read_parquet(lake / "customers").select("pk", "bucket").iter_rows())
    frame = pd.read_parquet(lake / "customers", columns=["pk", "bucket"])
    by_pandas = dict(zip(frame["pk"], frame["bucket"].astype(int), strict=True))
    table = pq.read_table(lake / "customers", columns=["pk", "bucket"]).to_pydict()
    by_pyarrow = dict(zip(table["pk"], table["bucket"], strict=True))
    assert by_duckdb == by_polars == by_pandas == by_pyarrow
    assert all(isinstance(b, int) and b == pk % 64 for pk, b in by_duckdb.items())

    months = (
        duckdb.connect()
        .execute(
            f"select distinct modified_month from read_parquet('{lake}/customer_changes/**/*.parquet')"
        )
        .fetchall()
    )
    polars_months = pl.read_parquet(lake / "customer_changes")["modified_month"].unique()
    assert {m for (m,) in months} == set(polars_months.cast(pl.Utf8).to_list())
    assert all(re.fullmatch(r"\d{4}-\d{2}", m) for (m,) in months)


def test_every_link_of_the_docs_leads_to_a_file_of_the_repository() -> None:
    """The product documents itself: no link leaves the repository or leads nowhere."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), (
                f"{page.name} links outside the repository: {target}"
            )
            assert resolved.exists(), f"{page.name} links to a missing file: {target}"


def anchors(page: Path) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_to_a_heading_leads_to_one() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", text):
            linked = (page.parent / target).resolve() if target else page
            assert anchor in anchors(linked), (
                f"{page.name} links to a missing heading: {target}#{anchor}"
            )


def test_commands_in_the_docs_use_the_uv_that_make_installs() -> None:
    """``make install`` bootstraps uv into ``.tools/bin/`` when none is on PATH: a bare
    ``uv ...`` in a command of the docs would not be found on such a machine."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for line in page.read_text(encoding="utf-8").splitlines():
            for command in re.findall(r"(?:^|[`;#] ?|&& )(uv (?:run|sync|pip)\b[^`]*)", line):
                pytest.fail(f"{page.name}: `{command}` needs .tools/bin/uv or the .venv")


def documented_settings() -> tuple[set[str], set[str]]:
    """The variables of docs/settings.md's table, and those it lists as secrets."""
    text = SETTINGS_PAGE.read_text(encoding="utf-8")
    table: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            table |= set(re.findall(r"`((?:OMNITRON|OMNISYNC)_[A-Z_]+)`", line.split(" | ")[0]))
    secrets = set(re.findall(r"^- `((?:OMNITRON|OMNISYNC)_[A-Z_]+)`$", text, flags=re.M))
    return table, secrets


def test_the_settings_reference_names_exactly_the_settings_of_the_code() -> None:
    from pydantic import SecretStr

    from omnisync.settings import Settings

    by_variable = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias])
        variables = [c for c in choices if isinstance(c, str) and c.isupper()]
        assert variables, f"Settings.{name} has no environment variable"
        by_variable[variables[0]] = field
    table, secrets = documented_settings()
    assert table == set(by_variable), (
        f"docs/settings.md lacks {sorted(set(by_variable) - table)}, "
        f"names unknown {sorted(table - set(by_variable))}"
    )
    secret_fields = {
        v
        for v, f in by_variable.items()
        if SecretStr in getattr(f.annotation, "__args__", (f.annotation,))
    }
    assert secrets == secret_fields


def test_the_readme_is_a_short_front_door_that_points_to_the_references() -> None:
    assert len(README.splitlines()) <= 250
    for page in ("settings", "guarantees", "operations", "lake", "erp", "performance"):
        assert f"(docs/{page}.md" in README, f"the README does not link docs/{page}.md"
    # One paragraph gives the sync's figures against its goals, each with its date and floor;
    # every other figure belongs in docs/performance.md.
    summary = re.search(r"\nHow fast a sync is \(`make bench`, [^\n]*\n(?:[^\n]+\n)*", README)
    assert summary and "performance.md" in summary.group(0), "no dated summary of make bench"
    dated = re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", summary.group(0))
    performance = (ROOT / "docs" / "performance.md").read_text()
    assert dated and dated.group(0) in performance, "the summary's run is not in performance.md"
    for figure in re.findall(r"\*\*([^*]+)\*\*", summary.group(0)):
        assert figure in performance, f"the README's {figure!r} is not in docs/performance.md"
    rest = README.replace(summary.group(0), "")
    figures = re.findall(r"[0-9.,]+ ?(?:CPU-s|MiB|µs/customer|requests/s)", rest)
    assert not figures, f"benchmark figures belong in docs/performance.md: {figures}"


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)`", README))
    named |= set(re.findall(r"^make ([a-z][a-z0-9-]*)", README, flags=re.M))
    assert {"demo", "test", "test-e2e", "bench"} <= named
    assert named <= targets, f"not in the Makefile: {sorted(named - targets)}"


def test_every_omnisync_command_the_readme_names_exists() -> None:
    from typer.main import get_command

    from omnisync.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    named = set(re.findall(r"`omnisync ([a-z]+)", README))
    assert {"sync", "status", "verify", "reconcile"} <= named <= commands


def test_nothing_cites_a_document_outside_the_repository() -> None:
    """Code, comments and docs say it in place or link docs/: a reader has nothing else."""
    # Spelled in pieces, so that this line does not cite what it forbids.
    cite = ("SP" + "EC", "API " + "document", "/" + "shared")
    pattern = re.compile(rf"\b{cite[0]}\b|{cite[1]}\b|\.\.{cite[2]}|/work{cite[2]}")
    folders = ("omnisync", "transforms", "flows", "sandbox", "bench", "tests", "docs", "scripts")
    files = [ROOT / "README.md", ROOT / "prefect.yaml", ROOT / "Makefile"]
    for folder in folders:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml"}]
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not cited, cited
