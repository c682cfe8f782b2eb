"""The per-report ingest path against the bulk one, on real Paris data.

``validate_report`` must give the columns (or the quarantine field and reason) that
``validate`` gives for the one-row table ``Intake.submit`` builds, and
``CityGIS.enrich_one`` the row of ``CityGIS.enrich``: same values, as plain Python scalars.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from voirie.city import City, service_code_for
from voirie.errors import InvalidInput
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import PROBLEM, ROW, RawTable
from voirie.ingest.validate import report_hash, validate, validate_report
from voirie.model import Contact, Report

REPORTS = Path(__file__).parent.parent / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
N_REPORTS = 400
N_POINTS = 3_000
SEED = 5
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PLAIN = (type(None), bool, int, float, str)


# --- validation ---------------------------------------------------------------------------


def _bulk(report: Report, city: City) -> dict[str, object]:
    """``validate`` of the one-row table ``Intake.submit`` builds for ``report``: its
    columns as plain values, or the quarantine row's field and reason."""
    contact = report.contact
    row = {
        "external_id": report.external_id,
        "lat": report.lat,
        "lon": report.lon,
        "requested_at": report.requested_at.isoformat(),
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
    frame = pd.DataFrame([{k: ("" if v is None else str(v)) for k, v in row.items()}])
    frame[ROW], frame[PROBLEM] = 1, None
    mapping = ColumnMapping(source=report.source, **{k: k for k in row})
    valid = validate(RawTable(frame, list(row)), mapping, city)
    if len(valid.quarantine):
        problem = valid.quarantine.iloc[0]
        return {"field": problem["field"], "reason": problem["reason"]}
    assert len(valid.reports) == 1
    return {str(name): _plain(valid.reports[name].array[0]) for name in valid.reports}


def _plain(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or value is pd.NA or value != value else value


def _single(report: Report, city: City) -> dict[str, object]:
    """``validate_report``, or the field and reason of its refusal."""
    try:
        return validate_report(report, city)
    except InvalidInput as exc:
        message, field = exc.message, exc.field
    named, reason = message.split(": ", 1)
    assert named == field, message
    return {"field": field, "reason": reason}


def _assert_same(report: Report, city: City) -> dict[str, object]:
    single, bulk = _single(report, city), _bulk(report, city)
    assert single == bulk, report
    assert list(single) == list(bulk)
    if "content_hash" in single:
        assert all(isinstance(v, PLAIN) for k, v in single.items() if k != "requested_at")
        when = single["requested_at"]
        assert isinstance(when, datetime)
        assert when.utcoffset() == timedelta(0)
        assert isinstance(single["lon"], float)
        assert isinstance(single["lat"], float)
    return single


def _real_reports(city: City, n: int) -> list[Report]:
    """``n`` reports made from bundled DansMaRue rows: their service, place, address,
    channel and day; a seeded time of day, given in UTC, in Paris time (with its offset)
    or naive (local); some fields padded with blanks, some left empty."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(SEED)
    picked = source.iloc[rng.choice(len(source), n, replace=False)].reset_index(drop=True)
    paris_time = timezone(timedelta(hours=1))
    reports = []
    for k, row in picked.iterrows():
        service = city.services_by_name.get(row["soustype"].casefold())
        code = service.code if service else service_code_for(row["type"], row["soustype"])
        day = datetime.fromisoformat(row["datedecl"])
        naive = day + timedelta(
            seconds=int(rng.integers(0, 86_400)), microseconds=int(rng.integers(0, 2)) * 123_456
        )
        when = [naive, naive.replace(tzinfo=UTC), naive.replace(tzinfo=paris_time)][k % 3]
        pad = " " * (k % 2)
        reports.append(
            Report(
                external_id=pad + row["id_dmr"] + pad,
                source="dansmarue",
                service_code=code,
                lon=float(row["longitude"]),
                lat=float(row["latitude"]),
                requested_at=when,
                description=[None, "", "  ", f"{pad}{row['soustype']}{pad}"][k % 4],
                address=row["adresse"] if k % 5 else None,
                channel=row["prefixe"] or None,
                media_url=f"https://example.org/{row['kada_blobs']}.jpg" if k % 7 == 0 else None,
                contact=Contact(
                    name=" Jeanne " if k % 3 == 0 else None,
                    email="jeanne@example.org" if k % 4 == 0 else "   ",
                    phone="+33 1 23 45 67 89" if k % 6 == 0 else None,
                    device_id=str(k) if k % 2 else None,
                ),
            )
        )
    return reports


@pytest.fixture(scope="module")
def real_reports(paris: City) -> list[Report]:
    return _real_reports(paris, N_REPORTS)


def test_real_reports_validate_as_in_bulk(paris: City, real_reports: list[Report]) -> None:
    outcomes = [_assert_same(report, paris) for report in real_reports]
    accepted = [o for o in outcomes if "content_hash" in o]
    # Most categories are in city.yaml; the few others are refused as unknown, as in bulk.
    assert len(accepted) > 0.9 * len(outcomes)
    refused = [o for o in outcomes if "field" in o]
    assert all(o["field"] == "service_code" for o in refused)
    assert len({o["content_hash"] for o in accepted}) == len(accepted)


BAD_INPUTS = {
    "unknown service": {"service_code": "no-such-service"},
    "blank service": {"service_code": "  "},
    "long unknown service": {"service_code": "x" * 200},
    "lat out of range": {"lat": 95.0},
    "lat -90 is fine": {"lat": -90.0},
    "lon out of range": {"lon": -180.5},
    "NaN lat": {"lat": math.nan},
    "NaN lon": {"lon": math.nan},
    "inf lat": {"lat": math.inf},
    "-inf lon": {"lon": -math.inf},
    "lat and lon bad (lat first)": {"lat": math.nan, "lon": math.inf},
    "blank external id": {"external_id": "   "},
    "empty external id": {"external_id": ""},
    "everything bad (external id first)": {"external_id": "", "lat": 99.0, "service_code": "nope"},
    "coordinate before service": {"lon": 200.0, "service_code": "nope"},
    "service before time": {"service_code": "nope", "requested_at": datetime(2023, 10, 29, 2, 30)},
    "ambiguous hour": {"requested_at": datetime(2023, 10, 29, 2, 30)},
    "ambiguous hour, fold 1": {"requested_at": datetime(2023, 10, 29, 2, 59, fold=1)},
    "last second before the repeated hour": {"requested_at": datetime(2023, 10, 29, 1, 59, 59)},
    "first second after the repeated hour": {"requested_at": datetime(2023, 10, 29, 3, 0)},
    "hour skipped in spring": {"requested_at": datetime(2024, 3, 31, 2, 30, 15, 5)},
    "start of the skipped hour": {"requested_at": datetime(2024, 3, 31, 2, 0)},
    "aware time in the repeated hour": {
        "requested_at": datetime(2023, 10, 29, 2, 30, tzinfo=timezone(timedelta(hours=1)))
    },
    "offset with seconds": {
        "requested_at": datetime(
            2024, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15))
        )
    },
    "far offset": {
        "requested_at": datetime(
            2024, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=-23, minutes=-59))
        )
    },
    "old date": {"requested_at": datetime(1850, 6, 1, 12, 0)},
    "whitespace-only texts": {
        "description": " \t ",
        "address": "\n",
        "channel": "  ",
        "media_url": " ",
    },
    "padded texts": {"description": "  trou  ", "address": " 1 Rue de Rivoli ", "source": " app "},
}


@pytest.mark.parametrize("change", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_are_refused_as_in_bulk(
    paris: City, real_reports: list[Report], change: dict[str, object]
) -> None:
    # One report takes only a listed category (an Open311 client picks one of the city's
    # services): as a bulk import does for a city whose catalogue must be complete.
    strict = City(paris.folder, paris.config.model_copy(update={"new_categories": "quarantine"}))
    report = replace(real_reports[0], **change)  # type: ignore[arg-type]
    _assert_same(report, strict)


def test_refusals_name_their_field(paris: City, real_reports: list[Report]) -> None:
    report = replace(real_reports[0], lat=math.nan)
    with pytest.raises(InvalidInput) as caught:
        validate_report(report, paris)
    assert caught.value.field == "lat"
    assert caught.value.message == "lat: not a number: nan"
    with pytest.raises(InvalidInput, match=r"^requested_at: ambiguous local time"):
        validate_report(
            replace(report, lat=48.85, requested_at=datetime(2023, 10, 29, 2, 30)), paris
        )


def test_a_time_before_year_one_in_utc_is_not_a_date(
    paris: City, real_reports: list[Report]
) -> None:
    # The one refusal the bulk path does not make: pandas holds the UTC time (year 0),
    # a Python datetime cannot.
    report = replace(real_reports[0], requested_at=datetime(1, 1, 1))
    with pytest.raises(InvalidInput, match=r"^requested_at: not a date: 0001-01-01T00:00:00$"):
        validate_report(report, paris)


NUMBER_TEXT = st.text(alphabet="0123456789.,eE+-_ infatyINFATY٤", max_size=12)


@SETTINGS
@given(text=NUMBER_TEXT)
@example(text="48,85")  # a decimal comma
@example(text="-2,5")
@example(text="48,8,5")
def test_coordinates_given_as_text_read_as_in_bulk(
    paris: City, real_reports: list[Report], text: str
) -> None:
    # Report.lat is a float; a client that sends text gets the import's decision.
    _assert_same(replace(real_reports[0], lat=text), paris)  # type: ignore[arg-type]


# Naive times around the clock changes of Europe/Paris, 1976-2040 (both directions).
AROUND_CHANGES = st.builds(
    lambda year, spring, minute, micro: (
        datetime(year, 3 if spring else 10, 31 if spring else 29, 1, 0)
        + timedelta(minutes=minute, microseconds=micro)
    ),
    st.integers(1976, 2040),
    st.booleans(),
    st.integers(0, 180),
    st.integers(0, 999_999),
)


@SETTINGS
@given(
    when=AROUND_CHANGES
    | st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))
)
def test_local_times_convert_as_in_bulk(
    paris: City, real_reports: list[Report], when: datetime
) -> None:
    _assert_same(replace(real_reports[0], requested_at=when), paris)


@SETTINGS
@given(
    when=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
    )
)
def test_aware_times_convert_as_in_bulk(
    paris: City, real_reports: list[Report], when: datetime
) -> None:
    _assert_same(replace(real_reports[0], requested_at=when), paris)


def test_content_hash_is_unchanged(paris: City, real_reports: list[Report]) -> None:
    # Stored reports keep the digest computed before report_hash was factored out.
    report = replace(
        real_reports[0],
        external_id="A2023G041622",
        service_code="objets-abandonne-b2fab2",
        lon=2.3493394857237635,
        lat=48.86993026606752,
        requested_at=datetime(2023, 7, 17, 10, 0, tzinfo=UTC),
        description=None,
        address="26 Rue de la Lune, 75002 PARIS",
    )
    assert report.service_code in paris.services
    expected = "56b7c9d6ce055075b0827213356250137bf21f39"
    assert validate_report(report, paris)["content_hash"] == expected
    assert _bulk(report, paris)["content_hash"] == expected
    assert (
        report_hash(
            report.service_code,
            report.requested_at.astimezone(UTC),
            None,
            report.address,
            report.lon,
            report.lat,
        )
        == expected
    )


# --- enrichment ---------------------------------------------------------------------------


def _row(frame: pd.DataFrame, i: int) -> dict[str, object]:
    """Row ``i`` of an enrichment as plain values (the reference for ``enrich_one``)."""
    return {str(name): _plain(frame[name].array[i]) for name in frame.columns}


def _assert_row(one: dict[str, object], row: dict[str, object]) -> None:
    assert list(one) == list(row)
    assert one == row
    assert all(type(v) in PLAIN for v in one.values()), one


@pytest.fixture(scope="module")
def real_points(paris_gis: CityGIS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real report places with their addresses, and the same places moved up to 300 m
    (seeded, some off the network) or 1-5 km (some outside the city), without address
    or with another report's, and blank addresses."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(SEED)
    picked = source.iloc[rng.choice(len(source), N_POINTS, replace=False)]
    lon = pd.to_numeric(picked["longitude"]).to_numpy()
    lat = pd.to_numeric(picked["latitude"]).to_numpy()
    address = picked["adresse"].to_numpy(dtype=object)
    x, y = paris_gis.project(lon, lat)
    third = N_POINTS // 3
    reach = np.r_[
        np.zeros(third), rng.uniform(0, 300, third), rng.uniform(1_000, 5_000, N_POINTS - 2 * third)
    ]
    angle = rng.uniform(0, 2 * np.pi, N_POINTS)
    moved_lon, moved_lat = paris_gis.to_wgs84.transform(
        x + reach * np.cos(angle), y + reach * np.sin(angle)
    )
    kind = np.arange(N_POINTS) % 4
    address = np.where(kind == 1, None, np.where(kind == 2, "  ", address))
    address[kind == 3] = np.roll(address[kind == 3], 1)
    return np.asarray(moved_lon), np.asarray(moved_lat), address


def test_real_points_enrich_one_as_in_bulk(
    paris_gis: CityGIS, real_points: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    lon, lat, address = real_points
    bulk = paris_gis.enrich(lon, lat, address)
    # The sample covers every case: address matches, off network, outside the city.
    assert (bulk["snap_method"] == "address_match").sum() > 200
    assert bulk["off_network"].sum() > 20
    assert bulk["outside_territory"].sum() > 100
    assert bulk["zone_espace_vert"].notna().sum() > 20
    assert bulk["address_guess"].notna().sum() > 300
    for i in range(len(lon)):
        _assert_row(paris_gis.enrich_one(float(lon[i]), float(lat[i]), address[i]), _row(bulk, i))


def test_enrich_one_is_the_one_point_enrich(
    paris_gis: CityGIS, real_points: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    lon, lat, address = (values[::10] for values in real_points)
    for i in range(len(lon)):
        for text in (address[i], None):
            one = paris_gis.enrich(lon[i : i + 1], lat[i : i + 1], np.array([text], dtype=object))
            _assert_row(paris_gis.enrich_one(float(lon[i]), float(lat[i]), text), _row(one, 0))


ADDRESSES = st.sampled_from(
    [
        None,
        "",
        "   ",
        "126 Rue Oberkampf, 75011 PARIS",
        "65 Rue Jean-Baptiste Pigalle",
        "26 Rue de la Lune, 75002 PARIS",
        "1 Rue Imaginaire, 75009",
        "75009 PARIS",
        "42 Rue Montcalm, 75018 PARIS",
        "Place de la Concorde",
    ]
)


@SETTINGS
@given(lon=st.floats(2.2, 2.5), lat=st.floats(48.79, 48.93), address=ADDRESSES)
def test_random_points_enrich_one_as_in_bulk(
    paris_gis: CityGIS, lon: float, lat: float, address: str | None
) -> None:
    one = paris_gis.enrich(np.array([lon]), np.array([lat]), np.array([address], dtype=object))
    _assert_row(paris_gis.enrich_one(lon, lat, address), _row(one, 0))


def test_segment_attributes_of_every_kind_become_plain_values(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    # Paris streets around Rue Oberkampf with integer, boolean, float and text attributes
    # (the integer and boolean ones nullable once a point has no segment).
    assert paris_gis.streets is not None
    assert paris.config.streets is not None
    near = paris_gis.streets.cx[650_000:655_000, 6_860_000:6_865_000].copy()
    assert len(near) > 100
    near["lanes"] = np.arange(len(near)) % 4
    near["oneway"] = np.arange(len(near)) % 3 == 0
    near["width"] = np.where(np.arange(len(near)) % 5 == 0, np.nan, 7.5)
    layer = gpd.GeoDataFrame(
        near.rename(columns={"street_name": "name"}).drop(columns="segment_id"),
        geometry="geometry",
        crs=paris.metric_crs,
    ).to_crs(4326)
    path = tmp_path / "streets.geojson"
    layer.to_file(path, driver="GeoJSON")
    streets = paris.config.streets.model_copy(
        update={"path": str(path), "attributes": ["roadClass", "lanes", "oneway", "width"]}
    )
    gis = CityGIS(City(paris.folder, paris.config.model_copy(update={"streets": streets})))
    kinds = {name: values.dtype for name, values in gis._segment_attributes.items()}
    assert str(kinds["segment_lanes"]) == "Int64"
    assert str(kinds["segment_oneway"]) == "boolean"
    lon = np.array([2.3800201422199687, 2.37, 2.4380, -8.0])
    lat = np.array([48.86614608645489, 48.865, 48.8330, 46.0])
    bulk = gis.enrich(lon, lat)
    assert bulk["segment_lanes"].isna().any()
    assert bulk["segment_lanes"].notna().any()
    for i in range(len(lon)):
        one = gis.enrich_one(float(lon[i]), float(lat[i]), None)
        _assert_row(one, _row(bulk, i))
        if one["segment_id"] is not None:
            assert type(one["segment_lanes"]) is int
            assert type(one["segment_oneway"]) is bool
