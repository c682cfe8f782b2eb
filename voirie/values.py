"""One home for the small value conversions every layer needs: instants and optional text.

The store keeps instants in UTC; sqlite hands them back naive, numpy's ``datetime64``
wants them naive, the wire wants them aware. Every conversion between those forms goes
through here, so "a naive datetime means UTC" is decided once.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime


def aware_utc(moment: datetime) -> datetime:
    """An instant with its zone: a naive datetime is taken as UTC, an aware one is kept."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def naive_utc(moment: datetime) -> datetime:
    """An instant as a naive UTC datetime (what ``datetime64`` takes); naive means UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def as_instant(value: object, field: str) -> datetime:
    """``value`` when it is a datetime; a TypeError naming ``field`` otherwise (a row read
    back from the store or built by the pipeline that does not hold what it should)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{field}: expected a datetime, got {value!r}")
    return value


def optional_text(value: object) -> str | None:
    """``value`` as text; None for a missing value (None or a float NaN from pandas)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


# Characters no stored text may hold: C0 controls but tab, newline and carriage return;
# DEL and the C1 controls; surrogates, which only reach Python unpaired (from JSON's
# ``\ud800`` escapes) and cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None: a NUL byte (PostgreSQL refuses
    it), another control character or an unpaired surrogate (not encodable as UTF-8).
    Shared by the API's edge and the import's validator, so both refuse the same text."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return "contains a NUL byte"
    if 0xD800 <= code <= 0xDFFF:
        return f"contains an unpaired surrogate (U+{code:04X})"
    return f"contains a control character (U+{code:04X})"
