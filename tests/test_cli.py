"""The command line: the demo runs end to end at a small size; user mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from omnisync.cli import app

runner = CliRunner()


def test_demo_writes_a_lake_an_analyst_can_query(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = runner.invoke(app, ["demo", "--lake", str(lake), "--customers", "400"])
    assert result.exit_code == 0, result.output
    assert "400 customers read" in result.output
    assert str(lake.resolve() / "customers") in result.output.replace("\n", "")
    sql = f"select count(distinct pk), count(*) from read_parquet('{lake}/customers/**/*.parquet')"
    assert duckdb.connect().execute(sql).fetchone() == (400, 400)


def test_demo_into_an_unwritable_lake_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["demo", "--lake", str(blocker / "lake"), "--customers", "10"])
    assert result.exit_code == 2
    assert "OMNISYNC_LAKE" in result.output and "Traceback" not in result.output
