"""The README's analyst queries run as written, in DuckDB, Polars and pandas, on a synced lake."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.sync.sandbox_runs import settings_for

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str, marker: str) -> list[str]:
    found = re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)
    return [block for block in found if marker in block]


def test_the_readme_has_the_queries_this_test_runs() -> None:
    assert blocks("sql", "-- DuckDB") and blocks("python", "import polars")
    assert blocks("python", "import pandas")


def test_the_analyst_queries_run_as_written(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sandbox(customers=400, added_fields={"loyalty_tier": "gold"})
    outcome = run_sync(settings_for(server, tmp_path, lag_seconds=0), False, Local())
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


def test_commands_in_the_docs_use_the_uv_that_make_installs() -> None:
    """``make install`` bootstraps uv into ``.tools/bin/`` when none is on PATH: a bare
    ``uv ...`` in a command of the docs would not be found on such a machine."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for line in page.read_text(encoding="utf-8").splitlines():
            for command in re.findall(r"(?:^|[`;#] ?|&& )(uv (?:run|sync|pip)\b[^`]*)", line):
                pytest.fail(f"{page.name}: `{command}` needs .tools/bin/uv or the .venv")
