"""Settings: read from the environment, validated at start with one line naming the variable."""

from __future__ import annotations

import pytest

from omnisync.settings import SettingsError, load_settings


def test_defaults_are_the_documented_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    settings = load_settings()
    assert settings.state_url.get_secret_value() == "sqlite:///.omnisync/state.db"
    assert settings.lake == "./lake" and settings.verify_tls is True
    assert settings.timeout_seconds > 0


def test_environment_variables_use_the_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNITRON_URL", "https://brand.omnitron.test/")
    monkeypatch.setenv("OMNITRON_PASSWORD", "pw-123456")
    monkeypatch.setenv("OMNITRON_USERNAME", "api")
    monkeypatch.setenv("OMNISYNC_PAGE_SIZE", "250")
    monkeypatch.setenv("OMNISYNC_PII_POLICY", '{"email": "hash"}')
    monkeypatch.setenv("OMNISYNC_PII_SALT", "salty")
    settings = load_settings()
    assert settings.omnitron_url == "https://brand.omnitron.test"
    assert settings.page_size == 250 and settings.pii_policy == {"email": "hash"}
    assert "pw-123456" not in repr(settings) and "salty" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OMNISYNC_PAGE_SIZE", "abc", "OMNISYNC_PAGE_SIZE"),
        ("OMNITRON_URL", "ftp://x", "OMNITRON_URL"),
        ("OMNISYNC_PII_POLICY", '{"email": "scramble"}', "OMNISYNC_PII_POLICY"),
        ("OMNITRON_USERNAME", "only-user", "OMNITRON_PASSWORD"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_secret_values_are_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNITRON_PASSWORD", "topsecret-value")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "topsecret-value" not in str(caught.value)


def test_a_misspelt_pii_column_is_refused_naming_it_and_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNISYNC_PII_POLICY", '{"emial": "hash"}')
    monkeypatch.setenv("OMNISYNC_PII_SALT", "salty")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("OMNISYNC_PII_POLICY: unknown column emial; the columns are pk,")
    assert "email" in message and "phone_number" in message and "\n" not in message


def test_a_pii_policy_may_not_hash_the_row_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNISYNC_PII_POLICY", '{"pk": "drop"}')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "OMNISYNC_PII_POLICY: pk identifies a row" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["https://api:pw-secret-1@brand.omnitron.test", "http://only-user-name@brand.omnitron.test/"],
)
def test_credentials_in_the_omnitron_url_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("OMNITRON_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("OMNITRON_URL: must not carry credentials (user:pass@)")
    assert "pw-secret-1" not in message and "only-user-name" not in message
    assert "brand.omnitron.test" not in message


def test_credentials_in_the_browse_url_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNISYNC_LAKE_BROWSE_URL", "https://u:pw-in-browse@reports.test")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("OMNISYNC_LAKE_BROWSE_URL: must not carry credentials")
    assert "pw-in-browse" not in message and "reports.test" not in message


def test_the_lake_url_is_shown_without_its_credentials() -> None:
    from omnisync.lake import LakeError, LakeStorage
    from omnisync.lake.browse import lake_link

    storage = LakeStorage("http://u:pw-in-lake@127.0.0.1:9/lake")
    with pytest.raises(LakeError) as caught:
        storage.check_writable()
    assert "pw-in-lake" not in str(caught.value) and "***@127.0.0.1:9" in str(caught.value)
    settings = load_settings(lake="sftp://u:pw-in-lake@host/lake")
    link = lake_link(settings, "reconciliation/run=1/summary.md", "summary")
    assert link == "summary: `sftp://***@host/lake/reconciliation/run=1/summary.md`"


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_user_name_or_password_is_not_set(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """``OMNITRON_USERNAME=`` in an env file is no user: both empty means no login to try (the
    client then names the settings to set), one empty beside the other is refused at once."""
    monkeypatch.setenv("OMNITRON_USERNAME", blank)
    monkeypatch.setenv("OMNITRON_PASSWORD", blank)
    settings = load_settings(omnitron_url="https://omnitron.example")
    assert settings.omnitron_username is None and settings.omnitron_password is None
    monkeypatch.setenv("OMNITRON_PASSWORD", "s3cret-pw")
    with pytest.raises(
        SettingsError, match="OMNITRON_USERNAME is empty or not set while OMNITRON_PASSWORD is"
    ) as refused:
        load_settings(omnitron_url="https://omnitron.example")
    assert "s3cret-pw" not in str(refused.value)
    # the settings it names start the line: no "settings:" before them (a new user's tryout)
    assert str(refused.value).startswith("OMNITRON_USERNAME is empty"), str(refused.value)


def test_the_default_layout_is_the_documented_64_buckets() -> None:
    """docs/lake.md and the README say bucket = pk % 64; the tests' own lakes use fewer."""
    from omnisync.lake.snapshot import DEFAULT_BUCKETS
    from omnisync.settings import load_settings

    assert load_settings().snapshot_buckets == DEFAULT_BUCKETS == 64
