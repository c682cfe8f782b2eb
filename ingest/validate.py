"""Turning raw source rows into validated report rows, vectorized over the whole table.

Every rejected row gets exactly one reason (the first problem found), naming the field.
Location checks that need the city's geometry (territory, swapped coordinates) happen after
enrichment, in the pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from voirie.city import CODE_PATTERN, City, service_code_for
from voirie.errors import InvalidInput, SourceError
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.points import FORMS, split_points
from voirie.ingest.reproject import to_wgs84
from voirie.ingest.sources import PROBLEM, ROW, RawTable
from voirie.model import Flag, Report
from voirie.values import text_problem

QUARANTINE_COLUMNS = ["row", "external_id", "field", "reason"]
CHANGED_CONTENT = (
    "already imported with different content "
    "(a correction must be recorded as an event, not re-imported)"
)
# Quarantine reasons, shared by the bulk checks and ``validate_report``.
_MISSING = "missing"
_NOT_A_NUMBER = "not a number: "
_NOT_A_DATE = "not a date: "
_AMBIGUOUS_TIME = "ambiguous local time (clock change)"
_MISSING_CATEGORY = "missing category"
_UNKNOWN_CATEGORY = "unknown category: "
MAX_FIELD_BYTES = 128 * 1024
"""bytes of UTF-8 one field of a source row may hold (a description is a few hundred)"""
_TOO_LARGE = f"larger than {MAX_FIELD_BYTES // 1024} KiB"
EARLIEST_REPORT = datetime(1990, 1, 1, tzinfo=UTC)
"""No street report of a city's records is older: an earlier time is a typo (``0001``)."""
FUTURE_SLACK = timedelta(days=1)
"""How far ahead of the server's clock a report time may be (clocks drift, zones differ)."""
_IMPLAUSIBLE_TIME = (
    f"out of range: before {EARLIEST_REPORT:%Y-%m-%d} or more than a day in the future"
)
_SHOWN = 40
"""characters of a bad value repeated in its reason (categories: ``_SHOWN_CATEGORY``)"""
_SHOWN_CATEGORY = 80


def _out_of_range(limit: float) -> str:
    """The reason of a coordinate beyond ±``limit`` (or infinite; with no limit, a
    coordinate of another system before its conversion, only infinite)."""
    return f"out of range ±{limit:g}" if math.isfinite(limit) else "not a finite number"


@dataclass
class Validated:
    """Rows that passed validation, and the quarantined ones with their reasons."""

    reports: pd.DataFrame
    quarantine: pd.DataFrame
    new_categories: dict[str, str] = dataclasses.field(default_factory=dict)
    """The code given to each category city.yaml does not list, and the source's name of
    it (its code where it has no name)."""


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


def stripped_cells(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None or column not in frame:
        return pd.Series([None] * len(frame), dtype=object)
    # Stripped and tested on a numpy array rather than through Series.map and comparisons:
    # the same values, without pandas' fixed costs that dominate a one-report table.
    values = np.empty(len(frame), dtype=object)
    values[:] = [v.strip() if isinstance(v, str) else v for v in frame[column].to_numpy(object)]
    values[pd.isna(values) | (values == "")] = None  # None, not pandas' float NaN
    return pd.Series(values, index=frame.index, dtype=object)


def _coordinate(checker: _Checker, raw: pd.Series, field: str, limit: float) -> pd.Series:
    value = pd.to_numeric(raw, errors="coerce")
    unread = value.isna() & raw.notna()
    if unread.any():
        # A decimal comma (a French spreadsheet's "48,8566"): looked for only in the cells
        # that are not numbers as they are, so a file of decimal points pays nothing.
        commas = raw[unread].str.fullmatch(_DECIMAL_COMMA.pattern).fillna(False).astype(bool)
        fixed = raw[unread][commas].str.replace(",", ".", regex=False)
        value = value.astype(float)
        value[fixed.index] = pd.to_numeric(fixed, errors="coerce")
    checker.flag(raw.isna(), field, _MISSING)
    checker.flag(value.isna(), field, _NOT_A_NUMBER + raw.astype(str).str.slice(0, _SHOWN))
    checker.flag(~np.isfinite(value) | (value.abs() > limit), field, _out_of_range(limit))
    return value


def _positions(
    checker: _Checker, raw: pd.DataFrame, mapping: ColumnMapping, columns: list[str]
) -> tuple[pd.Series, pd.Series]:
    """Longitudes and latitudes of the rows: from the lat and lon columns, or a point
    column (``ingest.points``), in WGS 84 or the mapping's ``crs`` (``ingest.reproject``:
    each cell checked as a number, the points converted, then checked as degrees)."""
    if mapping.reads_point(columns):
        point = stripped_cells(raw, mapping.point)
        x_raw, y_raw = split_points(point)
        shown = point.astype(str).str.slice(0, _SHOWN)
        x_field = y_field = str(mapping.point)
        checker.flag(point.notna() & x_raw.isna(), x_field, f"not a point ({FORMS}): " + shown)
    else:
        x_raw, y_raw = stripped_cells(raw, mapping.lon), stripped_cells(raw, mapping.lat)
        x_field, y_field = str(mapping.lon), str(mapping.lat)
    if mapping.crs is None:
        lat = _coordinate(checker, y_raw, y_field, 90)
        return _coordinate(checker, x_raw, x_field, 180), lat
    y = _coordinate(checker, y_raw, y_field, math.inf)
    x = _coordinate(checker, x_raw, x_field, math.inf)
    lon_values, lat_values = to_wgs84(x.to_numpy(), y.to_numpy(), mapping.crs)
    lon, lat = pd.Series(lon_values, index=x.index), pd.Series(lat_values, index=y.index)
    converted = f" once converted from {mapping.crs}"
    checker.flag(~np.isfinite(lat) | (lat.abs() > 90), y_field, _out_of_range(90) + converted)
    checker.flag(~np.isfinite(lon) | (lon.abs() > 180), x_field, _out_of_range(180) + converted)
    return lon, lat


def positions(table: RawTable, mapping: ColumnMapping) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of every row as validation reads them (NaN for a row
    without a valid position); ``SourceError`` when the source lacks the columns."""
    lacking = [c for c in mapping.position_columns(table.columns) if c not in table.columns]
    if lacking:
        raise SourceError(
            f"no column {', '.join(map(repr, lacking))} (the mapping's position); "
            f"columns found: {', '.join(table.columns)}"
        )
    raw = table.rows.reset_index(drop=True)
    checker = _Checker(len(raw))
    lon, lat = _positions(checker, raw, mapping, table.columns)
    ok = checker.ok.to_numpy()
    return np.where(ok, lon.to_numpy(float), np.nan), np.where(ok, lat.to_numpy(float), np.nan)


EPOCHS: dict[str, Literal["s", "ms"]] = {"epoch": "s", "epoch_ms": "ms"}
"""Formats of a time as a count since 1970-01-01 UTC: seconds, or milliseconds (how ArcGIS
writes dates in GeoJSON)."""


def _parsed_times(raw: pd.Series, fmt: str) -> pd.Series:
    """The times of ``raw`` in format ``fmt`` (NaT where a value is not in it)."""
    if fmt in EPOCHS:
        counts = pd.to_numeric(raw.where(raw.str.fullmatch(r"-?\d+(?:\.\d*)?", na=False)))
        times: pd.Series = pd.to_datetime(counts, unit=EPOCHS[fmt], utc=True, errors="coerce")
        return times
    try:
        return pd.to_datetime(raw, format=fmt, errors="coerce", utc=False)
    except ValueError:
        # Several UTC offsets (winter and summer time) or naive and aware times together:
        # pandas refuses them as one column, so parse each value (``_times`` merges them).
        return raw.map(lambda v: pd.to_datetime(v, format=fmt, errors="coerce")).astype(object)


def _times(
    checker: _Checker, raw: pd.Series, field: str, formats: tuple[str, ...], tz: str
) -> pd.Series:
    """The times of ``raw`` in UTC, each value read in the first of ``formats`` that reads it."""
    parsed = _parsed_times(raw, formats[0])
    for other in formats[1:]:
        unread = parsed.isna() & raw.notna()
        if not unread.any():
            break
        again = _parsed_times(raw[unread], other)
        if again.notna().any():
            parsed = parsed.astype(object)
            parsed[unread] = again.astype(object)
    checker.flag(raw.isna(), field, _MISSING)
    checker.flag(parsed.isna(), field, _NOT_A_DATE + raw.astype(str).str.slice(0, _SHOWN))
    # Naive times are local to the city; aware ones keep their offset. Stored in UTC.
    utc: pd.Series
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        utc = parsed.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(parsed.dtype):
        local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        utc = local.dt.tz_convert("UTC")
    else:
        mixed = parsed.map(
            lambda t: (
                t
                if pd.isna(t) or t.tzinfo
                else t.tz_localize(ZoneInfo(tz), ambiguous="NaT", nonexistent="shift_forward")
            )
        )
        utc = pd.to_datetime(mixed, utc=True)
    checker.flag(utc.isna(), field, _AMBIGUOUS_TIME)
    latest = pd.Timestamp(datetime.now(UTC) + FUTURE_SLACK)
    implausible = utc.notna() & ((utc < pd.Timestamp(EARLIEST_REPORT)) | (utc > latest))
    checker.flag(implausible, field, _IMPLAUSIBLE_TIME)
    return utc


def _text_cells(checker: _Checker, raw: pd.DataFrame, mapping: ColumnMapping) -> None:
    """Quarantine rows with a cell that cannot be stored (a NUL byte, a control character,
    an unpaired surrogate) or is larger than ``MAX_FIELD_BYTES``, naming its column.

    Each column is tested at once, joined by newlines (allowed), so a clean column (the
    usual case) costs one regular-expression scan; the cells are tested one by one only
    when it holds a problem."""
    for column in mapping.columns():
        if column not in raw:
            continue
        texts = [v if isinstance(v, str) else "" for v in raw[column].to_numpy(object)]
        if text_problem("\n".join(texts)) is not None:
            problems = pd.Series([text_problem(t) for t in texts], dtype=object)
            checker.flag(problems.notna(), column, problems)
        # A character is at most 4 bytes of UTF-8: shorter texts need no encoding.
        if max(map(len, texts), default=0) * 4 > MAX_FIELD_BYTES:
            large = [
                len(t) * 4 > MAX_FIELD_BYTES and len(t.encode()) > MAX_FIELD_BYTES for t in texts
            ]
            checker.flag(np.array(large, dtype=bool), column, _TOO_LARGE)


def _services(
    checker: _Checker, city: City, frame: pd.DataFrame, mapping: ColumnMapping
) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Service code and group per row, whether the code was given for a category not yet
    in city.yaml, and the source's name of the category (its code where it has none)."""
    code = stripped_cells(frame, mapping.service_code)
    name = stripped_cells(frame, mapping.service_name)
    group = stripped_cells(frame, mapping.group_name)
    known = code.map(lambda c: c if c in city.services else None)
    by_name = name.map(
        lambda n: s.code if n and (s := city.services_by_name.get(n.casefold())) else None
    )
    resolved = known.fillna(by_name)
    # A category city.yaml does not list is accepted (and routed to triage): sources add
    # categories over time, and losing those reports would be worse than sorting them. A
    # new sub-category of a known group gets a code derived from the two names and its
    # group's thresholds; any other keeps the source's code when it is one city.yaml
    # could list (else one derived from its group or own name), has no group, and voirie's default
    # thresholds (``DedupePolicy.set_thresholds``). A city whose catalogue must be complete
    # (``new_categories: quarantine``) sets them aside instead.
    group_code = group.map(
        lambda g: grp.code if g and (grp := city.groups_by_name.get(g.casefold())) else None
    )
    unresolved = resolved.isna() & (code.notna() | name.notna())
    field = mapping.service_code or mapping.service_name or "service"
    checker.flag(code.isna() & name.isna(), field, _MISSING_CATEGORY)
    if city.config.new_categories == "quarantine":
        shown = code.fillna(name).astype(str).str.slice(0, _SHOWN_CATEGORY)
        checker.flag(unresolved, field, _UNKNOWN_CATEGORY + shown)
        unresolved[:] = False
    in_group = unresolved & group_code.notna() & name.notna()
    derived = pd.Series([None] * len(frame), dtype=object)
    derived[in_group] = [
        service_code_for(g, n) for g, n in zip(group[in_group], name[in_group], strict=True)
    ]
    other = unresolved & ~in_group
    derived[other] = [
        c if c is not None and CODE_PATTERN.fullmatch(c) else service_code_for(g or n or c, n or c)
        for c, n, g in zip(code[other], name[other], group[other], strict=True)
    ]
    resolved = resolved.fillna(derived)
    of_service = resolved.map(lambda c: s.group if (s := city.services.get(c)) else None)
    return resolved, of_service.fillna(group_code), unresolved, name.fillna(code)


def report_hash(
    service_code: object,
    requested_at: object,
    description: object,
    address: object,
    lon: float,
    lat: float,
) -> str:
    """A digest of what one report says, to tell a re-sent report from a changed one.

    Text parts are taken as ``str`` (``None`` and ``""`` alike give nothing), the time as
    ``str`` of its UTC timestamp, coordinates to 7 decimals (about 1 cm): the bulk
    ``content_hash`` and the per-report ``validate_report`` give the same digest.
    """
    text = "\x1f".join(
        (
            "" if service_code is None else str(service_code),
            "" if requested_at is None else str(requested_at),
            "" if description is None else str(description),
            "" if address is None else str(address),
            f"{lon:.7f}",
            f"{lat:.7f}",
        )
    )
    # Hashed before quarantine: a lone surrogate (a row refused later) must not raise.
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """``report_hash`` of every row of validated reports (missing values as blanks)."""
    parts = frame[["service_code", "requested_at", "description", "address"]].astype(object)
    parts = parts.where(parts.notna(), "")
    columns = [parts[name].to_numpy() for name in parts.columns]
    coordinates = [frame[name].to_numpy() for name in ("lon", "lat")]
    return pd.Series(
        [report_hash(*values) for values in zip(*columns, *coordinates, strict=True)],
        index=frame.index,
    )


def validate(table: RawTable, mapping: ColumnMapping, city: City) -> Validated:
    """Check every row of a raw table against a mapping and a city."""
    missing = mapping.missing_columns(table.columns)
    categories = mapping.category_columns()
    if not any(c in table.columns for c in categories):
        missing.append(" or ".join(map(repr, categories)))
    if missing:
        raise SourceError(
            f"missing column(s) {', '.join(missing)} required by the "
            f"{mapping.source!r} format; columns found: {', '.join(table.columns)}"
        )
    if twice := [repr(c) for c in mapping.columns() if c in table.repeated]:
        raise SourceError(
            f"column(s) {', '.join(twice)} named more than once in the header: which one "
            f"holds the field is unclear; rename the others"
        )
    raw = table.rows.reset_index(drop=True)
    checker = _Checker(len(raw))
    checker.flag(raw[PROBLEM].notna(), "row", raw[PROBLEM])
    _text_cells(checker, raw, mapping)
    external_id = stripped_cells(raw, mapping.external_id)
    checker.flag(external_id.isna(), mapping.external_id, "missing")
    lon, lat = _positions(checker, raw, mapping, table.columns)
    service_code, group, unknown, named = _services(checker, city, raw, mapping)
    requested_at = _times(
        checker,
        stripped_cells(raw, mapping.requested_at),
        mapping.requested_at,
        mapping.date_formats(),
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
            "description": stripped_cells(raw, mapping.description),
            "address": stripped_cells(raw, mapping.address),
            "channel": stripped_cells(raw, mapping.channel),
            "media_url": stripped_cells(raw, mapping.media_url),
            "lon": lon,
            "lat": lat,
            "requested_at": requested_at,
            "contact_name": stripped_cells(raw, mapping.contact_name),
            "contact_email": stripped_cells(raw, mapping.contact_email),
            "contact_phone": stripped_cells(raw, mapping.contact_phone),
            "device_id": stripped_cells(raw, mapping.device_id),
        }
    )
    reports["content_hash"] = content_hash(reports)
    # Repeats inside the file: identical rows count once, differing ones are quarantined.
    first = ~reports.duplicated("external_id") | reports["external_id"].isna()
    same = reports.duplicated(["external_id", "content_hash"])
    checker.flag(
        ~first & ~same & checker.ok,
        mapping.external_id,
        "repeated in this file with different content",
    )
    quarantine = pd.DataFrame(
        {
            "row": raw[ROW],
            "external_id": external_id,
            "field": checker.field,
            "reason": checker.reason,
        }
    )[~checker.ok]
    keep = checker.ok & ~(~first & same)
    new = keep & unknown
    new_names: dict[str, str] = dict(zip(service_code[new], named[new], strict=True))
    return Validated(
        reports[keep].reset_index(drop=True), quarantine.reset_index(drop=True), new_names
    )


# What ``pd.to_numeric`` reads as a number (ASCII digits; no ``_`` separators, unlike
# ``float``), so that a submitted coordinate is refused exactly when an imported one is.
_NUMBER = re.compile(
    r"[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?|inf(?:inity)?|nan)",
    re.ASCII | re.IGNORECASE,
)
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")
"""A coordinate written with a decimal comma, as spreadsheets write it in French, German...
("48,8566"): one comma between digits. A coordinate is never over 180, so the comma cannot
group thousands; anything else with a comma ("1,234,5", "48,") is not a number."""


def validate_report(report: Report, city: City) -> dict[str, object]:
    """The validation columns of one report, as ``validate`` gives them for the one-row
    table of the report's fields as text (``Intake.submit``'s; mapping by name).

    Plain Python values (``None`` when missing, ``requested_at`` a UTC ``datetime``), in
    microseconds rather than pandas' milliseconds. Raises ``InvalidInput`` with the field
    and reason the import would quarantine the row with: the first problem, checked in
    the same order. A time that a UTC ``datetime`` cannot hold (before year 1 or after
    9999 once in UTC) is refused as not a date.
    """
    _check_text_fields(report)
    external_id = _clean(report.external_id)
    if external_id is None:
        raise _refused("external_id", _MISSING)
    lat = _coordinate_value(report.lat, "lat", 90)
    lon = _coordinate_value(report.lon, "lon", 180)
    service_code = _clean(report.service_code)
    if service_code is None:
        raise _refused("service_code", _MISSING_CATEGORY)
    service = city.services.get(service_code)
    if service is None:
        raise _refused("service_code", _UNKNOWN_CATEGORY + service_code[:_SHOWN_CATEGORY])
    requested_at = _time_value(report.requested_at, "requested_at", city.config.timezone)
    description, address = _clean(report.description), _clean(report.address)
    contact = report.contact
    return {
        "row": 1,
        "external_id": external_id,
        "source": report.source,
        "service_code": service_code,
        "group": service.group,
        Flag.UNKNOWN_SERVICE.value: False,
        "description": description,
        "address": address,
        "channel": _clean(report.channel),
        "media_url": _clean(report.media_url),
        "lon": lon,
        "lat": lat,
        "requested_at": requested_at,
        "contact_name": _clean(contact.name),
        "contact_email": _clean(contact.email),
        "contact_phone": _clean(contact.phone),
        "device_id": _clean(contact.device_id),
        "content_hash": report_hash(service_code, requested_at, description, address, lon, lat),
    }


def _check_text_fields(report: Report) -> None:
    """``_text_cells`` of one report: its text fields in the mapping's order."""
    contact = report.contact
    fields = {
        "external_id": report.external_id,
        "service_code": report.service_code,
        "description": report.description,
        "address": report.address,
        "channel": report.channel,
        "media_url": report.media_url,
        "contact_name": contact.name,
        "contact_email": contact.email,
        "contact_phone": contact.phone,
        "device_id": contact.device_id,
    }
    for field, value in fields.items():
        if not isinstance(value, str):
            continue
        problem = text_problem(value)
        if problem is not None:
            raise _refused(field, problem)
        if len(value) * 4 > MAX_FIELD_BYTES and len(value.encode()) > MAX_FIELD_BYTES:
            raise _refused(field, _TOO_LARGE)


def _refused(field: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{field}: {reason}", field=field)


def _clean(value: object) -> str | None:
    """A value as the bulk path reads its text: stripped, ``None`` when blank or missing."""
    return None if value is None else str(value).strip() or None


def _coordinate_value(value: object, field: str, limit: float) -> float:
    """``_coordinate`` of one value: its number, or ``InvalidInput``."""
    text = _clean(value)
    if text is None:
        raise _refused(field, _MISSING)
    if _NUMBER.fullmatch(text):
        number = float(text)
    elif _DECIMAL_COMMA.fullmatch(text):
        number = float(text.replace(",", "."))
    else:
        number = math.nan
    if math.isnan(number):
        raise _refused(field, _NOT_A_NUMBER + text[:_SHOWN])
    if math.isinf(number) or abs(number) > limit:
        raise _refused(field, _out_of_range(limit))
    return number


def _time_value(value: datetime, field: str, tz: str) -> datetime:
    """``_times`` of one time: in UTC, a naive time taken as the city's local time (a time
    skipped by a clock change moves to the change, one repeated by it is refused)."""
    text = value.isoformat()
    offset = value.utcoffset()
    try:
        if offset is None:
            utc = _local_to_utc(value.replace(tzinfo=None), ZoneInfo(tz))
            if utc is None:
                raise _refused(field, _AMBIGUOUS_TIME)
        # ISO 8601 offsets are whole minutes: pandas reads none with seconds.
        elif offset % timedelta(minutes=1):
            raise _refused(field, _NOT_A_DATE + text[:_SHOWN])
        else:
            utc = value.astimezone(UTC)
    except OverflowError:
        raise _refused(field, _NOT_A_DATE + text[:_SHOWN]) from None
    if not EARLIEST_REPORT <= utc <= datetime.now(UTC) + FUTURE_SLACK:
        raise _refused(field, _IMPLAUSIBLE_TIME)
    return utc


def _local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime | None:
    """A local wall time in UTC, as pandas' ``tz_localize(ambiguous="NaT",
    nonexistent="shift_forward")``: ``None`` when the time occurs twice (clocks set back);
    a time that does not exist (clocks set forward) becomes the instant of the change."""
    before = naive.replace(tzinfo=zone, fold=0).utcoffset()
    after = naive.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None
    assert after is not None
    if before == after:
        return naive.replace(tzinfo=zone).astimezone(UTC)
    if before > after:
        return None
    # In the gap: the change lies between the instants the two offsets give. Time zone
    # changes happen on whole seconds; bisect the seconds between.
    low = math.floor((naive - after).replace(tzinfo=UTC).timestamp())
    high = math.ceil((naive - before).replace(tzinfo=UTC).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
