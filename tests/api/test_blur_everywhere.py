"""No public route shows where a blurred incident really is (issue 17 item 5).

Paris blurring graffiti (50 m grid), the 200 sample reports, on both backends; each graffiti
report's description repeats its address ("Tag sur la façade, devant le 126 Rue
Oberkampf"). One graffiti incident whose public point is at least 10 m from its exact one,
and whose report has a house-numbered address, is the target. Every GET route of the app
(walked from the app's own routes, documented or not, so a new route is fetched too; a path
parameter this test has no value for fails it) is fetched around the target: no text answer
may hold a pair of numbers within a metre of an exact point of the target (incident or
report), nor its address (in its own field or in the description, whose house number the
public reads masked: "devant le … Rue Oberkampf"); no GeoPackage may hold a point there; no
vector tile (decoded by GDAL) may hold a feature there, and the tiles at zoom 14 and more
hold the target at its public point. Staff still read the exact point.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import geopandas as gpd
import morecantile
import numpy as np
import pyogrio
import pytest
import yaml
from databases import BACKENDS, store_urls
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pyproj import Transformer

from voirie.api.app import create_app
from voirie.city import City, load_city
from voirie.codecs import mvt
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.maps.ogc import collections
from voirie.services.auth import Role, issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store
from voirie.store.selection import Selection

PARIS = Path(__file__).parents[2] / "cities" / "paris"
SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
GRAFFITI = "graffitis-tags-affiches"
GRIDS = ("WebMercatorQuad", "WorldCRS84Quad")
NEAR_M = 1.0  # "at the exact point": within a metre (the public point is 10 m away or more)
TO_WGS84 = Transformer.from_crs(3857, 4326, always_xy=True)
# Lengths of a degree in Paris, metres (latitude 48.86°).
M_PER_DEG_LAT, M_PER_DEG_LON = 111_200.0, 73_200.0
NUMBER = re.compile(r"-?\d{1,3}\.\d{4,}")


@dataclass
class Target:
    """The blurred incident looked for, where it really is, and where the public sees it."""

    incident_id: int
    report_ids: list[int]
    service_code: str
    exact: list[tuple[float, float]]
    """The incident's point and its reports' points."""
    public: tuple[float, float]
    address: str
    """Its report's address, house number included."""
    description: str
    """Its report's description as the public reads it (the address, number masked)."""


@dataclass
class World:
    client: TestClient
    pipeline: Pipeline
    dispatcher: dict[str, str]
    target: Target


def blurring_paris(folder: Path) -> City:
    """Paris blurring the graffiti group on a 50 m grid (its layers copied, not its reports)."""
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    config["privacy"] = {**config.get("privacy", {}), "blur": {"groups": [GRAFFITI], "grid_m": 50}}
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return load_city(folder)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(np.hypot((a[0] - b[0]) * M_PER_DEG_LON, (a[1] - b[1]) * M_PER_DEG_LAT))


def _sample(folder: Path) -> Path:
    """The sample with a description column: each graffiti report says where it is, as
    reporters do ("devant le 126 Rue Oberkampf"); the other reports say nothing."""
    path = folder / "dansmarue_200_described.csv"
    with SAMPLE.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, [*rows[0], "description"])
        writer.writeheader()
        for row in rows:
            graffiti = row["type"].startswith("Graffitis")
            where = f"Tag sur la façade, devant le {row['adresse'].split(',')[0]}"
            writer.writerow({**row, "description": where if graffiti else ""})
    return path


def _target(pipeline: Pipeline) -> Target:
    """A graffiti incident moved 10 m or more, whose report has a house-numbered address
    that no other report has (and that its description repeats)."""
    incidents = pipeline.reads.incidents(Selection())  # the staff's read: exact points
    reports = pipeline.reads.reports(Selection())
    graffiti = incidents[incidents["service_code"].isin(pipeline.reads.blur.services)]
    counts = reports["address"].value_counts()
    for row in graffiti.itertuples():
        own = reports[reports["incident_id"] == row.incident_id]
        address = str(own["address"].iloc[0])
        if not (address[:1].isdigit() and counts[address] == 1):
            continue
        street_address = address.split(",")[0]
        assert own["description"].iloc[0] == f"Tag sur la façade, devant le {street_address}"
        lon, lat = pipeline.reads.blur.public(
            np.array([row.service_code], dtype=object), np.array([row.lon]), np.array([row.lat])
        )
        public = (float(lon[0]), float(lat[0]))
        exact = [(float(row.lon), float(row.lat))]
        exact += [(float(x), float(y)) for x, y in zip(own["lon"], own["lat"], strict=True)]
        if min(_metres(public, point) for point in exact) < 10:
            continue
        return Target(
            int(row.incident_id),
            [int(i) for i in own["report_id"]],
            str(row.service_code),
            exact,
            public,
            address,
            "Tag sur la façade, devant le … " + street_address.split(" ", 1)[1],
        )
    raise AssertionError("the sample holds no suitable graffiti incident")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, paris_gis: CityGIS
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("blur_everywhere")
    city = blurring_paris(folder / "city")
    for url in store_urls(request, request.param, folder):
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
        try:
            store.upgrade()
            described = DANSMARUE.model_copy(update={"description": "description"})
            Pipeline(city, store, paris_gis).imports.import_table(
                read_csv(_sample(folder)), described
            )
            token = issue_token(store, city.jurisdiction_id, "dispatch", Role.DISPATCHER, [])
        finally:
            store.close()
        app = create_app(StoreSettings(database_url=url), CitySettings(city=str(folder / "city")))
        with TestClient(app, follow_redirects=False) as client:
            pipeline: Pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
            yield World(client, pipeline, {"Authorization": f"Bearer {token}"}, _target(pipeline))


def _tiles(target: Target, grid: str) -> list[tuple[int, int, int]]:
    """(z, x, y) of the tiles holding the exact or the public point, at aggregated and
    unaggregated zooms."""
    tms = morecantile.tms.get(grid)
    return sorted(
        {
            (t.z, t.x, t.y)
            for zoom in (12, 15, 17)
            for lon, lat in (target.exact[0], target.public)
            for t in [tms.tile(lon, lat, zoom)]
        }
    )


def _values(world: World, path: str) -> list[dict[str, str]]:
    """Every combination of path values ``path`` is fetched with."""
    target = world.target
    names = re.findall(r"{(\w+)}", path)
    if path.startswith("/tiles/"):
        return [{"z": str(z), "x": str(x), "y": str(y)} for z, x, y in _tiles(target, GRIDS[0])]
    if "{tileMatrix}" in path:
        return [
            {
                "collectionId": "incidents",
                "tileMatrixSetId": grid,
                "tileMatrix": str(z),
                "tileRow": str(y),
                "tileCol": str(x),
            }
            for grid in GRIDS
            for z, x, y in _tiles(target, grid)
        ]
    reports = [str(i) for i in target.report_ids]
    choices: dict[str, list[str]] = {
        "layer": ["incidents", "reports"],
        "fmt": ["json", "xml"] if path.startswith("/open311/") else ["geojson", "gpkg", "csv"],
        "collectionId": list(collections(world.pipeline)),
        "service_code": [target.service_code],
        "service_request_id": reports,
        "report_id": reports,
        "incident_id": [str(target.incident_id)],
        "token": ["no-such-token"],
        "name": ["no-such-file.jpg"],
        "tileMatrixSetId": list(GRIDS),
        "dimension": ["service"],
    }
    unknown = [n for n in names if n not in choices and n != "featureId"]
    assert not unknown, f"{path}: no test value for {unknown}; add one to _values"
    combos = [
        dict(zip(names, c, strict=True)) for c in product(*(choices.get(n, [""]) for n in names))
    ]
    if "featureId" not in names:
        return combos
    features = {"incidents": [str(target.incident_id)], "reports": reports}
    return [
        {**c, "featureId": f}
        for c in combos
        if c["collectionId"] in features
        for f in features[c["collectionId"]]
    ]


def _queries(path: str, target: Target) -> list[dict[str, str]]:
    """Query strings a path is fetched with: around the exact point where it takes one
    (from some 80 m away: a page may repeat the point it was asked about)."""
    lon, lat = target.exact[0][0] + 0.0008, target.exact[0][1] + 0.0006
    near = {"lon": str(lon), "lat": str(lat)}
    box = f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"
    if path.startswith("/ogc/collections/{collectionId}/items"):
        return [{"bbox": box, "limit": "1000"}, {"bbox": box, "f": "html"}, {"f": "html"}]
    if path.startswith("/ogc"):
        return [{}, {"f": "html"}]
    if path in ("/api/v1/nearby", "/maps/nearby"):
        return [{**near, "radius_m": "300"}, {**near, "lang": "en"}]
    if path.startswith("/maps/") or path in ("/signaler", "/"):
        return [{}, {"lang": "en"}]
    if path == "/open311/v2/requests.{fmt}":
        ids = ",".join(str(i) for i in target.report_ids)
        return [{"service_request_id": ids}, {"lat": str(lat), "long": str(lon), "radius": "300"}]
    if path == "/open311/v2/servicerequestupdates.{fmt}":
        return [{"start_date": "2000-01-01T00:00:00Z"}]
    if path == "/api/v1/geocode":  # its street (the address's own point is no secret)
        return [{"q": target.address.split(",")[0].lstrip("0123456789 ")}]
    return [{}]


def _near(points: list[tuple[float, float]], exact: list[tuple[float, float]]) -> bool:
    """Whether any of ``points`` is within ``NEAR_M`` of one of ``exact``."""
    return any(_metres(p, e) <= NEAR_M for p in points for e in exact)


def _text_leaks(body: str, target: Target) -> str | None:
    """What of the target's exact place a text answer shows, if anything."""
    numbers = [float(n) for n in NUMBER.findall(body)]
    # A point is two numbers in a row (lon, lat in JSON and CSV; lat, long in Open311 XML).
    pairs = list(pairwise(numbers))
    pairs += [(b, a) for a, b in pairs]
    for lon, lat in target.exact:
        if _near(pairs, [(lon, lat)]):
            return f"the exact point {lon}, {lat}"
    street_address = target.address.split(",")[0]
    for form in {street_address, html.escape(street_address), json.dumps(street_address)[1:-1]}:
        if form in body:
            return f"the address {street_address!r}"
    return None


def _decode(content: bytes, z: int, x: int, y: int, folder: Path) -> list[dict[str, Any]]:
    """A tile's features as GDAL reads them, as a WebMercatorQuad tile z/x/y, in EPSG:3857
    (buffer included)."""
    path = folder / f"{z}_{x}_{y}.mvt"
    path.write_bytes(content)
    options = ["-oo", f"Z={z}", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", "CLIP=NO"]
    done = subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", "/vsistdout/", str(path), *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    features: list[dict[str, Any]] = json.loads(done.stdout)["features"]
    return features


def _mercator_points(content: bytes, z: int, x: int, y: int, folder: Path) -> list[Any]:
    """A WebMercatorQuad tile's features, each with its WGS84 point as ``lonlat``."""
    features = _decode(content, z, x, y, folder)
    for feature in features:
        feature["lonlat"] = TO_WGS84.transform(*feature["geometry"]["coordinates"])
    return features


def _crs84_points(
    content: bytes, z: int, row: int, col: int, folder: Path
) -> list[tuple[float, float]]:
    """A WorldCRS84Quad tile's points in WGS84: GDAL reads it as the WebMercator tile
    0/0/0, whose units map linearly onto the world's metres; the tile's units map
    linearly onto its longitudes and latitudes."""
    world_m = 2 * mvt.mercator_bounds(0, 0, 0)[2]
    left, bottom, right, top = morecantile.tms.get("WorldCRS84Quad").xy_bounds(
        morecantile.Tile(col, row, z)
    )
    points = []
    for feature in _decode(content, 0, 0, 0, folder):
        mx, my = feature["geometry"]["coordinates"]
        px, py = (mx / world_m + 0.5) * mvt.EXTENT, (0.5 - my / world_m) * mvt.EXTENT
        points.append(
            (left + px * (right - left) / mvt.EXTENT, top - py * (top - bottom) / mvt.EXTENT)
        )
    return points


@pytest.mark.slow
def test_no_public_route_shows_the_exact_place_of_a_blurred_incident(
    world: World, tmp_path: Path
) -> None:
    client, target = world.client, world.target
    checked: list[str] = []
    tiles_with_target = 0
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        if not context.methods or "GET" not in context.methods:
            continue
        path = context.path
        for values, query in product(_values(world, path), _queries(path, target)):
            url = path.format_map(values)
            response = client.get(url, params=query)
            if response.status_code in (401, 403) or (
                response.is_redirect and "/staff/login" in response.headers["location"]
            ):
                continue  # staff only
            assert response.status_code < 500, f"{url} {query}: {response.text[:300]}"
            kind = response.headers.get("content-type", "")
            where = f"{url} {query}"
            if kind.startswith(mvt.MEDIA_TYPE):
                tiles_with_target += _check_tile(response.content, values, target, tmp_path)
            elif url.endswith(".gpkg"):
                _check_geopackage(response.content, target, tmp_path, where)
            elif url.endswith(".qgz"):
                with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                    for name in archive.namelist():
                        leak = _text_leaks(archive.read(name).decode("utf-8", "replace"), target)
                        assert leak is None, f"{where} ({name}) shows {leak}"
            else:
                leak = _text_leaks(response.content.decode("utf-8", "replace"), target)
                assert leak is None, f"{where} shows {leak}"
            checked.append(url)
    for expected in (
        "/open311/v2/requests.json",
        "/open311/v2/requests.xml",
        "/ogc/collections/incidents/items",
        "/ogc/collections/reports/items",
        "/exports/incidents.gpkg",
        "/exports/reports.csv",
        "/exports/reports.geojson",
        "/api/v1/nearby",
        "/maps/nearby",
        "/maps/dispatch",
        "/signaler",
        "/tiles/incidents/17/",
        "/ogc/collections/incidents/tiles/WorldCRS84Quad/17/",
    ):
        assert any(url.startswith(expected) for url in checked), expected
    assert tiles_with_target >= 2  # the public point in /tiles and in the OGC WebMercatorQuad
    # The description is public, its house number masked.
    ids = ",".join(str(i) for i in target.report_ids)
    shown = client.get("/open311/v2/requests.json", params={"service_request_id": ids})
    assert target.description in {r["description"] for r in shown.json()}
    export = client.get("/exports/reports.csv").text
    assert target.description in export

    # Staff keep the exact point.
    staff = client.get(f"/api/v1/incidents/{target.incident_id}", headers=world.dispatcher)
    assert staff.status_code == 200, staff.text
    assert _text_leaks(staff.text, target) is not None


def _check_tile(content: bytes, values: dict[str, str], target: Target, folder: Path) -> int:
    """No feature of a tile at an exact point; 1 when it holds the target at its public
    point (a tile of zoom 14 or more holding it)."""
    if not content:
        return 0
    grid = values.get("tileMatrixSetId", GRIDS[0])
    z = int(values.get("z", values.get("tileMatrix", "0")))
    x = int(values.get("x", values.get("tileCol", "0")))
    y = int(values.get("y", values.get("tileRow", "0")))
    if grid == GRIDS[0]:
        features = _mercator_points(content, z, x, y, folder)
        points = [f["lonlat"] for f in features]
        assert not _near(points, target.exact), f"tile {grid} {z}/{x}/{y} at an exact point"
        if z < mvt.CLUSTER_BELOW_ZOOM:
            return 0
        mine = [
            f["lonlat"] for f in features if f["properties"].get("mvt_id") == target.incident_id
        ]
        return int(bool(mine) and _metres(mine[0], target.public) <= NEAR_M)
    points = _crs84_points(content, z, y, x, folder)
    assert not _near(points, target.exact), f"tile {grid} {z}/{y}/{x} at an exact point"
    return 0


def _check_geopackage(content: bytes, target: Target, folder: Path, where: str) -> None:
    path = folder / "download.gpkg"
    path.write_bytes(content)
    for layer, _ in pyogrio.list_layers(path):
        frame = gpd.read_file(path, layer=layer)
        points = [(p.x, p.y) for p in frame.geometry.to_crs(4326) if p is not None]
        assert not _near(points, target.exact), f"{where} ({layer}) at an exact point"
        text = frame.drop(columns="geometry").to_csv()
        leak = _text_leaks(text, target)
        assert leak is None, f"{where} ({layer}) shows {leak}"
