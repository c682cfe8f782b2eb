"""One report's attachment (``attach_one``) decides exactly as ``attach`` of a one-report
batch: on generated cases (services, groups, match rules, streets, windows, ties and
distances on the boundary), and on real Paris reports stored through the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dedupecandidates import candidates_of
from hypothesis import given, settings
from hypothesis import strategies as st

from voirie.city import City, DedupeScoring
from voirie.gis import dedupe
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

REPORTS = Path(__file__).parents[2] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
X, Y = 652_271.0, 6_863_519.0  # Boulevard de Bonne-Nouvelle, Paris 2e
T0 = datetime(2024, 1, 10, tzinfo=UTC)
# Services as a city gives them: (group, match); "zz" is a code the city does not know
# (its incidents have no group or match; its reports take their group's, matching alone).
SERVICES: dict[str, tuple[str | None, str | None]] = {
    "a1": ("A", "group"),
    "a2": ("A", "group"),
    "a3": ("A", "service"),
    "b1": ("B", "service"),
    "b2": ("B", "group"),
    "n1": ("A", "never"),
    "zz": (None, None),
}
INCIDENT_COLUMNS = [
    "incident_id",
    "x",
    "y",
    "service_code",
    "group",
    "match",
    "segment_id",
    "street_name",
    "last_reported_at",
    "status",
]

# On a 5 m grid, points often tie and fall exactly on a reach (15, 20 -> 25 m); hours
# put gaps exactly on a window.
offsets = st.integers(-14, 14).map(lambda k: k * 5.0) | st.floats(-70, 70)
segments = st.sampled_from([None, "s1", "s2"])
streets = st.sampled_from([None, "Rue A", "Rue B"])
hours = st.integers(0, 24 * 12)
reports = st.fixed_dictionaries(
    {
        "service_code": st.sampled_from(sorted(SERVICES)),
        "dx": offsets,
        "dy": offsets,
        "radius_m": st.sampled_from([10.0, 25.0, 30.0]),
        "window_days": st.sampled_from([1.0, 3.0, 7.5]),
        # 0: not street-scale; 45 and 70 m: street-scale, longer than radius x factor or not.
        "street_radius_m": st.sampled_from([0.0, 45.0, 70.0]),
        "hours": hours,
        "segment_id": segments,
        "street_name": streets,
    }
)
incidents = st.lists(
    st.fixed_dictionaries(
        {
            "service_code": st.sampled_from(sorted(SERVICES)),
            "dx": offsets,
            "dy": offsets,
            "hours": hours,
            "segment_id": segments,
            "street_name": streets,
            # In hand (acknowledged, in progress) ignores the window; new keeps it.
            "status": st.sampled_from(["new", "new", "acknowledged", "in_progress"]),
        }
    ),
    max_size=10,
)
scorings = st.sampled_from(
    [
        DedupeScoring(),
        DedupeScoring(distance=0.0, time=0.0, service=1.0, street=0.0),  # ties on everything
        DedupeScoring(distance=1.0, time=3.0, service=0.5, street=2.0, same_street_factor=3.0),
    ]
)


def _expected(
    report: dict[str, object], stored: pd.DataFrame, scoring: DedupeScoring
) -> dedupe.Link:
    """``attach`` of the report as a one-row batch, as a ``Link``."""
    links = dedupe.attach(pd.DataFrame([report]), stored, scoring)
    row = links.iloc[0]
    if row["incident_id"] == dedupe.NO_INCIDENT:
        assert row["leader"] == 0  # no stored incident: it opens its own
    return dedupe.Link(
        int(row["incident_id"]),
        float(row["distance_m"]),
        float(row["gap_days"]),
        float(row["score"]),
        int(row["kin"]),
        int(row["place"]),
        str(dedupe.reasons(links)[0]),
    )


@settings(max_examples=1500, deadline=None)
@given(report=reports, found=incidents, scoring=scorings, ids=st.randoms())
def test_attach_one_decides_as_attach(
    report: dict[str, object],
    found: list[dict[str, object]],
    scoring: DedupeScoring,
    ids: object,
) -> None:
    code = str(report["service_code"])
    group, match = SERVICES[code]
    fields: dict[str, object] = {
        "x": X + float(report["dx"]),
        "y": Y + float(report["dy"]),  # type: ignore[arg-type]
        "service_code": code,
        "group": group or "A",
        "match": match or "service",
        "radius_m": report["radius_m"],
        "window_days": report["window_days"],
        "requested_at": T0 + timedelta(hours=int(report["hours"])),  # type: ignore[call-overload]
        "segment_id": report["segment_id"],
        "street_name": report["street_name"],
        "street_radius_m": report["street_radius_m"],
    }
    numbers = list(range(100, 100 + len(found)))
    ids.shuffle(numbers)  # type: ignore[attr-defined]  # ties go by order, not by id
    stored = pd.DataFrame(
        [
            {
                "incident_id": number,
                "x": X + float(i["dx"]),
                "y": Y + float(i["dy"]),  # type: ignore[arg-type]
                "service_code": i["service_code"],
                "group": SERVICES[str(i["service_code"])][0],
                "match": SERVICES[str(i["service_code"])][1],
                "segment_id": i["segment_id"],
                "street_name": i["street_name"],
                "last_reported_at": T0 + timedelta(hours=int(i["hours"])),
                "status": i["status"],
            }  # type: ignore[call-overload]
            for number, i in zip(numbers, found, strict=True)
        ],
        columns=INCIDENT_COLUMNS,
    )
    stored["last_reported_at"] = pd.to_datetime(stored["last_reported_at"], utc=True)
    stored["incident_id"] = stored["incident_id"].astype(np.int64)
    assert dedupe.attach_one(
        dedupe.NewReport(**fields), candidates_of(stored), scoring
    ) == _expected(fields, stored, scoring)


def test_attach_one_with_no_candidate_opens_an_incident() -> None:
    empty = candidates_of(
        pd.DataFrame(columns=INCIDENT_COLUMNS).astype(
            {"incident_id": np.int64, "x": float, "y": float, "last_reported_at": "datetime64[ns]"}
        )
    )
    fields: dict[str, object] = {
        "x": X,
        "y": Y,
        "service_code": "a1",
        "group": "A",
        "match": "group",
        "radius_m": 30.0,
        "window_days": 3.0,
        "requested_at": T0,
        "segment_id": None,
        "street_name": None,
    }
    link = dedupe.attach_one(dedupe.NewReport(**fields), empty, DedupeScoring())
    assert link == dedupe.Link(
        dedupe.NO_INCIDENT,
        0.0,
        0.0,
        1.0,
        dedupe.KIN_NONE,
        dedupe.PLACE_UNKNOWN,
        dedupe.FOUNDER_REASON,
    )


@pytest.fixture(scope="module")
def paris_store(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> tuple[Pipeline, pd.DataFrame]:
    """Four months of real reports imported into a sqlite store, and the sample's rows."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    sample = source[source["datedecl"].str.slice(0, 7).isin(["2023-10", "2023-11"])]
    folder = tmp_path_factory.mktemp("paris")
    path = folder / "sample.csv"
    sample.to_csv(path, index=False)
    store = SqliteStore(folder / "voirie.gpkg")
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    summary = pipeline.imports.import_table(read_csv(path), DANSMARUE)
    assert summary.imported > 3000
    return pipeline, sample.reset_index(drop=True)


def _probes(pipeline: Pipeline, sample: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` reports copied from the sample, moved up to 60 m and up to 6 days later, with
    their enrichment and thresholds (what the bulk path gives them)."""
    rng = np.random.default_rng(11)
    rows = sample.iloc[rng.choice(len(sample), n, replace=False)].reset_index(drop=True)
    x, y = pipeline.gis.project(
        pd.to_numeric(rows["longitude"]).to_numpy(), pd.to_numeric(rows["latitude"]).to_numpy()
    )
    angle, length = rng.uniform(0, 2 * np.pi, n), 60 * np.sqrt(rng.uniform(0, 1, n))
    lon, lat = pipeline.gis.to_wgs84.transform(
        x + length * np.cos(angle), y + length * np.sin(angle)
    )
    enriched = pipeline.gis.enrich(np.asarray(lon), np.asarray(lat))
    probes = pd.concat([pd.DataFrame({"lon": lon, "lat": lat}), enriched], axis=1)
    probes["service_code"] = [
        pipeline.city.services_by_name[s.casefold()].code for s in rows["soustype"]
    ]
    probes["group"] = [pipeline.city.services[c].group for c in probes["service_code"]]
    probes["requested_at"] = pd.to_datetime(rows["datedecl"], utc=True) + pd.to_timedelta(
        np.round(rng.uniform(0, 6 * 86_400, n)), unit="s"
    )
    probes = probes[~probes["outside_territory"].to_numpy()].reset_index(drop=True)
    pipeline.policy.set_thresholds(probes)
    return probes


def _fields(row: pd.Series) -> dict[str, object]:
    """A probe as the per-report path holds it: Python scalars, None where missing."""
    keys = [
        "x",
        "y",
        "lon",
        "lat",
        "service_code",
        "group",
        "match",
        "radius_m",
        "window_days",
        "segment_id",
        "street_name",
    ]
    fields: dict[str, object] = {k: (None if pd.isna(row[k]) else row[k]) for k in keys}
    for k in ("x", "y", "lon", "lat", "radius_m", "window_days"):
        fields[k] = float(fields[k])  # type: ignore[arg-type]
    fields["requested_at"] = row["requested_at"].to_pydatetime()
    return fields


def test_attach_one_over_the_store_decides_as_attach_on_paris(
    paris_store: tuple[Pipeline, pd.DataFrame],
) -> None:
    """Jittered real reports: ``attach_one`` over ``open_incidents_near`` (through
    ``Attacher.candidates``) against ``attach`` over ``open_incidents``."""
    pipeline, sample = paris_store
    probes = _probes(pipeline, sample, 400)
    scoring = pipeline.city.config.dedupe
    attached = 0
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        for k in range(len(probes)):
            one = probes.iloc[[k]].reset_index(drop=True)
            stored = pipeline.attacher.batch_candidates(uow, one)
            # Ties between equal scores go to the first incident: the order by id that
            # open_incidents_near gives.
            stored = stored.sort_values("incident_id", ignore_index=True)
            fields = _fields(one.iloc[0])
            row = one.iloc[0]
            candidates = pipeline.attacher.candidates(
                uow, row["lon"], row["lat"], row["service_code"], fields["requested_at"]
            )
            assert candidates.incident_id.tolist() == stored["incident_id"].tolist()
            arrival = {k: v for k, v in fields.items() if k not in ("lon", "lat")}
            link = dedupe.attach_one(dedupe.NewReport(**arrival), candidates, scoring)
            assert link == _expected(one.iloc[0].to_dict(), stored, scoring), k
            attached += link.incident_id != dedupe.NO_INCIDENT
    assert attached > 100  # the probes really meet stored incidents
