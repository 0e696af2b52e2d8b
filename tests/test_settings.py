"""Settings: read from the environment, validated at start with one line naming the variable."""

from __future__ import annotations

import pytest

from omnisync.settings import SettingsError, load_settings


def test_defaults_follow_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    settings = load_settings()
    assert settings.state_url.get_secret_value() == "sqlite:///.omnisync/state.db"
    assert settings.lake == "./lake" and settings.verify_tls is True
    assert settings.timeout_seconds > 0


def test_environment_variables_use_the_spec_names(monkeypatch: pytest.MonkeyPatch) -> None:
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
