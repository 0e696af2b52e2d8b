"""A malformed secret stops every command in one line naming the setting, exit 2, and its value
(or any piece of it) never reaches stdout or stderr: not in the message, not in a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.settings import Settings
from tests.cli_runner import run_cli

#: what each malformed value hides; no message may show it
MARK = "Mark-9q7z"

#: (setting, malformed value, a word of the expected message)
MALFORMED = [
    ("OMNITRON_TOKEN", f"tok\n{MARK}", "token alone"),  # a line break pasted with it
    ("OMNITRON_TOKEN", f"Token {MARK}", "token alone"),  # the header's prefix given too
    ("OMNITRON_PASSWORD", f"pw\n{MARK}", "control character"),
    ("OMNISYNC_PII_SALT", f"salt\t{MARK}", "control character"),
    ("OMNISYNC_STATE_URL", f"omni:{MARK}@db.internal/omnisync", "not a SQLAlchemy URL"),
    ("OMNISYNC_STATE_URL", f"postgresql+psycopg://u:{MARK}@h:port/db", "not a SQLAlchemy URL"),
    ("OMNISYNC_STATE_URL", f"postgresql+nodriver://u:{MARK}@127.0.0.1/x", "not usable"),
    ("OMNISYNC_ERP_URL", f"u:{MARK}@erp.internal/erp", "not a SQLAlchemy URL"),
    ("OMNISYNC_ERP_URL", f"mssql+pyodbc://u:{MARK}@h:port/erp", "not a SQLAlchemy URL"),
    ("OMNITRON_URL", f"HTTPS://u:{MARK}@brand.omnitron.test", "must not carry credentials"),
    ("OMNISYNC_LAKE_BROWSE_URL", f"https://u:{MARK}@reports.test", "must not carry credentials"),
]

COMMANDS = {
    "sync": ["sync"],
    "verify": ["verify"],
    "status": ["status"],
    "reconcile": ["reconcile", "--erp-query", "select 1 as pk, 'A' as erp_code", "--dry-run"],
}


def _env(tmp_path: Path, name: str, value: str) -> dict[str, str]:
    env = {
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_USERNAME": "sandbox",
        "OMNITRON_PASSWORD": "sandbox",
        "OMNISYNC_LAKE": str(tmp_path / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNISYNC_ERP_URL": f"sqlite:///{tmp_path}/erp.db",
        "OMNISYNC_PII_SALT": "a-salt",
        "OMNISYNC_PII_POLICY": '{"email": "hash"}',
        name: value,
    }
    if name == "OMNITRON_TOKEN":
        del env["OMNITRON_USERNAME"], env["OMNITRON_PASSWORD"]
    return env


#: every command with every malformed secret it reads (only reconcile reads the ERP's URL)
CASES = [
    (command, number, case)
    for command in sorted(COMMANDS)
    for number, case in enumerate(MALFORMED)
    if case[0] != "OMNISYNC_ERP_URL" or command == "reconcile"
]


@pytest.mark.parametrize(
    ("command", "name", "value", "said"),
    [(command, *case) for command, _, case in CASES],
    # by setting and number: a database's name in an id would pin the test to its server's group
    ids=[f"{case[0]}-{number}-{command}" for command, number, case in CASES],
)
def test_a_malformed_secret_is_refused_naming_it_without_its_value(
    tmp_path: Path, command: str, name: str, value: str, said: str
) -> None:
    result = run_cli(_env(tmp_path, name, value), *COMMANDS[command])
    told = result.stdout + result.stderr
    assert result.returncode == 2, told
    assert MARK not in told and "Traceback" not in told, told
    lines = [line for line in told.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert name in lines[0] and said in lines[0], lines[0]


def test_a_malformed_erp_url_flag_is_refused_without_its_value(tmp_path: Path) -> None:
    env = _env(tmp_path, "OMNISYNC_PII_SALT", "a-salt")
    args = [*COMMANDS["reconcile"], "--erp-url", f"postgresql://u:{MARK}@h:port/erp"]
    result = run_cli(env, *args)
    told = result.stdout + result.stderr
    assert result.returncode == 2 and MARK not in told, told
    assert "OMNISYNC_ERP_URL: is not a SQLAlchemy URL" in told


def test_every_secret_setting_has_a_malformed_case() -> None:
    aliases = {
        str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        for field in Settings.model_fields.values()
        if "SecretStr" in str(field.annotation)
    }
    assert aliases <= {name for name, _, _ in MALFORMED}


def test_a_password_in_a_database_url_s_query_is_never_shown(tmp_path: Path) -> None:
    """``?password=`` is as secret as ``user:pass@``: SQLAlchemy hides only the latter when it
    renders a URL, and a message showed the former (the ERP's query errors use the same
    rendering, ``database_url_shown``)."""
    from omnisync.url_credentials import database_url_shown

    url = f"postgresql+psycopg://u@127.0.0.1:1/x?password={MARK}&sslmode=require"
    result = run_cli({**_env(tmp_path, "OMNISYNC_STATE_URL", url)}, "sync")
    told = result.stdout + result.stderr
    assert result.returncode == 2 and "password=***" in told, told
    assert MARK not in told, told
    shown = database_url_shown(f"mysql+pymysql://root:{MARK}@h/erp?ssl_key={MARK}&charset=utf8")
    assert MARK not in shown and "charset=" in shown and "@h/erp" in shown, shown


def test_a_password_with_an_unencoded_at_sign_is_never_shown() -> None:
    """``u:p@ss@host``: SQLAlchemy splits at the first ``@``, so its rendering hid only ``p`` and
    showed ``ss@host``, and a driver's error quoted the rest; the ERP's errors were not scrubbed
    as the state database's are."""
    from omnisync.erp.source import ErpInputError, read_query
    from omnisync.url_credentials import database_url_shown

    shown = database_url_shown("mysql+pymysql://u:p@ss9@127.0.0.1:1/db")
    assert "ss9" not in shown and "127.0.0.1:1/db" in shown, shown
    for password in ("pa/ss9", "pa?ss9", "pa#ss9"):  # where a URL's authority would end
        shown = database_url_shown(f"postgresql://u:{password}@h.test/db")
        assert "ss9" not in shown and "@h.test/db" in shown, shown
    with pytest.raises(ErpInputError) as raised:
        read_query("postgresql+psycopg://erp:Pa@ss:W0rd99@db.example/erp", "select 1", "pk")
    said = str(raised.value)
    assert "W0rd99" not in said and "Pa@ss" not in said, said


@pytest.mark.parametrize(
    "quoted",
    [
        "botocore: the secret 's3cr%t!Key' was refused",  # the password alone, decoded
        "s3fs: no access for s3cr%25t%21Key",  # as the URL writes it
        "endpoint said user=lake-reader password=s3cr%t!Key",
        "lake-reader:s3cr%t!Key@minio.internal:9000 refused",  # user:pass, decoded
    ],
)
def test_a_lake_password_is_hidden_alone_and_decoded_not_only_as_user_colon_pass(
    quoted: str,
) -> None:
    """Found by a review: only the exact ``user:pass`` of the lake's URL was hidden, so a
    library quoting the password alone, or percent-decoded, showed it."""
    from omnisync.url_credentials import userinfo_hidden

    url = "s3://lake-reader:s3cr%25t%21Key@minio.internal:9000/lake"
    shown = userinfo_hidden(quoted, url)
    assert "s3cr" not in shown, shown
    assert "***" in shown


def test_a_short_password_is_hidden_within_user_colon_pass_and_the_message_stays_readable() -> None:
    from omnisync.url_credentials import userinfo_hidden

    shown = userinfo_hidden("reader:ab@host refused: ab is not a bucket", "s3://reader:ab@host/x")
    assert shown == "***@host refused: ab is not a bucket", shown
