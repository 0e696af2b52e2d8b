"""A SQLite state database is created on the first run, but only in a folder that exists: a
mistyped folder is refused naming OMNISYNC_STATE_URL, instead of a new, empty state elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.state import StateError, StateStore
from tests.cli_runner import run_cli


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return {"OMNISYNC_STATE_URL": url, "OMNISYNC_LAKE": str(tmp_path / "lake")}


@pytest.mark.parametrize("command", ["status", "sync", "verify"])
def test_a_state_database_in_a_missing_folder_is_refused_naming_the_setting(
    tmp_path: Path, command: str
) -> None:
    url = f"sqlite:///{tmp_path}/sate/state.db"  # "state" mistyped
    env = {**_env(url, tmp_path), "OMNITRON_URL": "http://127.0.0.1:9", "OMNITRON_TOKEN": "t"}
    result = run_cli(env, command)
    told = result.stdout + result.stderr
    assert result.returncode == 2, told
    lines = [line for line in told.splitlines() if line.strip()]
    assert len(lines) == 1 and "OMNISYNC_STATE_URL" in lines[0], lines
    assert f"{tmp_path}/sate" in lines[0] and "does not exist" in lines[0]
    assert not (tmp_path / "sate").exists()


def test_a_missing_file_in_an_existing_folder_is_created_by_a_run_not_by_status(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    result = run_cli(_env(url, tmp_path), "status")
    assert result.returncode == 0, result.stderr
    assert "no state database at" in result.stdout and not (tmp_path / "state.db").exists()
    StateStore(url).migrate()  # what a run does first
    assert (tmp_path / "state.db").is_file()


@pytest.mark.parametrize("flags", [[], ["--full"], ["--repair"]])
def test_a_verify_before_any_run_says_so_and_makes_no_state_database(
    tmp_path: Path, flags: list[str]
) -> None:
    """Found by a new user: a verify in a fresh folder made the state database (its folder too,
    for the default), then refused for want of a watermark."""
    env = {
        **_env(f"sqlite:///{tmp_path}/state.db", tmp_path),
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_TOKEN": "t",
    }
    result = run_cli(env, "verify", *flags)
    told = result.stdout + result.stderr
    assert result.returncode == 2, told
    assert "no state database at" in told and "run `omnisync sync` first" in told, told
    assert not (tmp_path / "state.db").exists()


@pytest.mark.parametrize("form", ["file:{path}?uri=true", "file://{path}?uri=true"])
def test_status_on_a_sqlite_uri_filename_makes_no_file(tmp_path: Path, form: str) -> None:
    """Found by a new user: ``omnisync status`` on a URI filename (``?uri=true``) made an empty
    database file, where on a plain path it says none is there yet."""
    url = "sqlite:///" + form.format(path=tmp_path / "state.db")
    result = run_cli(_env(url, tmp_path), "status")
    assert result.returncode == 0, result.stderr
    assert "no state database at" in result.stdout and not (tmp_path / "state.db").exists()


def test_status_reads_and_never_makes_or_upgrades_a_schema(tmp_path: Path) -> None:
    """A status against a database without omnisync's tables, or at an older revision, says so
    and changes nothing: an upgrade would change a production database under older workers."""
    empty = tmp_path / "empty.db"
    empty.touch()
    result = run_cli(_env(f"sqlite:///{empty}", tmp_path), "status")
    assert result.returncode == 0 and "no omnisync state in" in result.stdout, result.stderr
    assert empty.stat().st_size == 0
    older = f"sqlite:///{tmp_path}/older.db"
    store = _at_revision(older, "0006")
    result = run_cli(_env(older, tmp_path), "status")
    assert result.returncode == 0 and "at revision 0006" in result.stdout, result.stderr
    assert store.recorded_revisions() == {"0006"}


def _at_revision(url: str, revision: str) -> StateStore:
    """A state database migrated, then marked as written at ``revision``."""
    store = StateStore(url)
    store.migrate()
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "update alembic_version set version_num = :revision", {"revision": revision}
        )
    return store


def test_status_on_a_database_it_cannot_read_is_an_error_not_an_empty_state(
    tmp_path: Path,
) -> None:
    """A state database that is down or not a database is exit 2 with the reason, never "no
    omnisync state yet" and exit 0 (found by a review: monitoring reads the exit code)."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    down = "postgresql+psycopg://omni:Pw-marker-7q@127.0.0.1:1/x"
    for url in (f"sqlite:///{garbage}", down):
        result = run_cli(_env(url, tmp_path), "status")
        told = result.stdout + result.stderr
        assert result.returncode == 2 and "cannot reach the state database" in told, told
        assert "no omnisync state" not in told and "Pw-marker-7q" not in told


def test_status_on_a_database_of_a_newer_omnisync_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.db"
    _at_revision(url, "0099")
    result = run_cli(_env(url, tmp_path), "status")
    assert result.returncode == 0 and "written by a newer omnisync" in result.stdout, result.stdout
    assert "upgrades" not in result.stdout


def test_the_default_state_database_is_created_with_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run with no OMNISYNC_STATE_URL works: .omnisync/ is omnisync's own folder."""
    from omnisync.settings import Settings

    monkeypatch.chdir(tmp_path)
    default = Settings.model_fields["state_url"].default.get_secret_value()
    StateStore(default).migrate()
    assert (tmp_path / ".omnisync" / "state.db").is_file()
    with pytest.raises(StateError, match="does not exist"):
        StateStore("sqlite:///.omnisync/more/state.db")
