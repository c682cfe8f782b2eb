"""Turning raw source rows into validated report rows, vectorized over the whole table.

Every rejected row gets exactly one reason (the first problem found), naming the field.
Location checks that need the city's geometry (territory, swapped coordinates) happen after
enrichment, in the pipeline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from voirie.city import City, service_code_for
from voirie.errors import SourceError
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import PROBLEM, ROW, RawTable
from voirie.model import Flag

QUARANTINE_COLUMNS = ["row", "external_id", "field", "reason"]


@dataclass
class Validated:
    """Rows that passed validation, and the quarantined ones with their reasons."""

    reports: pd.DataFrame
    quarantine: pd.DataFrame


class _Checker:
    """Accumulates the first problem of each row."""

    def __init__(self, n: int) -> None:
        self.field = pd.Series([None] * n, dtype=object)
        self.reason = pd.Series([None] * n, dtype=object)

    def flag(self, mask: pd.Series | np.ndarray, field: str, reason: pd.Series | str) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool)) & self.reason.isna()
        if not mask.any():
            return  # the usual case: assigning nothing still costs pandas a lot per call
        self.field[mask] = field
        self.reason[mask] = reason[mask] if isinstance(reason, pd.Series) else reason

    @property
    def ok(self) -> pd.Series:
        return self.reason.isna()


def _text(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None or column not in frame:
        return pd.Series([None] * len(frame), dtype=object)
    # Stripped and tested on a numpy array rather than through Series.map and comparisons:
    # the same values, without pandas' fixed costs that dominate a one-report table.
    values = np.empty(len(frame), dtype=object)
    values[:] = [v.strip() if isinstance(v, str) else v for v in frame[column].to_numpy(object)]
    blank = pd.isna(values) | (values == "")
    return pd.Series(values.tolist(), index=frame.index).where(~blank, None)


def _coordinate(checker: _Checker, raw: pd.Series, field: str, limit: float) -> pd.Series:
    value = pd.to_numeric(raw, errors="coerce")
    checker.flag(raw.isna(), field, "missing")
    checker.flag(value.isna(), field, "not a number: " + raw.astype(str).str.slice(0, 40))
    checker.flag(~np.isfinite(value) | (value.abs() > limit), field, f"out of range ±{limit:g}")
    return value


def _times(
    checker: _Checker, raw: pd.Series, field: str, fmt: str | None, tz: str
) -> pd.Series:
    try:
        parsed = pd.to_datetime(raw, format=fmt or "ISO8601", errors="coerce", utc=False)
    except ValueError:
        # Several UTC offsets (winter and summer time) or naive and aware times together:
        # pandas refuses them as one column, so parse each value (the branch below merges).
        parsed = raw.map(
            lambda v: pd.to_datetime(v, format=fmt or "ISO8601", errors="coerce")
        ).astype(object)
    checker.flag(raw.isna(), field, "missing")
    checker.flag(parsed.isna(), field, "not a date: " + raw.astype(str).str.slice(0, 40))
    # Naive times are local to the city; aware ones keep their offset. Stored in UTC.
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        utc = parsed.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(parsed.dtype):
        local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        utc = local.dt.tz_convert("UTC")
    else:
        mixed = parsed.map(
            lambda t: t if pd.isna(t) or t.tzinfo
            else t.tz_localize(ZoneInfo(tz), ambiguous="NaT", nonexistent="shift_forward")
        )
        utc = pd.to_datetime(mixed, utc=True)
    checker.flag(utc.isna(), field, "ambiguous local time (clock change)")
    return utc


def _services(
    checker: _Checker, city: City, frame: pd.DataFrame, mapping: ColumnMapping
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Service code and group per row, and whether the code was derived for a category not
    yet in city.yaml."""
    code = _text(frame, mapping.service_code)
    name = _text(frame, mapping.service_name)
    group = _text(frame, mapping.group_name)
    known = code.map(lambda c: c if c in city.services else None)
    by_name = name.map(
        lambda n: s.code if n and (s := city.services_by_name.get(n.casefold())) else None
    )
    resolved = known.fillna(by_name)
    # A new sub-category of a known group is accepted (and routed to triage): sources add
    # categories over time, and losing those reports would be worse than sorting them.
    group_code = group.map(
        lambda g: grp.code if g and (grp := city.groups_by_name.get(g.casefold())) else None
    )
    group_known = group_code.notna()
    unresolved = resolved.isna() & group_known & name.notna()
    derived = pd.Series([None] * len(frame), dtype=object)
    derived[unresolved] = [
        service_code_for(g, n) for g, n in zip(group[unresolved], name[unresolved], strict=True)
    ]
    unknown = resolved.isna() & derived.notna()
    resolved = resolved.fillna(derived)
    shown = code.fillna(name).fillna(group).astype(str)
    field = mapping.service_code or mapping.service_name or "service"
    checker.flag(code.isna() & name.isna(), field, "missing category")
    checker.flag(resolved.isna(), field, "unknown category: " + shown.str.slice(0, 80))
    of_service = resolved.map(lambda c: s.group if (s := city.services.get(c)) else None)
    return resolved, of_service.fillna(group_code), unknown


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """A digest of what a report says, to tell a re-sent row from a changed one."""
    parts = frame[["service_code", "requested_at", "description", "address"]].astype(object)
    parts = parts.where(parts.notna(), "")
    parts["lon"] = frame["lon"].map("{:.7f}".format)
    parts["lat"] = frame["lat"].map("{:.7f}".format)
    joined = ["\x1f".join(map(str, values)) for values in parts.itertuples(index=False)]
    return pd.Series(
        [hashlib.sha1(text.encode()).hexdigest() for text in joined], index=frame.index
    )


def validate(table: RawTable, mapping: ColumnMapping, city: City) -> Validated:
    """Check every row of a raw table against a mapping and a city."""
    missing = [repr(c) for c in mapping.required_columns() if c not in table.columns]
    categories = mapping.category_columns()
    if not any(c in table.columns for c in categories):
        missing.append(" or ".join(map(repr, categories)))
    if missing:
        raise SourceError(
            f"missing column(s) {', '.join(missing)} required by the "
            f"{mapping.source!r} format; columns found: {', '.join(table.columns)}"
        )
    raw = table.rows.reset_index(drop=True)
    checker = _Checker(len(raw))
    checker.flag(raw[PROBLEM].notna(), "row", raw[PROBLEM])
    external_id = _text(raw, mapping.external_id)
    checker.flag(external_id.isna(), mapping.external_id, "missing")
    lat_raw, lon_raw = _text(raw, mapping.lat), _text(raw, mapping.lon)
    lat = _coordinate(checker, lat_raw, mapping.lat, 90)
    lon = _coordinate(checker, lon_raw, mapping.lon, 180)
    service_code, group, unknown = _services(checker, city, raw, mapping)
    requested_at = _times(
        checker, _text(raw, mapping.requested_at), mapping.requested_at, mapping.date_format,
        city.config.timezone,
    )
    reports = pd.DataFrame(
        {
            "row": raw[ROW],
            "external_id": external_id,
            "source": mapping.source,
            "service_code": service_code,
            "group": group,
            Flag.UNKNOWN_SERVICE: unknown,
            "description": _text(raw, mapping.description),
            "address": _text(raw, mapping.address),
            "channel": _text(raw, mapping.channel),
            "media_url": _text(raw, mapping.media_url),
            "lon": lon,
            "lat": lat,
            "requested_at": requested_at,
            "contact_name": _text(raw, mapping.contact_name),
            "contact_email": _text(raw, mapping.contact_email),
            "contact_phone": _text(raw, mapping.contact_phone),
            "device_id": _text(raw, mapping.device_id),
        }
    )
    reports["content_hash"] = content_hash(reports)
    # Repeats inside the file: identical rows count once, differing ones are quarantined.
    first = ~reports.duplicated("external_id") | reports["external_id"].isna()
    same = reports.duplicated(["external_id", "content_hash"])
    checker.flag(
        ~first & ~same & checker.ok, mapping.external_id,
        "repeated in this file with different content",
    )
    quarantine = pd.DataFrame(
        {"row": raw[ROW], "external_id": external_id, "field": checker.field,
         "reason": checker.reason}
    )[~checker.ok]
    keep = checker.ok & ~(~first & same)
    return Validated(reports[keep].reset_index(drop=True), quarantine.reset_index(drop=True))

