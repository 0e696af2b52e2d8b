"""Customer fields, DRF value formats and the stored form of one customer.

Datetimes are kept as integer microseconds since the epoch (UTC) so that ordering and range filters
are integer comparisons; they are rendered the way DRF renders them: ISO 8601 in UTC with ``Z``, and
microseconds only when they are non-zero.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)  # renders without an offset: cheaper than replacing it

#: Every documented field of a customer response, in the documented order. Kept apart from
#: ``transforms/schema.py`` on purpose: the sandbox stands for the server, so a mistake in the
#: product's field list must show up as a test failure, not be shared by both sides.
FIELDS: tuple[str, ...] = (
    "pk",
    "channel",
    "email",
    "first_name",
    "last_name",
    "phone_number",
    "is_active",
    "channel_code",
    "erp_code",
    "extra_field",
    "modified_date",
    "created_date",
    "date_joined",
    "email_allowed",
    "sms_allowed",
    "call_allowed",
    "gender",
    "attributes",
    "user_type",
    "date_of_birth",
    "attributes_kwargs",
    "localized_attributes",
    "localized_attributes_kwargs",
)

GENDERS = ("male", "female")
USER_TYPES = ("registered", "guest")
CHANNELS = (1, 2, 3)


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def drf_datetime(us: int) -> str:
    """Render like DRF: ``2022-12-08T10:49:45.794533Z``, or ``2022-12-08T10:49:45Z``."""
    return (_NAIVE_EPOCH + dt.timedelta(microseconds=us)).isoformat() + "Z"


def now_us() -> int:
    return to_us(dt.datetime.now(dt.UTC))


@dataclass(slots=True)
class Customer:
    """One stored customer: the API's JSON object plus integer timestamps and its encoded body."""

    data: dict[str, Any]
    modified_us: int
    created_us: int
    blob: bytes = b""

    @property
    def pk(self) -> int:
        return int(self.data["pk"])

    def encode(self) -> None:
        self.data["modified_date"] = drf_datetime(self.modified_us)
        self.data["created_date"] = drf_datetime(self.created_us)
        # orjson hands back its whole output buffer (kilobytes for a body of a few hundred
        # bytes), and a store keeps a million of these: keep an exact-size copy.
        self.blob = bytes(memoryview(orjson.dumps(self.data)))

    @classmethod
    def build(cls, data: dict[str, Any], modified_us: int, created_us: int) -> Customer:
        customer = cls(
            data={f: data.get(f) for f in FIELDS}, modified_us=modified_us, created_us=created_us
        )
        customer.encode()
        return customer

    def replaced(self, changes: dict[str, Any], modified_us: int) -> Customer:
        """A new version with ``changes`` applied and ``modified_date`` set."""
        data = dict(self.data)
        data.update(changes)
        return Customer.build(data, modified_us, self.created_us)
