"""Every command that reads the settings refuses a dangerous one in one line, before any work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnisync.cli import app
from sandbox import SandboxServer
from tests.one_answer_server import serving

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


def _unauthorised(method: str, path: str) -> tuple[int, str, bytes]:
    """A Prefect API behind an auth string this client does not have: 401 but on /health."""
    if path.endswith("/health"):
        return 200, "application/json", b"true"
    return 401, "application/json", b'{"exception_message": "Unauthorized"}'


@pytest.fixture
def unauthorised_api() -> Iterator[str]:
    with serving(_unauthorised) as url:
        yield url.replace("http://", "http://user:api-pw-1@") + "/api"


@pytest.mark.parametrize("command", ["sync", "reconcile"])
@pytest.mark.parametrize("case", ["unreachable", "unauthorised"])
def test_a_prefect_api_that_does_not_answer_is_one_line_naming_prefect_api_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unauthorised_api: str,
    command: str,
    case: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "erp.csv").write_text("pk,erp_code\n1,A\n")
    api = "http://127.0.0.1:1/api" if case == "unreachable" else unauthorised_api
    env = _env(tmp_path, PREFECT_API_URL=api)
    result = runner.invoke(app, COMMANDS[command], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: PREFECT_API_URL http://"), lines
    expected = "is unreachable" if case == "unreachable" else "refused this client (401)"
    assert expected in lines[0] and "api-pw-1" not in result.output
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_a_wrong_token_is_one_line_naming_omnitron_token(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = make_sandbox(customers=10)
    env = _env(tmp_path, OMNITRON_URL=server.url, OMNITRON_TOKEN="wrong-token-456")
    del env["OMNITRON_USERNAME"], env["OMNITRON_PASSWORD"]
    result = runner.invoke(app, ["sync"], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Omnitron refused OMNITRON_TOKEN" in lines[0], lines
    assert "check OMNITRON_TOKEN" in lines[0] and "wrong-token-456" not in result.output


@pytest.mark.parametrize("flow", ["sync-customers", "reconcile-erp-codes"])
def test_a_pii_policy_typo_fails_a_flow_run_in_one_line(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flow: str
) -> None:
    """A deployment reads its settings from the worker's environment: the same refusal, as
    the flow run's state message, with no traceback."""
    from tests.flows import reconcile_erp_codes, sync_customers

    for name, value in _env(tmp_path, OMNISYNC_PII_POLICY='{"emial": "hash"}').items():
        monkeypatch.setenv(name, value)
    if flow == "sync-customers":
        state = sync_customers(return_state=True)
    else:
        state = reconcile_erp_codes(erp_file=str(tmp_path / "erp.csv"), return_state=True)
    assert state.is_failed()
    assert state.message.startswith("SettingsError: OMNISYNC_PII_POLICY: unknown column emial")
    assert not (tmp_path / "lake").exists()


#: URLs whose scheme check used to fail first and repeat the whole value, password included
SCHEME_FIRST = [
    "HTTPS://alice:s3cr3t@omni.example",
    " https://alice:s3cr3t@omni.example",
    "alice:s3cr3t@omni.example",
]


@pytest.mark.parametrize("url", SCHEME_FIRST)
def test_credentials_in_a_url_of_any_shape_are_refused_without_echoing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, COMMANDS["sync"], env=_env(tmp_path, OMNITRON_URL=url))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "OMNITRON_URL: must not carry credentials" in lines[0], lines
    assert "s3cr3t" not in result.output and "alice" not in result.output


def test_the_omnitron_url_is_never_echoed_whatever_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, COMMANDS["sync"], env=_env(tmp_path, OMNITRON_URL="ftp://x-host"))
    assert result.exit_code == 2 and "must start with http:// or https://" in result.output
    assert "x-host" not in result.output


def test_the_scheme_of_the_omnitron_url_is_read_in_any_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnisync.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNITRON_URL", "HTTPS://Brand.Omnitron.test/")
    assert load_settings().omnitron_url == "https://Brand.Omnitron.test"


@pytest.mark.parametrize("url", SCHEME_FIRST)
def test_credentials_in_the_url_fail_a_flow_run_without_echoing_them(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from tests.flows import sync_customers

    monkeypatch.chdir(tmp_path)
    for name, value in _env(tmp_path, OMNITRON_URL=url).items():
        monkeypatch.setenv(name, value)
    state = sync_customers(return_state=True)
    APILogWorker.drain_all(timeout=30)
    assert state.is_failed() and "must not carry credentials" in state.message, state.message
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
        run = client.read_flow_run(state.state_details.flow_run_id)
    told = "\n".join([state.message, run.state.message or "", *(log.message for log in logs)])
    assert any("must not carry credentials" in log.message for log in logs)
    assert "s3cr3t" not in told and "alice" not in told


@pytest.mark.parametrize(
    "url",
    [
        "omni:Pw-marker-7q@db.internal/omnisync",  # the scheme forgotten
        "postgresql+psycopg//omni:Pw-marker-7q@127.0.0.1/x",  # a ':' forgotten
        "postgresql+nodriver://omni:Pw-marker-7q@127.0.0.1/x",  # a driver that is not there
    ],
)
def test_a_malformed_state_url_is_refused_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """Found by a new user: an unparseable OMNISYNC_STATE_URL was shown whole, password and all."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, COMMANDS["status"], env=_env(tmp_path, OMNISYNC_STATE_URL=url))
    assert result.exit_code == 2 and "OMNISYNC_STATE_URL" in result.output, result.output
    assert "Pw-marker-7q" not in result.output


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("postgres://omni:Pw-marker-7q@127.0.0.1/x", "postgresql+psycopg://"),
        ("mysql://root:Pw-marker-7q@127.0.0.1/x", "mysql+pymysql://"),
    ],
)
def test_a_state_url_without_an_installed_driver_names_the_one_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, meant: str
) -> None:
    """Found by a new user: ``postgres://`` answered "Can't load plugin" and ``mysql://`` "No
    module named 'MySQLdb'", without the URL that works."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, COMMANDS["status"], env=_env(tmp_path, OMNISYNC_STATE_URL=url))
    assert result.exit_code == 2 and f"write {meant}" in result.output, result.output
    assert "Pw-marker-7q" not in result.output


def test_status_without_a_state_database_says_so_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: ``omnisync status`` in a fresh folder made ./.omnisync/state.db and
    showed an empty state, as if the runs it looked for had never happened."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, COMMANDS["status"], env={**_env(tmp_path), "OMNISYNC_STATE_URL": None}
    )
    assert result.exit_code == 0 and "no state database at '.omnisync/state.db'" in result.output
    assert not (tmp_path / ".omnisync").exists()


@pytest.mark.parametrize("password", ["sandbox", "wrong-pw-789"])
def test_a_wrong_token_with_a_password_set_is_said_not_hidden(
    make_sandbox: Callable[..., SandboxServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    password: str,
) -> None:
    """OMNITRON_TOKEN wins over the user and password (docs/settings.md): when Omnitron refuses
    it, the login is tried, and what is said names the token either way."""
    monkeypatch.chdir(tmp_path)
    server = make_sandbox(customers=10)
    env = _env(
        tmp_path,
        OMNITRON_URL=server.url,
        OMNITRON_TOKEN="wrong-token-456",
        OMNITRON_PASSWORD=password,
    )
    with caplog.at_level("WARNING", logger="omnisync.client"):
        result = runner.invoke(app, ["sync"], env=env)
    told = result.output + caplog.text
    assert "wrong-token-456" not in told and "wrong-pw-789" not in told
    warned = [r.getMessage() for r in caplog.records if "OMNITRON_TOKEN" in r.getMessage()]
    assert len(warned) == 1 and "Omnitron refused OMNITRON_TOKEN (401" in warned[0], warned
    assert "logging in as OMNITRON_USERNAME 'sandbox' instead" in warned[0]
    if password == "sandbox":  # the login works: the run goes on
        assert result.exit_code == 0, told
        return
    assert result.exit_code == 2, told
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Omnitron refused OMNITRON_TOKEN (401" in lines[0], lines
    assert "which is used first, then the login of user 'sandbox'" in lines[0], lines


def test_a_misspelled_setting_is_named_with_the_one_meant(tmp_path: Path) -> None:
    """``OMNISYNC_PAGESIZE=50`` was ignored without a word: the run went on with the default
    page size. A name close to a setting's, in the environment or in ``./.env``, is named with
    the setting meant; other variables (another tool's, ``OMNISYNC_HOME``) are left alone."""
    from tests.cli_runner import run_cli

    env = {
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNISYNC_PAGESIZE": "50",
        "OMNISYNC_HOME": str(tmp_path),
        "OMNITRON_BRAND": "acme",
    }
    done = run_cli(env, "status")
    assert done.returncode == 2, done.stderr  # OMNISYNC_PAGE_SIZE is not set: see below
    said = " ".join(done.stderr.split())
    assert "OMNISYNC_PAGESIZE is not a setting" in said and "OMNISYNC_PAGE_SIZE" in said, said
    assert "OMNISYNC_HOME" not in said and "OMNITRON_BRAND" not in said, said

    from omnisync.settings_checks import misspelled_settings, names_set

    dotenv = tmp_path / ".env"
    dotenv.write_text("# a comment\nexport OMNITRON_PASWORD=x\nOMNISYNC_LAKE=/tmp/l\n")
    found = misspelled_settings(names_set(set(), dotenv))
    assert found == [("OMNITRON_PASWORD", "OMNITRON_PASSWORD")], found


def test_a_mistyped_setting_whose_setting_is_not_set_stops_every_command(tmp_path: Path) -> None:
    """Found by a new user: ``OMNISYNC_LAKE_PATH=/data/lake`` (meaning ``OMNISYNC_LAKE``) was
    noted, then the sync wrote a whole lake under ./lake and exited 0: a scheduled job never
    notices. A name taken for a mistyped setting that is not set itself stops the command with
    exit 2 before anything is made; beside the setting it resembles, it is only noted."""
    from tests.cli_runner import run_cli

    state = f"sqlite:///{tmp_path}/state.db"
    env = {
        "OMNISYNC_STATE_URL": state,
        "OMNISYNC_LAKE_PATH": str(tmp_path / "mylake"),
        "OMNITRON_URL": "http://127.0.0.1:9",  # never reached
        "OMNITRON_TOKEN": "t" * 40,
    }
    for command in ("sync", "status", "verify"):
        done = run_cli(env, command)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2, (command, done.stderr)
        assert "OMNISYNC_LAKE_PATH is not a setting (did you mean OMNISYNC_LAKE?)" in said, said
        assert "Traceback" not in said
    assert not (tmp_path / "state.db").exists(), "stopped before anything was made"
    both = {**env, "OMNISYNC_LAKE": str(tmp_path / "mylake")}
    done = run_cli(both, "status")
    assert done.returncode == 0, done.stderr
    assert "OMNISYNC_LAKE_PATH is not a setting and is ignored" in " ".join(done.stderr.split())


def test_a_setting_with_a_word_added_or_left_out_and_any_unknown_omnisync_name_are_noted(
    tmp_path: Path,
) -> None:
    """Found by a new user: ``OMNISYNC_LAKE_PATH`` in ``.env`` was ignored without a word and
    the sync wrote to ./lake. Names under omnisync's own prefix are no other tool's; the test
    suite's own (``OMNISYNC_TEST_*``) and another tool's ``OMNITRON_*`` are left alone."""
    from omnisync.settings_checks import misspelled_settings, names_set

    dotenv = tmp_path / ".env"
    dotenv.write_text("OMNISYNC_LAKE_PATH=/tmp/l\nOMNISYNC_PAGE=5\n")
    environ = {"OMNISYNC_COLOUR", "OMNISYNC_TEST_POSTGRES_URL", "OMNITRON_BASE_URL"}
    found = dict(misspelled_settings(names_set(environ, dotenv)))
    assert found == {
        "OMNISYNC_LAKE_PATH": "OMNISYNC_LAKE",
        "OMNISYNC_PAGE": "OMNISYNC_PAGE_SIZE",
        "OMNISYNC_COLOUR": None,
    }, found
    from tests.cli_runner import run_cli

    env = {"OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db", "OMNISYNC_COLOUR": "red"}
    said = " ".join(run_cli(env, "status").stderr.split())
    assert "OMNISYNC_COLOUR is not a setting and is ignored (the settings are in" in said, said


def test_verify_refuses_full_and_audit_together(tmp_path: Path) -> None:
    """Found by a new user: ``verify --full --audit`` ran as ``--full`` without a word, though
    the docs give them as one or the other."""
    from tests.cli_runner import run_cli

    done = run_cli(
        {"OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db"}, "verify", "--full", "--audit"
    )
    assert done.returncode == 2, done.stderr
    assert "--full compares every customer already: give only one of them" in " ".join(
        done.stderr.split()
    )


def test_a_dotenv_line_that_cannot_be_read_stops_the_command_naming_it(tmp_path: Path) -> None:
    """Found by a new user: python-dotenv warned "could not parse statement starting at line 1"
    (no file named), and the command then failed on what that line was meant to set."""
    from tests.cli_runner import run_cli

    (tmp_path / ".env").write_text("# settings\nOMNITRON_URL http://omnitron.example\n")
    done = run_cli({"OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db"}, "status", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert ".env line 2 is not NAME=value (it starts with OMNITRON_URL)" in said, said
    assert "python-dotenv" not in said
    # The line itself is never shown: it may hold a secret (found reading the change again).
    (tmp_path / ".env").write_text("OMNITRON_PASSWORD hunter2-secret\n")
    done = run_cli({"OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db"}, "status", cwd=tmp_path)
    assert done.returncode == 2 and "secret" not in done.stderr + done.stdout, done.stderr
    assert ".env line 1 is not NAME=value (it starts with OMNITRON_PASSWORD)" in " ".join(
        done.stderr.split()
    )


def test_another_tool_s_omnitron_variable_close_to_a_setting_is_only_noted(tmp_path: Path) -> None:
    """Found by a review: ``OMNITRON_TOKEN_FILE`` (another tool's) stopped every command of a
    password login, "OMNITRON_TOKEN is not set: rename it". Only omnisync's own prefix stops a
    command; a close ``OMNITRON_*`` name is noted."""
    from tests.cli_runner import run_cli

    env = {
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_USERNAME": "u",
        "OMNITRON_PASSWORD": "p" * 12,
        "OMNITRON_TOKEN_FILE": "/run/other-tool/token",
    }
    done = run_cli(env, "status")
    assert done.returncode == 0, done.stderr
    assert "OMNITRON_TOKEN_FILE is not a setting and is ignored" in " ".join(done.stderr.split())
