"""Blurred locations of sensitive services (``privacy.blur`` in city.yaml, issue 17 item 5).

Paris with graffiti blurred: the public point is the centre of the incident's 50 m cell
(``grid``) or the middle of its street segment (``street_middle``), never the exact point;
other services keep theirs. The citizens' nearby list shows the public point and the
distance to it, while staff reads keep the exact location.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from shapely.geometry import Point

from voirie.api.app import create_app
from voirie.city import City, load_city
from voirie.errors import CityConfigError
from voirie.gis.blur import Blur
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.selection import Selection
from voirie.store.sqlite import SqliteStore

PARIS = Path(__file__).parents[2] / "cities" / "paris"
SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
GRAFFITI = "graffitis-tags-affiches"
GRID_M = 50.0


def _city(folder: Path, blur: dict[str, object]) -> City:
    """Paris with ``privacy.blur`` set (its layers copied, not its reports)."""
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    config["privacy"] = {"blur": blur}
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return load_city(folder)


def _graffiti(city: City) -> list[str]:
    return [code for code, s in city.services.items() if s.group == GRAFFITI]


def _sample_points(city: City, gis: CityGIS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = read_csv(SAMPLE).rows
    codes = np.array(
        [city.services_by_name[s.casefold()].code for s in raw["soustype"]], dtype=object
    )
    return (
        codes,
        raw["longitude"].astype(float).to_numpy(),
        raw["latitude"].astype(float).to_numpy(),
    )


def test_grid_moves_only_the_blurred_services_to_their_cell_centre(
    tmp_path: Path, paris_gis: CityGIS
) -> None:
    city = _city(tmp_path / "city", {"groups": [GRAFFITI], "method": "grid", "grid_m": GRID_M})
    blur = Blur(city, paris_gis)
    codes, lon, lat = _sample_points(city, paris_gis)
    blurred = np.isin(codes, _graffiti(city))
    assert 0 < blurred.sum() < len(codes)
    plon, plat = blur.public(codes, lon, lat)
    assert np.array_equal(plon[~blurred], lon[~blurred])
    assert np.array_equal(plat[~blurred], lat[~blurred])
    x, y = paris_gis.project(lon[blurred], lat[blurred])
    px, py = paris_gis.project(plon[blurred], plat[blurred])
    # The centre of the point's own cell: within half a diagonal, and on the cell grid.
    assert np.hypot(px - x, py - y).max() <= GRID_M / np.sqrt(2) + 0.2
    assert np.abs((px - GRID_M / 2) / GRID_M - np.round((px - GRID_M / 2) / GRID_M)).max() < 0.01
    assert (np.hypot(px - x, py - y) > 0.5).all()


def test_street_middle_shows_the_middle_of_the_street_segment(
    tmp_path: Path, paris_gis: CityGIS
) -> None:
    city = _city(tmp_path / "middle", {"groups": [GRAFFITI], "method": "street_middle"})
    blur = Blur(city, paris_gis)
    codes, lon, lat = _sample_points(city, paris_gis)
    blurred = np.isin(codes, _graffiti(city))
    plon, plat = blur.public(codes[blurred], lon[blurred], lat[blurred])
    px, py = paris_gis.project(plon, plat)
    snap = paris_gis.snap(*paris_gis.project(lon[blurred], lat[blurred]))
    assert (snap.segment >= 0).sum() > 40
    for i, segment in enumerate(snap.segment):
        if segment < 0:  # off the network: the grid's cell centre
            cell = (px[i] - GRID_M / 2) / GRID_M
            assert abs(cell - round(cell)) < 0.01
            continue
        line = paris_gis.streets_geometry[segment]
        assert line.distance(Point(px[i], py[i])) < 0.2
        assert line.project(Point(px[i], py[i]), normalized=True) == pytest.approx(0.5, abs=0.01)


def test_an_unknown_service_or_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CityConfigError) as refused:
        _city(tmp_path / "city", {"services": ["nope"], "groups": ["nope-either"]})
    assert "privacy.blur.services: unknown service 'nope'" in str(refused.value)
    assert "privacy.blur.groups: unknown group 'nope-either'" in str(refused.value)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, paris_gis: CityGIS
) -> Iterator[tuple[TestClient, Pipeline]]:
    """The app of a Paris blurring graffiti, on a store holding the 200 sample reports."""
    folder = tmp_path_factory.mktemp("blurring")
    city = _city(folder / "city", {"groups": [GRAFFITI], "grid_m": GRID_M})
    store = SqliteStore(folder / "voirie.gpkg")
    store.upgrade()
    pipeline = Pipeline(city, store, paris_gis)
    pipeline.imports.import_table(read_csv(SAMPLE), DANSMARUE)
    app = create_app(
        StoreSettings(database_url=f"sqlite:///{folder / 'voirie.gpkg'}"),
        CitySettings(city=str(folder / "city")),
    )
    with TestClient(app) as client:
        yield client, pipeline
    store.close()


def test_nearby_shows_the_public_point_and_staff_reads_the_exact_one(
    world: tuple[TestClient, Pipeline], paris_gis: CityGIS
) -> None:
    client, pipeline = world
    incidents = pipeline.reads.incidents(Selection())  # the staff's read: exact points
    graffiti = incidents[incidents["service_code"].isin(_graffiti(pipeline.city))]
    first = graffiti.iloc[0]
    found = client.get(
        "/api/v1/nearby",
        params={"lon": first["lon"], "lat": first["lat"], "radius_m": 1000},
    )
    assert found.status_code == 200, found.text
    listed = {i["incident_id"]: i for i in found.json()["incidents"]}
    exact = incidents.set_index("incident_id")
    seen_blurred = 0
    for incident_id, shown in listed.items():
        stored = exact.loc[incident_id]
        moved = (shown["lon"], shown["lat"]) != (stored["lon"], stored["lat"])
        is_graffiti = stored["service_code"] in _graffiti(pipeline.city)
        assert moved == is_graffiti, incident_id
        seen_blurred += is_graffiti
        # The distance is the public point's: it cannot be used to find the exact one.
        x, y = paris_gis.project(
            np.array([first["lon"], shown["lon"]]), np.array([first["lat"], shown["lat"]])
        )
        assert shown["distance_m"] == pytest.approx(np.hypot(x[1] - x[0], y[1] - y[0]), abs=0.2)
    assert seen_blurred >= 2


def _exact_points(pipeline: Pipeline) -> set[tuple[float, float]]:
    """Exact points (to the decimetre) of the blurred services' reports and incidents."""
    graffiti = _graffiti(pipeline.city)
    points = set()
    for frame in (pipeline.reads.reports(Selection()), pipeline.reads.incidents(Selection())):
        kept = frame[frame["service_code"].isin(graffiti)]
        points |= _shown(list(zip(kept["lon"], kept["lat"], strict=True)))
    return points


def _shown(pairs: list[tuple[float, float]]) -> set[tuple[float, float]]:
    return {(round(float(x), 6), round(float(y), 6)) for x, y in pairs}


def test_no_public_read_shows_an_exact_blurred_point(world: tuple[TestClient, Pipeline]) -> None:
    """Open311 GET, OGC items and the CSV download: the blurred services' exact points
    appear nowhere, their reports' addresses are their street; other services' do."""
    client, pipeline = world
    exact = _exact_points(pipeline)
    assert len(exact) > 20
    graffiti = set(_graffiti(pipeline.city))

    requests = client.get(
        "/open311/v2/requests.json", params={"start_date": "2023-07-01", "end_date": "2023-09-28"}
    )
    assert requests.status_code == 200, requests.text
    rows = requests.json()
    blurred = [r for r in rows if r["service_code"] in graffiti]
    assert blurred, "the sample holds graffiti reports"
    assert not _shown([(r["long"], r["lat"]) for r in blurred]) & exact
    assert all(r["address"] is None or r["address"][0].isalpha() for r in blurred)
    others = [r for r in rows if r["service_code"] not in graffiti]
    assert any(r["address"] and r["address"][0].isdigit() for r in others)  # a house number

    for layer in ("incidents", "reports"):
        items = client.get(f"/ogc/collections/{layer}/items", params={"limit": 1000})
        assert items.status_code == 200, items.text
        features = items.json()["features"]
        assert any(f["properties"]["service_code"] in graffiti for f in features)
        points = [
            tuple(f["geometry"]["coordinates"])
            for f in features
            if f["properties"]["service_code"] in graffiti
        ]
        assert not _shown(points) & exact, layer

        csv = client.get(f"/exports/{layer}.csv")
        assert csv.status_code == 200, csv.text
        table = pd.read_csv(io.StringIO(csv.text))
        kept = table[table["service_code"].isin(graffiti)]
        assert len(kept)
        assert not _shown(list(zip(kept["lon"], kept["lat"], strict=True))) & exact, layer


def test_one_feature_shows_the_public_point(world: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = world
    incidents = pipeline.reads.incidents(Selection())
    graffiti = incidents[incidents["service_code"].isin(_graffiti(pipeline.city))]
    for incident_id in graffiti["incident_id"].head(3):
        one = client.get(f"/ogc/collections/incidents/items/{incident_id}")
        assert one.status_code == 200, one.text
        assert not _shown([tuple(one.json()["geometry"]["coordinates"])]) & _exact_points(pipeline)
