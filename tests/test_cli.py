"""The command line: the demo runs end to end at a small size."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from omnisync.cli import app

runner = CliRunner()


def test_demo_tells_the_whole_story_and_prints_where_results_are(
    prefect_api: str, tmp_path: Path
) -> None:
    output = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--output", str(output), "--customers", "600"])
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", "")
    for expected in (
        "first sync",
        "incremental sync",
        "ERP dry run",
        "ERP write-back",
        "Data Docs",
        str(output.resolve() / "lake" / "customers"),
        "duckdb -c",
    ):
        assert expected in text, expected
    lake = output / "lake"
    sql = f"select count(distinct pk), count(*) from read_parquet('{lake}/customers/**/*.parquet')"
    assert duckdb.connect().execute(sql).fetchone() == (600, 600)
    assert (lake / "_reports" / "data_docs" / "index.html").exists()
    assert list((lake / "reconciliation").glob("run=*/outcomes.parquet"))
