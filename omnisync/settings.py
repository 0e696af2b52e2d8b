"""The one typed settings object, from the environment, ``.env`` or flags (docs/settings.md).

Build it once at the edge (the CLI, a flow's entry) and pass it down explicitly. Secrets are
``SecretStr``: they print as ``**********`` and reach the wire only through ``get_secret_value()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Annotated, Literal

import pydantic_settings
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omnisync.settings_checks import (
    ERASE_COLUMNS,
    api_token,
    checked_browse_url,
    checked_omnitron_url,
    database_url,
    erase_columns_list,
    known_erase_columns,
    known_pii_policy,
    one_line,
    password_text,
    secret_text,
    unset_if_empty,
    upper_case,
)

_env = AliasChoices  # each setting's environment name first, then its field name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    omnitron_url: Annotated[str | None, AfterValidator(checked_omnitron_url)] = Field(
        None,
        validation_alias=_env("OMNITRON_URL", "omnitron_url"),
        description="base URL of the Omnitron instance, e.g. https://brand.omnitron.akinon.net",
    )
    omnitron_token: Annotated[SecretStr | None, AfterValidator(api_token)] = Field(
        None,
        validation_alias=_env("OMNITRON_TOKEN", "omnitron_token"),
        description="API token; used instead of OMNITRON_USERNAME and OMNITRON_PASSWORD if set",
    )
    omnitron_username: Annotated[str | None, AfterValidator(unset_if_empty)] = Field(
        None, validation_alias=_env("OMNITRON_USERNAME", "omnitron_username")
    )
    omnitron_password: Annotated[SecretStr | None, AfterValidator(password_text)] = Field(
        None, validation_alias=_env("OMNITRON_PASSWORD", "omnitron_password")
    )
    state_url: Annotated[SecretStr, AfterValidator(database_url)] = Field(
        SecretStr("sqlite:///.omnisync/state.db"),
        validation_alias=_env("OMNISYNC_STATE_URL", "state_url"),
        description="SQLAlchemy URL of the state database (may hold a password: kept secret)",
    )
    lake: str = Field(
        "./lake",
        validation_alias=_env("OMNISYNC_LAKE", "lake"),
        description="root of the Parquet lake: a path or an fsspec URL (s3://...)",
    )
    page_size: int = Field(
        1000, ge=1, le=10_000, validation_alias=_env("OMNISYNC_PAGE_SIZE", "page_size")
    )
    lag_seconds: float = Field(
        60.0,
        ge=0,
        validation_alias=_env("OMNISYNC_LAG_SECONDS", "lag_seconds"),
        description="changes younger than this are left for the next run",
    )
    lookback_seconds: float = Field(
        300.0,
        ge=0,
        validation_alias=_env("OMNISYNC_LOOKBACK_SECONDS", "lookback_seconds"),
        description="each run re-reads this far behind the watermark",
    )
    deletion_check_requests: int = Field(
        40,
        ge=4,
        validation_alias=_env("OMNISYNC_DELETION_CHECK_REQUESTS", "deletion_check_requests"),
        description="requests a run may spend narrowing down deleted customers; the ranges "
        "left are carried over to the next run",
    )
    max_deletions_share: float = Field(
        0.05,
        ge=0,
        le=1,
        validation_alias=_env("OMNISYNC_MAX_DELETIONS_SHARE", "max_deletions_share"),
    )  # more deletions in one run (and over 50) are refused; 1: never (G9)
    max_rps: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("OMNISYNC_MAX_RPS", "max_rps"),
        description="requests per second, per process",
    )
    concurrency: int = Field(
        4,
        ge=1,
        le=64,
        validation_alias=_env("OMNISYNC_CONCURRENCY", "concurrency"),
        description="requests in flight, per process",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("OMNISYNC_TIMEOUT_SECONDS", "timeout_seconds")
    )
    retry_attempts: int = Field(
        8, ge=1, le=50, validation_alias=_env("OMNISYNC_RETRY_ATTEMPTS", "retry_attempts")
    )
    retry_max_seconds: float = Field(
        120.0,
        gt=0,
        validation_alias=_env("OMNISYNC_RETRY_MAX_SECONDS", "retry_max_seconds"),
        description="total time budget of one request's retries",
    )
    verify_tls: bool = Field(True, validation_alias=_env("OMNISYNC_VERIFY_TLS", "verify_tls"))
    pii_policy: Annotated[
        dict[str, Literal["keep", "hash", "drop"]], AfterValidator(known_pii_policy)
    ] = Field(
        default_factory=dict,
        validation_alias=_env("OMNISYNC_PII_POLICY", "pii_policy"),
        description='per column of the analyst datasets: {"email": "hash", "phone_number": "drop"}',
    )
    pii_salt: Annotated[SecretStr, AfterValidator(secret_text)] = Field(
        SecretStr(""),
        validation_alias=_env("OMNISYNC_PII_SALT", "pii_salt"),
        description="secret salt for hashed PII columns (required when any column is hashed)",
    )
    erase_deleted: bool = Field(
        False,
        validation_alias=_env("OMNISYNC_ERASE_DELETED", "erase_deleted"),
        description="a customer deleted in Omnitron also has its personal columns erased from "
        "the lake's history (change log, quarantine, reconciliation, reports): G9",
    )
    erase_columns: Annotated[
        tuple[str, ...],
        NoDecode,
        BeforeValidator(erase_columns_list),
        AfterValidator(known_erase_columns),
    ] = Field(
        ERASE_COLUMNS,
        validation_alias=_env("OMNISYNC_ERASE_COLUMNS", "erase_columns"),
        description="the personal columns erasure nulls: comma-separated or a JSON list",
    )
    max_quarantine_share: float = Field(
        0.05,
        ge=0,
        le=1,
        validation_alias=_env("OMNISYNC_MAX_QUARANTINE_SHARE", "max_quarantine_share"),
        description="a run with a larger share of quarantined records fails (G6)",
    )
    quarantine_min_rows: int = Field(
        1000,
        ge=1,
        validation_alias=_env("OMNISYNC_QUARANTINE_MIN_ROWS", "quarantine_min_rows"),
        description="the quarantined share is judged over a run once it read this many records "
        "(or once more than the share of this many were quarantined), and over the stream's "
        "latest this many records",
    )
    window_rows: int = Field(
        # windows in flight are a sync's peak memory: 1M's largest is about 100k's (performance.md)
        40_000,
        ge=100,
        validation_alias=_env("OMNISYNC_WINDOW_ROWS", "window_rows"),
        description="a backfill window holds about this many customers (committed on its own)",
    )
    chunk_rows: int = Field(
        # Raw records are the largest objects a window thread holds until they are typed: a
        # small chunk bounds them, and typing in smaller chunks costs no CPU (docs/performance.md).
        2_000,
        ge=1,
        validation_alias=_env("OMNISYNC_CHUNK_ROWS", "chunk_rows"),
        description="raw records typed together (bounds memory, G4)",
    )
    window_concurrency: int = Field(
        1,  # one window's rows held at a time (docs/performance.md, 2026-12-07)
        ge=1,
        le=32,
        validation_alias=_env("OMNISYNC_WINDOW_CONCURRENCY", "window_concurrency"),
        description="backfill windows extracted in parallel",
    )
    lock_wait_seconds: float = Field(
        0.0,
        ge=0,
        validation_alias=_env("OMNISYNC_LOCK_WAIT_SECONDS", "lock_wait_seconds"),
        description="how long a run waits for another run of the stream before giving up",
    )
    lock_lease_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias=_env("OMNISYNC_LOCK_LEASE_SECONDS", "lock_lease_seconds"),
        description="a lock whose holder has not renewed it for this long is taken over",
    )
    verify_audit_runs: int = Field(
        7,
        ge=1,
        validation_alias=_env("OMNISYNC_VERIFY_AUDIT_RUNS", "verify_audit_runs"),
        description="`omnisync verify --audit` compares the whole lake exactly over this many runs",
    )
    dask_address: str | None = Field(
        None,
        validation_alias=_env("OMNISYNC_DASK_ADDRESS", "dask_address"),
        description="run sync windows on Dask: a scheduler address, or 'local' for a local cluster",
    )
    dask_workers: int = Field(
        2,
        ge=1,
        le=64,
        validation_alias=_env("OMNISYNC_DASK_WORKERS", "dask_workers"),
        description="workers of the local Dask cluster ('local' address)",
    )
    erp_url: Annotated[SecretStr | None, AfterValidator(database_url)] = Field(
        None,
        validation_alias=_env("OMNISYNC_ERP_URL", "erp_url"),
        description="SQLAlchemy URL of the ERP database for `reconcile --erp-query` (secret)",
    )
    snapshot_buckets: int = Field(
        64,
        ge=1,
        le=4096,
        validation_alias=_env("OMNISYNC_SNAPSHOT_BUCKETS", "snapshot_buckets"),
        description="pk buckets (files) of customers/; fixed once the lake exists",
    )
    lake_browse_url: Annotated[str | None, AfterValidator(checked_browse_url)] = Field(
        None,
        validation_alias=_env("OMNISYNC_LAKE_BROWSE_URL", "lake_browse_url"),
        description="where a browser reads the lake's reports (http/https): artifacts link there",
    )
    data_docs_retention_days: int = Field(
        30,
        ge=1,
        validation_alias=_env("OMNISYNC_DATA_DOCS_RETENTION_DAYS", "data_docs_retention_days"),
        description="validation results and their Data Docs pages are kept this many days",
    )

    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(upper_case)
    ] = Field(
        "WARNING",
        validation_alias=_env("OMNISYNC_LOG_LEVEL", "log_level"),
        description="level of omnisync's own log lines (INFO: each window; DEBUG: each step)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.omnitron_username is None) != (self.omnitron_password is None):
            unset, given = ("USERNAME", "PASSWORD")[:: 1 if self.omnitron_username is None else -1]
            raise ValueError(f"OMNITRON_{unset} is empty or not set while OMNITRON_{given} is")
        if "hash" in self.pii_policy.values() and not self.pii_salt.get_secret_value():
            raise ValueError("OMNISYNC_PII_POLICY hashes a column: set OMNISYNC_PII_SALT")
        return self


class SettingsError(Exception):
    """Configuration a user must fix; the message names the setting and the bad value."""


_IN_EFFECT = contextvars.ContextVar[Settings | None]("omnisync_settings", default=None)


@contextlib.contextmanager
def settings_in_effect(settings: Settings | None) -> Iterator[None]:
    """Within this block, ``load_settings()`` (no overrides) returns ``settings``. The command
    line hands its settings to a flow run this way, and tests theirs: a flow's parameters are
    what Prefect's custom-run form shows, and no setting (passwords included) belongs there."""
    token = _IN_EFFECT.set(settings)
    try:
        yield
    finally:
        _IN_EFFECT.reset(token)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``.env``, with ``overrides`` (CLI flags) on top; with
    no overrides inside :func:`settings_in_effect`, the settings given there. Raises
    SettingsError with a one-line message per bad setting instead of pydantic's report."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    current = _IN_EFFECT.get()
    if current is not None and not clean:
        return current
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except pydantic_settings.SettingsError as exc:
        # A value the environment source cannot even decode (a JSON setting that is not JSON).
        field = str(exc).split('field "', 1)[-1].split('"', 1)[0]
        name = _ENV_NAMES.get(field, field)
        raise SettingsError(f"{name}: not valid JSON (give a JSON object)") from None
    except ValidationError as exc:
        raise SettingsError(one_line(exc, _ENV_NAMES, _SECRETS)) from None


_ENV_NAMES = {
    name: str(field.validation_alias.choices[0])  # type: ignore[union-attr]
    for name, field in Settings.model_fields.items()
}
_ENV_NAMES.update({alias: alias for alias in _ENV_NAMES.values()})
#: the secret settings, by field and by environment name: a message never repeats their value
_SECRETS = frozenset(
    name
    for field, info in Settings.model_fields.items()
    if "SecretStr" in str(info.annotation)
    for name in (field, _ENV_NAMES[field])
)
