"""Deterministic, realistic seed customers.

The same ``seed`` always gives the same customers. The data carries what real Omnitron data
carries: Turkish names, phone numbers in the formats seen in practice, shared emails, missing
erp_codes, JSON objects, clusters of identical ``modified_date`` values from imports, and a small
share of records that break business rules (an invalid email, a birth date in the future, an
unknown choice value) so that validation has something to catch.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import unicodedata
from collections.abc import Iterator
from typing import Any

from sandbox.records import CHANNELS, GENDERS, USER_TYPES, Customer, to_us

FIRST_NAMES = (
    "Ayşe",
    "Fatma",
    "Emine",
    "Hatice",
    "Zeynep",
    "Elif",
    "Özlem",
    "Gülşen",
    "Şule",
    "Çiğdem",
    "Büşra",
    "İpek",
    "Ece",
    "Dilek",
    "Sevgi",
    "Mehmet",
    "Mustafa",
    "Ahmet",
    "Ali",
    "Hüseyin",
    "İbrahim",
    "Hasan",
    "Ömer",
    "Yiğit",
    "Barış",
    "Çağrı",
    "Doğan",
    "Gökhan",
    "Şahin",
    "Ümit",
    "Uğur",
    "Özgür",
    "Tolga",
    "Serkan",
    "Onur",
    "Kübra",
    "Gülay",
    "Nur",
    "İsmail",
    "Oğuz",
)
LAST_NAMES = (
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Çelik",
    "Yıldız",
    "Yıldırım",
    "Öztürk",
    "Aydın",
    "Özdemir",
    "Arslan",
    "Doğan",
    "Kılıç",
    "Aslan",
    "Çetin",
    "Kara",
    "Koç",
    "Kurt",
    "Özkan",
    "Şimşek",
    "Polat",
    "Güneş",
    "Erdoğan",
    "Akgül",
    "Bulut",
    "Türk",
    "Uçar",
    "İnce",
    "Işık",
    "Güler",
)
MOBILE_PREFIXES = (
    "530",
    "532",
    "533",
    "535",
    "536",
    "541",
    "542",
    "543",
    "544",
    "505",
    "506",
    "555",
)
DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com", "outlook.com", "akinon.com", "example.com.tr")
TIERS = ("bronze", "silver", "gold", "platinum")
SOURCES = ("web", "mobile_app", "store", "marketplace")

#: Seeded history ends here, so that a seed is reproducible whatever the day it runs.
ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HISTORY_START = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
_TR_ASCII = str.maketrans({"ı": "i", "İ": "i", "ş": "s", "Ş": "s", "ğ": "g", "Ğ": "g"})


@functools.lru_cache(maxsize=1024)  # called with the same few names for every seed customer
def ascii_slug(text: str) -> str:
    """``Çiğdem`` -> ``cigdem``: how people write their names in email addresses."""
    folded = unicodedata.normalize("NFKD", text.translate(_TR_ASCII))
    return "".join(c for c in folded if c.isascii() and c.isalnum()).lower()


def phone_number(rng: random.Random) -> str | None:
    """A Turkish mobile number in one of the formats found in real customer data, or None."""
    if rng.random() < 0.2:
        return None
    prefix = rng.choice(MOBILE_PREFIXES)
    rest = f"{rng.randrange(10_000_000):07d}"
    style = rng.randrange(5)
    if style == 0:
        return f"0{prefix}{rest}"
    if style == 1:
        return f"+90 {prefix} {rest[:3]} {rest[3:5]} {rest[5:]}"
    if style == 2:
        return f"0{prefix} {rest[:3]} {rest[3:5]} {rest[5:]}"
    if style == 3:
        return f"+90{prefix}{rest}"
    return f"{prefix}{rest}"


def customer_fields(rng: random.Random, pk: int, created: dt.datetime) -> dict[str, Any]:
    """The writable fields of one plausible customer (no pk timestamps)."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{ascii_slug(first)}.{ascii_slug(last)}{pk}@{rng.choice(DOMAINS)}"
    roll = rng.random()
    if roll < 0.005:
        email = f"{ascii_slug(first)}.{ascii_slug(last)}{pk}@"  # rejected by validation
    elif roll < 0.008:
        email = f"{ascii_slug(first)} {ascii_slug(last)}"
    birth: str | None = None
    if rng.random() < 0.6:
        birth = dt.date(
            rng.randrange(1950, 2006), rng.randrange(1, 13), rng.randrange(1, 29)
        ).isoformat()
        if rng.random() < 0.005:
            birth = dt.date(rng.randrange(2031, 2040), 1, 1).isoformat()  # in the future
    gender: str | None = rng.choice((*GENDERS, None))
    if rng.random() < 0.002:
        gender = "unknown"  # a choice value this client does not know
    extra: dict[str, Any] = {}
    if rng.random() < 0.7:
        extra = {"loyalty_tier": rng.choice(TIERS), "source": rng.choice(SOURCES)}
        if rng.random() < 0.3:
            extra["kvkk_consent"] = {"version": rng.randrange(1, 4), "accepted": rng.random() < 0.9}
    attributes: dict[str, Any] = {}
    if rng.random() < 0.5:
        attributes = {
            "logged_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        }
    joined = created - dt.timedelta(seconds=rng.randrange(0, 86_400 * 5))
    return {
        "channel": rng.choices(CHANNELS, weights=(6, 3, 1))[0],
        "email": email,
        "first_name": first if rng.random() > 0.03 else "",
        "last_name": last if rng.random() > 0.03 else "",
        "phone_number": phone_number(rng),
        "is_active": rng.random() < 0.92,
        "channel_code": f"{pk + 7_000_000}",
        "erp_code": None if rng.random() < 0.25 else f"C{rng.randrange(10**7):07d}",
        "extra_field": extra,
        "date_joined": joined.isoformat().replace("+00:00", "Z") if rng.random() < 0.7 else None,
        "email_allowed": rng.random() < 0.5,
        "sms_allowed": rng.random() < 0.4,
        "call_allowed": rng.random() < 0.3,
        "gender": gender,
        "attributes": attributes,
        "user_type": rng.choice((*USER_TYPES, None)),
        "date_of_birth": birth,
        "attributes_kwargs": {},
        "localized_attributes": {},
        "localized_attributes_kwargs": {},
    }


def seed_customers(count: int, seed: int) -> Iterator[Customer]:
    """``count`` customers with pks 1..count, the same ones for the same ``seed``."""
    rng = random.Random(seed)
    span_us = to_us(ANCHOR) - to_us(HISTORY_START)
    start_us = to_us(HISTORY_START)
    shared_emails: list[str] = []
    import_stamp: int | None = None
    for pk in range(1, count + 1):
        created_us = start_us + rng.randrange(span_us)
        created = dt.datetime.fromtimestamp(created_us / 1e6, dt.UTC)
        data = customer_fields(rng, pk, created)
        if shared_emails and rng.random() < 0.03:
            data["email"] = rng.choice(shared_emails)
        elif rng.random() < 0.01:
            shared_emails.append(data["email"])
        # Imports stamp many rows with one modified_date: keep a stamp for a short run of pks.
        if import_stamp is not None and rng.random() < 0.8:
            modified_us = import_stamp
        else:
            import_stamp = None
            modified_us = created_us + rng.randrange(max(1, to_us(ANCHOR) - created_us))
            if rng.random() < 0.01:
                import_stamp = modified_us
        modified_us = max(modified_us, created_us)
        if rng.random() < 0.02:
            modified_us -= modified_us % 1_000_000  # whole seconds: DRF omits the microseconds
        data["pk"] = pk
        yield Customer.build(data, modified_us, min(created_us, modified_us))
