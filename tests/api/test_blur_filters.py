"""Boxes and circles cannot find where a blurred incident really is (issue 17 item 5).

Paris blurring graffiti (50 m grid), the 200 sample reports, on both backends. A public
read that filters on a box or a circle selects, counts, orders and pages a blurred
incident (and its reports) by its public point, exactly as if that were its location:

- a "shrinking box" probe on every public route that takes a box (OGC items ``bbox``,
  CQL2 ``S_INTERSECTS`` with a BBOX and with a POLYGON, Open311 GET ``bbox``, the
  downloads' ``bbox``): boxes centred on the target's exact point, from 400 m down to 1 m,
  and on its public point. Each answer holds exactly the rows whose public point is in
  the box (computed here from the staff's exact points and ``Reads.publish``), and
  ``numberMatched`` counts them;
- the citizens' nearby search and the Open311 circle find, order and measure by the
  public point; pages of a box add up to ``numberMatched``;
- staff still select by the exact point;
- the stored public point follows a move and a change of service, and is recomputed when
  the city's blurring changes (``voirie.store.public_points``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from databases import BACKENDS, store_urls
from fastapi.testclient import TestClient

from tests.api.test_blur_everywhere import blurring_paris
from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.blur import Blur
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import OPEN_STATUSES, Report
from voirie.services.auth import Role, issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store
from voirie.store.public_points import Placement
from voirie.store.selection import Selection

SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
# Lengths of a degree in Paris, metres (latitude 48.86°).
M_PER_DEG_LAT, M_PER_DEG_LON = 111_200.0, 73_200.0
HALF_SIDES_M = (400.0, 200.0, 100.0, 50.0, 25.0, 12.0, 6.0, 3.0, 1.0)
EDGE_M = 0.5  # a point this close to a box's edge may fall either side (R*Tree floats)
OPEN = {status.value for status in OPEN_STATUSES}

Box = tuple[float, float, float, float]


@dataclass
class Target:
    """The blurred incident probed: its exact point, its public point and a report."""

    incident_id: int
    report_id: int
    exact: tuple[float, float]
    report_exact: tuple[float, float]
    public: tuple[float, float]
    requested_at: pd.Timestamp


@dataclass
class World:
    client: TestClient
    pipeline: Pipeline
    dispatcher: dict[str, str]
    target: Target


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(np.hypot((a[0] - b[0]) * M_PER_DEG_LON, (a[1] - b[1]) * M_PER_DEG_LAT))


def _box(centre: tuple[float, float], half_m: float) -> Box:
    lon, lat = centre
    dx, dy = half_m / M_PER_DEG_LON, half_m / M_PER_DEG_LAT
    return (lon - dx, lat - dy, lon + dx, lat + dy)


def _text(box: Box) -> str:
    return ",".join(f"{v:.7f}" for v in box)


def _target(pipeline: Pipeline) -> Target:
    """An open graffiti incident whose public point is 15 m or more from its exact point
    and from each of its reports' points."""
    incidents = pipeline.reads.incidents(Selection())  # the staff's read: exact points
    reports = pipeline.reads.reports(Selection())
    public = pipeline.reads.publish(incidents)
    blurred = incidents["service_code"].isin(pipeline.reads.blur.services)
    for row, shown in zip(
        incidents[blurred].itertuples(), public[blurred].itertuples(), strict=True
    ):
        own = reports[reports["incident_id"] == row.incident_id]
        exact = [(float(row.lon), float(row.lat))]
        exact += [(float(x), float(y)) for x, y in zip(own["lon"], own["lat"], strict=True)]
        point = (float(shown.lon), float(shown.lat))
        if row.status not in OPEN or min(_metres(point, e) for e in exact) < 15:
            continue
        first = own.iloc[0]
        return Target(
            int(row.incident_id),
            int(first["report_id"]),
            exact[0],
            (float(first["lon"]), float(first["lat"])),
            point,
            pd.Timestamp(first["requested_at"]),
        )
    raise AssertionError("the sample holds no suitable graffiti incident")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, paris_gis: CityGIS
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("blur_filters")
    city = blurring_paris(folder / "city")
    for url in store_urls(request, request.param, folder):
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
        try:
            store.upgrade()
            Pipeline(city, store, paris_gis).imports.import_table(read_csv(SAMPLE), DANSMARUE)
            token = issue_token(store, city.jurisdiction_id, "dispatch", Role.DISPATCHER, [])
        finally:
            store.close()
        app = create_app(StoreSettings(database_url=url), CitySettings(city=str(folder / "city")))
        with TestClient(app, follow_redirects=False) as client:
            pipeline: Pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
            yield World(client, pipeline, {"Authorization": f"Bearer {token}"}, _target(pipeline))


def _public_frame(world: World, layer: str) -> pd.DataFrame:
    """Every row of a layer at the point the public sees (the staff's exact read, blurred
    by ``Reads.publish``)."""
    reads = world.pipeline.reads
    exact = reads.incidents(Selection()) if layer == "incidents" else reads.reports(Selection())
    return pd.DataFrame(reads.publish(exact).drop(columns="geometry"))


def _expected(frame: pd.DataFrame, key: str, box: Box) -> tuple[set[int], set[int]]:
    """The ids whose point is in the box, and those too close to an edge to tell."""
    lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
    x0, y0, x1, y1 = box
    inside = (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
    edge = np.minimum.reduce(
        [
            np.abs(lon - x0) * M_PER_DEG_LON,
            np.abs(lon - x1) * M_PER_DEG_LON,
            np.abs(lat - y0) * M_PER_DEG_LAT,
            np.abs(lat - y1) * M_PER_DEG_LAT,
        ]
    )
    unsure = edge <= EDGE_M
    ids = frame[key].to_numpy()
    return {int(i) for i in ids[inside & ~unsure]}, {int(i) for i in ids[unsure]}


def _boxes(target: Target, exact: tuple[float, float]) -> list[Box]:
    """Shrinking boxes around the exact point, and around the public point."""
    return [_box(exact, h) for h in HALF_SIDES_M] + [_box(target.public, h) for h in (3.0, 1.0)]


def _ogc(world: World, layer: str, params: dict[str, str]) -> tuple[set[int], int]:
    """Ids of an OGC items page and its numberMatched."""
    answer = world.client.get(f"/ogc/collections/{layer}/items", params=params | {"limit": "1000"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return {int(f["id"]) for f in body["features"]}, int(body["numberMatched"])


def _polygon(box: Box) -> str:
    x0, y0, x1, y1 = box
    ring = ", ".join(f"{x:.7f} {y:.7f}" for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    return f"POLYGON(({ring}, {x0:.7f} {y0:.7f}))"


def _export(world: World, layer: str, box: Box) -> set[int]:
    answer = world.client.get(f"/exports/{layer}.geojson", params={"bbox": _text(box)})
    assert answer.status_code == 200, answer.text
    key = "incident_id" if layer == "incidents" else "report_id"
    return {int(f["properties"][key]) for f in json.loads(answer.content)["features"]}


def test_incident_boxes_select_by_the_public_point(world: World) -> None:
    target = world.target
    frame = _public_frame(world, "incidents")
    for box in _boxes(target, target.exact):
        expected, unsure = _expected(frame, "incident_id", box)
        x0, y0, x1, y1 = box
        answers = {
            "OGC bbox": _ogc(world, "incidents", {"bbox": _text(box)}),
            "CQL2 BBOX": _ogc(
                world,
                "incidents",
                {"filter": f"S_INTERSECTS(geometry, BBOX({x0:.7f},{y0:.7f},{x1:.7f},{y1:.7f}))"},
            ),
            "CQL2 POLYGON": _ogc(
                world, "incidents", {"filter": f"S_INTERSECTS(geometry, {_polygon(box)})"}
            ),
        }
        for route, (found, matched) in answers.items():
            assert found - unsure == expected, (route, box)
            assert matched == len(found), (route, box)
        assert _export(world, "incidents", box) - unsure == expected, box
        inside = box[0] < target.public[0] < box[2] and box[1] < target.public[1] < box[3]
        assert (target.incident_id in expected) == inside


def test_report_boxes_select_by_the_public_point(world: World) -> None:
    target = world.target
    frame = _public_frame(world, "reports")
    day = timedelta(days=5)
    window = {
        "start_date": (target.requested_at - day).isoformat(),
        "end_date": (target.requested_at + day).isoformat(),
    }
    requested = pd.to_datetime(frame["requested_at"], utc=True)
    in_window = frame[
        (requested >= target.requested_at - day) & (requested <= target.requested_at + day)
    ]
    for box in _boxes(target, target.report_exact):
        expected, unsure = _expected(frame, "report_id", box)
        found, matched = _ogc(world, "reports", {"bbox": _text(box)})
        assert found - unsure == expected, box
        assert matched == len(found), box
        assert _export(world, "reports", box) - unsure == expected, box
        answer = world.client.get(
            "/open311/v2/requests.json", params={"bbox": _text(box), "page_size": "1000", **window}
        )
        assert answer.status_code == 200, answer.text
        open311 = {int(r["service_request_id"]) for r in answer.json()}
        windowed, _ = _expected(in_window, "report_id", box)
        assert open311 - unsure == windowed, box
    shrunk = _box(target.report_exact, 3.0)
    assert target.report_id not in _ogc(world, "reports", {"bbox": _text(shrunk)})[0]
    assert target.report_id in _ogc(world, "reports", {"bbox": _text(_box(target.public, 3.0))})[0]


def test_pages_of_a_box_add_up_to_number_matched(world: World) -> None:
    box = _box(world.target.exact, 400.0)
    everything, matched = _ogc(world, "incidents", {"bbox": _text(box)})
    assert world.target.incident_id in everything
    seen: list[int] = []
    for offset in range(0, matched + 3, 3):
        params = {"bbox": _text(box), "limit": "3", "offset": str(offset)}
        answer = world.client.get("/ogc/collections/incidents/items", params=params)
        body = answer.json()
        assert body["numberMatched"] == matched
        seen += [int(f["id"]) for f in body["features"]]
    assert seen == sorted(everything)


def test_nearby_finds_orders_and_measures_by_the_public_point(world: World) -> None:
    target = world.target
    gap = _metres(target.exact, target.public)

    def nearby(centre: tuple[float, float], radius_m: float) -> dict[str, Any]:
        params = {"lon": str(centre[0]), "lat": str(centre[1]), "radius_m": str(radius_m)}
        answer = world.client.get("/api/v1/nearby", params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    # At the exact point, a circle not reaching the public point does not find it.
    for radius in (gap * 0.8, gap / 2, 5.0, 1.0):
        ids = [i["incident_id"] for i in nearby(target.exact, radius)["incidents"]]
        assert target.incident_id not in ids, radius
    # At the public point, it is found at (nearly) no distance.
    found = nearby(target.public, 2.0)
    rows = {i["incident_id"]: i for i in found["incidents"]}
    assert target.incident_id in rows
    assert rows[target.incident_id]["distance_m"] <= 0.2
    assert (rows[target.incident_id]["lon"], rows[target.incident_id]["lat"]) == target.public
    # A wide circle: the order, the distances and the total are the public points'.
    body = nearby(target.exact, 300.0)
    frame = _public_frame(world, "incidents")
    frame = frame[frame["status"].isin(OPEN)]
    gis = world.pipeline.gis
    x, y = gis.project(np.r_[target.exact[0]], np.r_[target.exact[1]])
    fx, fy = gis.project(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    distance = pd.Series(np.hypot(fx - x[0], fy - y[0]), index=frame["incident_id"])
    within = distance[distance <= 300.0].sort_values(kind="stable")
    shown = [(i["incident_id"], i["distance_m"]) for i in body["incidents"]]
    assert body["total"] == len(within)
    assert [i for i, _ in shown] == sorted(within.index, key=lambda i: (within[i], i))
    assert all(abs(d - within[i]) <= 0.06 for i, d in shown)
    assert target.incident_id in within.index


def test_open311_circle_finds_by_the_public_point(world: World) -> None:
    target = world.target
    day = timedelta(days=5)
    window = {
        "start_date": (target.requested_at - day).isoformat(),
        "end_date": (target.requested_at + day).isoformat(),
    }

    def around(centre: tuple[float, float], radius: float) -> set[int]:
        params = {"lat": str(centre[1]), "long": str(centre[0]), "radius": str(radius), **window}
        answer = world.client.get("/open311/v2/requests.json", params=params)
        assert answer.status_code == 200, answer.text
        return {int(r["service_request_id"]) for r in answer.json()}

    gap = _metres(target.report_exact, target.public)
    assert target.report_id not in around(target.report_exact, gap / 2)
    assert target.report_id in around(target.public, 2.0)


def test_staff_select_by_the_exact_point(world: World) -> None:
    target = world.target

    def staff(box: Box) -> tuple[set[int], int]:
        answer = world.client.get(
            "/api/v1/incidents",
            params={"bbox": _text(box), "limit": "1000"},
            headers=world.dispatcher,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return {int(i["incident_id"]) for i in body["incidents"]}, int(body["total"])

    found, total = staff(_box(target.exact, 1.0))
    assert target.incident_id in found
    assert total == len(found)
    found, total = staff(_box(target.public, 1.0))
    assert target.incident_id not in found
    assert total == len(found)


def _stored(pipeline: Pipeline, incident_id: int, table: str = "incidents") -> tuple[object, ...]:
    """The public point stored for a row (None, None: its exact point)."""
    store = pipeline.store
    rows = store.rows(
        store.dialect.text(f"SELECT public_lon, public_lat FROM {table} WHERE id = ?"),
        (incident_id,),
    )
    return tuple(rows[0])


def test_a_submitted_report_is_placed_when_written(world: World) -> None:
    """The per-report path (``insert_rows``) writes the public points, as the bulk import."""
    pipeline = world.pipeline
    blur = pipeline.reads.blur
    code = sorted(blur.services)[0]
    lon, lat = 2.3522, 48.8566  # Hôtel de Ville, far from the sample's graffiti
    done = pipeline.intake.submit(
        Report(
            external_id="blur-filters-1",
            source="test",
            service_code=code,
            lon=lon,
            lat=lat,
            requested_at=datetime.now(UTC) - timedelta(hours=1),
            description="Tag sur la façade",
        )
    )
    assert not done.attached
    px, py = blur.public(np.array([code], dtype=object), np.r_[lon], np.r_[lat])
    public = (float(px[0]), float(py[0]))
    assert _stored(pipeline, done.report_id, "reports") == public
    assert _stored(pipeline, done.incident_id) == public
    found, _ = _ogc(world, "incidents", {"bbox": _text(_box((lon, lat), 3.0))})
    assert done.incident_id not in found
    found, _ = _ogc(world, "incidents", {"bbox": _text(_box(public, 3.0))})
    assert done.incident_id in found
    # A service nobody blurs keeps its exact point (nothing stored).
    plain = next(c for c in pipeline.city.services if c not in blur.services)
    other = pipeline.intake.submit(
        Report(
            external_id="blur-filters-2",
            source="test",
            service_code=plain,
            lon=lon + 0.01,
            lat=lat,
            requested_at=datetime.now(UTC) - timedelta(hours=1),
            description="Lampadaire",
        )
    )
    assert _stored(pipeline, other.report_id, "reports") == (None, None)


def test_public_points_follow_moves_services_and_blurring(world: World) -> None:
    """Runs last: it moves the target."""
    pipeline, target = world.pipeline, world.target
    reads, j = pipeline.reads, pipeline.city.jurisdiction_id
    blur = reads.blur
    code = np.array([next(iter(blur.services))], dtype=object)
    moved = (target.exact[0] + 0.0021, target.exact[1] + 0.0013)  # some 200 m away
    with pipeline.store.transaction(j) as uow:
        uow.incidents.update(target.incident_id, {"lon": moved[0], "lat": moved[1]})
    incident = reads.incidents(Selection(ids=(target.incident_id,))).iloc[0]
    px, py = blur.public(
        np.array([incident["service_code"]], dtype=object), np.r_[moved[0]], np.r_[moved[1]]
    )
    assert _stored(pipeline, target.incident_id) == (float(px[0]), float(py[0]))
    found, _ = _ogc(world, "incidents", {"bbox": _text(_box((px[0], py[0]), 2.0))})
    assert target.incident_id in found
    other = next(c for c in pipeline.city.services if c not in blur.services)
    with pipeline.store.transaction(j) as uow:
        uow.incidents.update(target.incident_id, {"service_code": other})
    assert _stored(pipeline, target.incident_id) == (None, None)
    with pipeline.store.transaction(j) as uow:
        uow.incidents.update(target.incident_id, {"service_code": str(incident["service_code"])})
    assert _stored(pipeline, target.incident_id) == (float(px[0]), float(py[0]))

    # Another grid: the store recomputes every point once, then knows it is up to date.
    assert blur.config is not None
    config = pipeline.city.config
    privacy = config.privacy.model_copy(
        update={"blur": blur.config.model_copy(update={"grid_m": 200.0})}
    )
    wider = City(pipeline.city.folder, config.model_copy(update={"privacy": privacy}))
    other_blur = Blur(wider, pipeline.gis)
    placement = Placement(
        other_blur.services, other_blur.public, other_blur.fingerprint(wider.metric_crs)
    )
    assert pipeline.store.place_publicly(j, placement)
    assert not pipeline.store.place_publicly(j, placement)
    qx, qy = other_blur.public(code, np.r_[moved[0]], np.r_[moved[1]])
    assert _stored(pipeline, target.incident_id) == (float(qx[0]), float(qy[0]))
    assert (qx[0], qy[0]) != (px[0], py[0])
    # Back to the city's own blurring.
    own = Placement(blur.services, blur.public, blur.fingerprint(pipeline.city.metric_crs))
    assert pipeline.store.place_publicly(j, own)
    assert _stored(pipeline, target.incident_id) == (float(px[0]), float(py[0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_start_behind_the_migrations_places_the_points_at_the_first_public_read(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, paris_gis: CityGIS
) -> None:
    """A pipeline built on a database behind its migrations starts (``/readyz`` says why)
    without its public points brought up to date; once the database is upgraded, the first
    public read of the blurring city places them before it reads."""
    city = blurring_paris(tmp_path / "city")
    for url in store_urls(request, backend, tmp_path, template=None):
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
        try:
            pipeline = Pipeline(city, store, paris_gis)  # schema 0: nothing to place in
            store.upgrade()
            fingerprint = "SELECT fingerprint FROM public_points WHERE jurisdiction_id = ?"
            j = city.jurisdiction_id
            assert store.rows(store.dialect.text(fingerprint), (j,)) == []
            assert pipeline.reads.count("incidents") == 0  # a public read
            stored = store.rows(store.dialect.text(fingerprint), (j,))
            assert [row[0] for row in stored] == [
                Blur(city, paris_gis).fingerprint(city.metric_crs)
            ]
        finally:
            store.close()
