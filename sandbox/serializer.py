"""DRF-style validation of customer bodies for POST (create), PUT (update) and PATCH (partial).

Error messages are DRF's own, field by field, so that clients see what a real Omnitron answers.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import msgspec

from sandbox.records import CHANNELS, GENDERS, USER_TYPES

# Django's EmailValidator, simplified to the same verdicts on everyday input.
_EMAIL_RE = re.compile(
    r"^[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
REQUIRED_ON_CREATE = ("email", "channel", "channel_code")
REQUIRED_ON_PUT = ("email", "channel", "channel_code", "extra_field")
BOOLEAN_FIELDS = ("is_active", "email_allowed", "sms_allowed", "call_allowed")
STRING_FIELDS = ("first_name", "last_name")
NULLABLE_STRING_FIELDS = ("phone_number", "erp_code")
JSON_FIELDS = ("extra_field", "attributes")
WRITABLE = (
    "email",
    "channel",
    "channel_code",
    "first_name",
    "last_name",
    "phone_number",
    "is_active",
    "erp_code",
    "extra_field",
    "date_joined",
    "email_allowed",
    "sms_allowed",
    "call_allowed",
    "gender",
    "attributes",
    "user_type",
    "date_of_birth",
)
DEFAULTS: dict[str, Any] = {
    "first_name": "",
    "last_name": "",
    "phone_number": None,
    "is_active": True,
    "erp_code": None,
    "extra_field": {},
    "date_joined": None,
    "email_allowed": False,
    "sms_allowed": False,
    "call_allowed": False,
    "gender": None,
    "attributes": {},
    "user_type": None,
    "date_of_birth": None,
    "attributes_kwargs": {},
    "localized_attributes": {},
    "localized_attributes_kwargs": {},
}


class ValidationFailed(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _field(name: str, value: Any) -> Any:
    """The validated value of one field, or ValueError with DRF's message."""
    if value is None:
        if name in (
            "email",
            "channel",
            "channel_code",
            "extra_field",
            *BOOLEAN_FIELDS,
            *STRING_FIELDS,
        ):
            raise ValueError("This field may not be null.")
        return None
    if name == "email":
        if not isinstance(value, str):
            raise ValueError("Not a valid string.")
        if not value.strip():
            raise ValueError("This field may not be blank.")
        if not _EMAIL_RE.match(value.strip()):
            raise ValueError("Enter a valid email address.")
        return value.strip()
    if name == "channel":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"Incorrect type. Expected pk value, received {type(value).__name__}.")
        try:
            pk = int(value)
        except ValueError:
            raise ValueError(
                f"Incorrect type. Expected pk value, received {type(value).__name__}."
            ) from None
        if pk not in CHANNELS:
            raise ValueError(f'Invalid pk "{pk}" - object does not exist.')
        return pk
    if name == "channel_code":
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError("Not a valid string.")
        if not str(value).strip():
            raise ValueError("This field may not be blank.")
        return str(value)
    if name in BOOLEAN_FIELDS:
        if isinstance(value, bool):
            return value
        if value in ("true", "True", 1, "1"):
            return True
        if value in ("false", "False", 0, "0"):
            return False
        raise ValueError("Must be a valid boolean.")
    if name in STRING_FIELDS or name in NULLABLE_STRING_FIELDS:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError("Not a valid string.")
        return str(value)
    if name in JSON_FIELDS:
        if not isinstance(value, dict):
            raise ValueError(
                f'Expected a dictionary of items but got type "{type(value).__name__}".'
            )
        return value
    if name == "gender" or name == "user_type":
        choices = GENDERS if name == "gender" else USER_TYPES
        if value not in choices:
            raise ValueError(f'"{value}" is not a valid choice.')
        return value
    if name == "date_of_birth":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError(
                "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
            ) from None
    if name == "date_joined":
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def validate(body: Any, *, required: tuple[str, ...]) -> dict[str, Any]:
    """The validated writable fields of ``body``; ValidationFailed carries every error at once."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(body).__name__}."
                ]
            }
        )
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name in required:
        if name not in body:
            errors[name] = ["This field is required."]
    for name in WRITABLE:
        if name in body and name not in errors:
            try:
                clean[name] = _field(name, body[name])
            except ValueError as exc:
                errors[name] = [str(exc)]
    if errors:
        raise ValidationFailed(errors)
    return clean


_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def shuffled_fields(body: bytes, rng: random.Random) -> bytes:
    """A JSON object's members in a random order, each key and value as its own text."""
    fields = list(_FIELDS.decode(body).items())
    rng.shuffle(fields)
    return b"{" + b",".join(msgspec.json.encode(k) + b":" + bytes(v) for k, v in fields) + b"}"
