"""The command line: the demo runs end to end at a small size."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
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
        "sync after it",
        "summary.html",
        "Data Docs",
        str(output.resolve() / "lake" / "customers"),
        "import duckdb",
    ):
        assert expected in text, expected
    lake = output / "lake"
    sql = f"select count(distinct pk), count(*) from read_parquet('{lake}/customers/**/*.parquet')"
    assert duckdb.connect().execute(sql).fetchone() == (600, 600)
    assert (lake / "_reports" / "data_docs" / "index.html").exists()
    # The lake shows the codes the write-back just set: the demo syncs after it.
    outcomes = pq.read_table(lake / "reconciliation" / "outcomes")
    patched = {r["pk"]: r["erp_code"] for r in outcomes.to_pylist() if r["outcome"] == "ok"}
    assert patched, "the demo's write-back changed something"
    synced = dict(
        duckdb.connect()
        .execute(f"select pk, erp_code from read_parquet('{lake}/customers/**/*.parquet')")
        .fetchall()
    )
    assert {pk: synced[pk] for pk in patched} == patched
    # The DuckDB hint runs as printed, from the repository.
    hint = next(line for line in result.output.splitlines() if "import duckdb" in line)
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(
        ["bash", "-c", hint.strip()], cwd=root, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0 and "customers" in shown.stdout, shown.stderr
    # So does the status hint: the demo's runs, not an empty state of this folder's own. The
    # summary is the command's result, on stdout with the hints (its heading was on stderr).
    assert "Demo done" in result.stdout and "as `omnisync status` shows them" in result.stdout
    assert "Demo done" not in result.stderr
    # each sync's counts in the words of its own result line and of status
    assert "first sync        600 read, 600 new or changed, 0 deleted" in result.stdout
    hint = next(line for line in result.output.splitlines() if "bin/omnisync status" in line)
    shown = subprocess.run(
        ["bash", "-c", hint.strip()], cwd=root, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0 and "succeeded" in shown.stdout, shown.stdout + shown.stderr


def test_a_sandbox_on_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    import socket

    from tests.cli_runner import run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli({}, "sandbox", "--port", str(port), "--customers", "10")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
