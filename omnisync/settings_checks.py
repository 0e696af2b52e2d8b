"""The checks of the settings that need more than a type and bounds: URLs (http(s), no
credentials), the PII policy and the erased columns (known customer columns only), and the
one-line message a failed check becomes, which never repeats a value that may hold a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from omnisync.url_credentials import carries_userinfo, without_userinfo

#: The error type of a check whose input must not be repeated (it may hold a secret).
HIDDEN_INPUT = "value_with_secret"
#: Settings whose value is never repeated in a message, whatever check failed: a URL may carry
#: ``user:pass@`` in a shape no check recognises ("HTTPS://u:p@h", " https://u:p@h", "u:p@h").
NEVER_ECHOED = frozenset(
    {"omnitron_url", "lake_browse_url", "OMNITRON_URL", "OMNISYNC_LAKE_BROWSE_URL"}
)
#: The columns erasure nulls by default (G9): what names, reaches or describes a person. The
#: JSON columns are free-form (addresses, loyalty data...), so they go whole. Kept: ids and codes
#: (``channel_code``, ``erp_code``: the ERP's own record answers for that account), flags and
#: dates of the record itself.
ERASE_COLUMNS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "phone_number",
    "date_of_birth",
    "gender",
    "extra_field",
    "attributes",
    "attributes_kwargs",
    "localized_attributes",
    "localized_attributes_kwargs",
    "_extra_fields",
)


def web_url(value: str, setting: str) -> str:
    """``value`` with its scheme in lower case; refused, without repeating it, when it carries
    credentials or is not http(s)."""
    if carries_userinfo(value):
        # Not echoed: the URL would go into every row's _source, every link and log lines.
        raise PydanticCustomError(
            HIDDEN_INPUT,
            "must not carry credentials (user:pass@)" + setting,
        )
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise PydanticCustomError(HIDDEN_INPUT, "must start with http:// or https://")
    return f"{scheme.lower()}://{rest}".rstrip("/")


def checked_omnitron_url(value: str | None) -> str | None:
    """``OMNITRON_URL`` checked by :func:`web_url`; empty is not set."""
    if not value:
        return None
    return web_url(value, "; set OMNITRON_TOKEN, or OMNITRON_USERNAME and OMNITRON_PASSWORD")


def checked_browse_url(value: str | None) -> str | None:
    """``OMNISYNC_LAKE_BROWSE_URL`` checked by :func:`web_url`; empty is not set."""
    if not value:
        return None
    return web_url(value, "; a browser opens it, and every artifact links there")


def unset_if_empty(value: str | None) -> str | None:
    """An empty (or blank) user name is not set: ``OMNITRON_USERNAME=`` in an env file means
    no user, which is then named as missing, not sent to Omnitron's login."""
    return value if value is None or value.strip() else None


def secret_text(value: SecretStr | None) -> SecretStr | None:
    """A password or salt as given, refused without repeating it when it holds a control
    character: a line break or tab pasted with it is never part of what the user meant."""
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value.get_secret_value()):
        raise PydanticCustomError(
            HIDDEN_INPUT, "holds a control character (a line break or tab pasted with it?)"
        )
    return value


def password_text(value: SecretStr | None) -> SecretStr | None:
    """``OMNITRON_PASSWORD``: empty (or blank) is not set, as for the user name; otherwise
    :func:`secret_text`."""
    if value is None or not value.get_secret_value().strip():
        return None
    return secret_text(value)


def api_token(value: SecretStr | None) -> SecretStr | None:
    """``OMNITRON_TOKEN``: the token alone (it is sent as ``Authorization: Token <it>``); empty is
    not set. Refused without repeating it when it holds a blank or a control character."""
    if value is None or not value.get_secret_value():
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value.get_secret_value()):
        raise PydanticCustomError(
            HIDDEN_INPUT,
            "must be the token alone: no blank, line break or 'Token ' before it",
        )
    return value


def database_url(value: SecretStr | None) -> SecretStr | None:
    """A SQLAlchemy URL (``dialect+driver://user:password@host:port/database``), refused without
    repeating it (it may hold a password) when it cannot be parsed."""
    if value is None:
        return None
    from sqlalchemy.engine import make_url

    url = value.get_secret_value()
    if not url.strip():
        raise PydanticCustomError(HIDDEN_INPUT, "is empty")
    try:
        if "://" not in url:
            raise ValueError
        make_url(url)
    except Exception:  # any parse error: its message may quote the URL, password included
        raise PydanticCustomError(
            HIDDEN_INPUT,
            "is not a SQLAlchemy URL (dialect+driver://user:password@host:port/database)",
        ) from None
    return value


def upper_case(value: object) -> object:
    """A level given in any case (``info``) as the upper-case name it is compared with."""
    return value.upper() if isinstance(value, str) else value


def known_columns(
    names: Collection[str], setting: str, changed: Collection[str] | None = None
) -> None:
    """Refuse ``names`` that are no customer column: a typo must not leave the column it meant
    in clear, or in a deleted customer's history. ``changed``: the names whose values the
    setting changes, when it may also name a column to leave as it is; ``pk`` and
    ``modified_date`` identify a row and can only be left so (without ``changed``, they are no
    column the setting can name)."""
    # Imported here: pyarrow comes with it, and most commands have nothing to check.
    from transforms.pii import PII_COLUMNS, PROTECTED

    known = [name for name in PII_COLUMNS if changed is not None or name not in PROTECTED]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise PydanticCustomError(
            f"{setting}_unknown_column",
            "unknown column {unknown}; the columns are {known}",
            {"unknown": ", ".join(unknown), "known": ", ".join(known)},
        )
    fixed = sorted(PROTECTED & set(changed or ()))
    if fixed:
        raise PydanticCustomError(
            f"{setting}_protected_column",
            "{fixed} identifies a row and can only be kept",
            {"fixed": ", ".join(fixed)},
        )


def known_pii_policy(
    value: dict[str, Literal["keep", "hash", "drop"]],
) -> dict[str, Literal["keep", "hash", "drop"]]:
    """``OMNISYNC_PII_POLICY`` as given, refused when it names an unknown or protected column."""
    if value:
        known_columns(value, "pii", changed=[n for n, a in value.items() if a != "keep"])
    return value


def erase_columns_list(value: object) -> object:
    """``OMNISYNC_ERASE_COLUMNS`` from its text: a JSON list, or names separated by commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise PydanticCustomError("erase_columns_json", "not a valid JSON list") from None
    return tuple(name.strip() for name in text.split(",") if name.strip())


def known_erase_columns(value: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to erase, each once, refused when one is unknown or none is named."""
    known_columns(value, "erase")
    if not value:
        raise PydanticCustomError("erase_no_column", "names no column to erase")
    return tuple(dict.fromkeys(value))


def one_line(
    exc: ValidationError, env_names: Mapping[str, str], secrets: frozenset[str] = frozenset()
) -> str:
    """Every failed check of ``exc`` as ``NAME: message (got value)``, joined in one line; a value
    that may hold a secret (a URL setting, or one of ``secrets``) is not repeated, a URL's
    ``user:pass@`` is hidden."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        name = env_names.get(where, where)
        value = error.get("input")
        hidden = (
            error["type"] == HIDDEN_INPUT
            or where in NEVER_ECHOED
            or where in secrets
            or any(word in where for word in ("secret", "password", "token"))
        )
        if isinstance(value, str):
            value = without_userinfo(value)
        shown = "" if hidden or isinstance(value, dict) else f" (got {value!r})"
        message = error["msg"].removeprefix("Value error, ")
        # a check of several settings together names them in its message
        lines.append(f"{name}: {message}{shown}" if name else f"{message}{shown}")
    return "; ".join(lines)


#: variables of omnisync's prefixes that are not settings: the deployments' checkout
NOT_SETTINGS = frozenset({"OMNISYNC_HOME"})
#: names omnisync's own test suite gives its test databases and servers
_TEST_PREFIX = "OMNISYNC_TEST_"
#: how alike a name must be to a setting's to be taken for a mistyped one (difflib's ratio)
_LIKE = 0.85


def misspelled_settings(names: Collection[str]) -> list[tuple[str, str | None]]:
    """(name, the setting or settings meant, or None) for each of ``names`` (:func:`names_set`:
    the environment's and the ``.env`` file's) that looks like a mistyped setting: omnisync's
    prefixes, not a setting, and close to one, or a setting with a word added or left out
    (``OMNISYNC_LAKE_PATH``, ``OMNISYNC_PAGE``). Any other ``OMNISYNC_*`` name is one too, with
    nothing meant: no other tool uses that prefix. Another ``OMNITRON_*`` name (another
    tool's) is left alone."""
    import difflib

    known = setting_names()
    found_names: list[tuple[str, str | None]] = []
    for name in sorted(names):
        if not name.startswith(("OMNISYNC_", "OMNITRON_")) or name in known | NOT_SETTINGS:
            continue
        if name.startswith(_TEST_PREFIX):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=2, cutoff=_LIKE)
        if not close:  # a word added or left out
            close = [
                s for s in sorted(known) if s.startswith(f"{name}_") or name.startswith(f"{s}_")
            ]
        if close:
            found_names.append((name, " or ".join(close[:2])))
        elif name.startswith("OMNISYNC_"):
            found_names.append((name, None))
    return found_names


def setting_names() -> set[str]:
    """Every setting's variable name."""
    from omnisync.settings import Settings

    return {
        str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        for field in Settings.model_fields.values()
    }


def names_set(environ: Collection[str], dotenv: Path) -> set[str]:
    """The names given a value in ``environ`` or in the ``dotenv`` file."""
    names = set(environ)
    if dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8", errors="replace").splitlines():
            found = _DOTENV_NAME.match(line)
            if found:
                names.add(found.group(1))
    return names


_DOTENV_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
