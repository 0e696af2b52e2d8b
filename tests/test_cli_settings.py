"""Every command that reads the settings refuses a dangerous one in one line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnisync.cli import app

runner = CliRunner()

COMMANDS = {
    "sync": ["sync"],
    "reconcile": ["reconcile", "--erp-file", "erp.csv", "--dry-run"],
    "status": ["status"],
    "demo": ["demo", "--customers", "5"],
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_USERNAME": "sandbox",
        "OMNITRON_PASSWORD": "sandbox",
        "OMNISYNC_LAKE": str(tmp_path / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNISYNC_PII_SALT": "s3cret-salt",
        **extra,
    }


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_pii_policy_typo_stops_every_command_naming_the_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _env(tmp_path, OMNISYNC_PII_POLICY='{"emial": "hash"}')
    args = [*COMMANDS[command]]
    if command == "demo":
        args += ["--output", str(tmp_path / "demo")]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "OMNISYNC_PII_POLICY: unknown column emial" in lines[0]
    assert "email" in lines[0] and "s3cret-salt" not in result.output
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("command", ["sync", "reconcile", "status"])
def test_credentials_in_the_url_stop_every_command_without_echoing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _env(tmp_path, OMNITRON_URL="https://api:pw-in-url@brand.omnitron.test")
    result = runner.invoke(app, COMMANDS[command], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "OMNITRON_URL: must not carry credentials" in lines[0]
    assert "pw-in-url" not in result.output and "brand.omnitron.test" not in result.output
