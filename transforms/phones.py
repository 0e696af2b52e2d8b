"""Whether a phone number is valid, as phonenumbers says, at a fraction of its cost.

``phonenumbers.parse`` plus ``is_valid_number`` would be most of a sync's validation time
(docs/performance.md). The common Turkish shapes (``+90 532 123 45 67``, ``05321234567``,
``5321234567``) need neither the parser nor its type-by-type loop: their national significant
number is the digits after ``+90`` or the national prefix ``0``, and a number is valid when
phonenumbers' own metadata for the region matches it (the general pattern, then any one number
type, each with its possible lengths). That test is compiled once, from the metadata the library
ships, into one regular expression. Every other shape goes to phonenumbers itself.
``tests/transforms/test_phones.py`` holds the two answers equal with hypothesis.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneMetadata

DEFAULT_REGION = "TR"
#: the number types phonenumbers tries after the general pattern (``_number_type_helper``)
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _desc_pattern(desc: object) -> str | None:
    """One number description as a regular expression, its possible lengths included."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or pattern is None:
        return None
    lengths = [n for n in (getattr(desc, "possible_length", None) or ()) if n > 0]
    length = "(?=" + "|".join(rf"\d{{{n}}}$" for n in lengths) + ")" if lengths else ""
    return f"{length}(?:{pattern})$"


def _metadata(region: str) -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    return metadata


@functools.cache
def _valid_national_number(region: str) -> re.Pattern[str]:
    metadata = _metadata(region)
    general = _desc_pattern(metadata.general_desc)
    types = [p for p in (_desc_pattern(getattr(metadata, t, None)) for t in _TYPES) if p]
    return re.compile(f"(?={general})(?:{'|'.join(types)})")


@functools.cache
def _simple_shapes(region: str) -> re.Pattern[str]:
    """``+<country code>``, the national prefix, or no prefix, then digits and single spaces.
    Digits that start with the country code are left to the parser (it may read them as one)."""
    metadata = _metadata(region)
    code = str(metadata.country_code)
    prefix = re.escape(metadata.national_prefix or "")
    return re.compile(
        rf"\+{code} ?(?P<international>[1-9](?: ?\d)*)"
        + (rf"|{prefix} ?(?P<national>[1-9](?: ?\d)*)" if prefix else "")
        + rf"|(?!{code})(?P<bare>[1-9](?: ?\d)*)"
    )


def phonenumbers_says_valid(raw: str, region: str = DEFAULT_REGION) -> bool:
    """phonenumbers' own answer, the slow way."""
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(raw, region)))
    except phonenumbers.NumberParseException:
        return False


def phone_is_valid(raw: str | None, region: str = DEFAULT_REGION) -> bool | None:
    """Whether a phone number parses to a valid number (None when there is no number)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if region == DEFAULT_REGION:  # the shapes above are proven for this region's metadata
        shape = _simple_shapes(region).fullmatch(text)
        if shape is not None:
            digits = (shape["international"] or shape["national"] or shape["bare"]).replace(" ", "")
            return _valid_national_number(region).match(digits) is not None
    return phonenumbers_says_valid(text, region)
