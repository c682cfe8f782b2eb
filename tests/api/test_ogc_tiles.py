"""OGC API Tiles over the incident vector tiles, on both backends: the tile matrix sets, the
tilesets, the TileJSON with its attribution, the tiles themselves (the WebMercatorQuad ones
are the bytes of the ``/tiles/...`` path), and GDAL reading them from a live server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import morecantile
import pyogrio
import pytest
from fastapi.testclient import TestClient
from liveserver import LiveServer

from voirie.codecs import mvt
from voirie.maps.ogc import CONFORMANCE
from voirie.maps.ogc_tiles import CONFORMANCE as TILES_CONFORMANCE

OGC = "http://testserver/ogc"
TILESET = "/ogc/collections/incidents/tiles/WebMercatorQuad"
CRS84_TILESET = "/ogc/collections/incidents/tiles/WorldCRS84Quad"


def _get(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _rel(document: dict[str, Any], rel: str) -> dict[str, Any]:
    return next(link for link in document["links"] if link["rel"] == rel)


def test_tile_matrix_sets_list_and_define_web_mercator_quad(client: TestClient) -> None:
    listed = _get(client, "/ogc/tileMatrixSets")["tileMatrixSets"]
    assert [m["id"] for m in listed] == ["WebMercatorQuad", "WorldCRS84Quad"]
    href = _rel(listed[0], "self")["href"]
    assert href == f"{OGC}/tileMatrixSets/WebMercatorQuad"
    definition = _get(client, "/ogc/tileMatrixSets/WebMercatorQuad")
    reference = morecantile.tms.get("WebMercatorQuad")
    assert definition["uri"] == str(reference.uri)
    assert definition["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert len(definition["tileMatrices"]) == len(reference.tileMatrices)
    assert definition["tileMatrices"][12]["matrixWidth"] == 4096
    crs84 = _get(client, "/ogc/tileMatrixSets/WorldCRS84Quad")
    assert crs84["crs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert crs84["tileMatrices"][0]["topLeftCorner"] == [-180, 90]
    assert crs84["tileMatrices"][0]["matrixWidth"] == 2
    missing = client.get("/ogc/tileMatrixSets/GNOSISGlobalGrid")
    assert missing.status_code == 404
    assert missing.json()["field"] == "tileMatrixSetId"


def test_landing_collection_and_conformance_point_at_the_tiles(client: TestClient) -> None:
    landing = _get(client, "/ogc")
    schemes = _rel(landing, "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes")
    assert schemes["href"] == f"{OGC}/tileMatrixSets"
    incidents = _get(client, "/ogc/collections/incidents")
    tiles = _rel(incidents, "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector")
    assert tiles["href"] == f"{OGC}/collections/incidents/tiles"
    reports = _get(client, "/ogc/collections/reports")
    assert "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector" not in {
        link["rel"] for link in reports["links"]
    }
    conforms = _get(client, "/ogc/conformance")["conformsTo"]
    assert set(TILES_CONFORMANCE) <= set(conforms) == set(CONFORMANCE)
    assert client.get("/ogc/collections/reports/tiles").status_code == 404


def test_tileset_gives_the_tile_template_and_the_city_limits(client: TestClient) -> None:
    listed = _get(client, "/ogc/collections/incidents/tiles")["tilesets"]
    assert [t["dataType"] for t in listed] == ["vector", "vector"]
    assert _rel(listed[0], "self")["href"] == f"http://testserver{TILESET}"
    assert _rel(listed[1], "self")["href"] == f"http://testserver{CRS84_TILESET}"
    tileset = _get(client, TILESET)
    item = _rel(tileset, "item")
    assert item["href"] == f"http://testserver{TILESET}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    assert item["templated"] is True
    assert item["type"] == mvt.MEDIA_TYPE
    assert tileset["tileMatrixSetURI"] == str(morecantile.tms.get("WebMercatorQuad").uri)
    assert "OpenStreetMap" in tileset["attribution"]
    assert "ODbL" in tileset["attribution"]
    limits = {limit["tileMatrix"]: limit for limit in tileset["tileMatrixSetLimits"]}
    # Paris fits in one tile at zoom 10 (column 518, row 352), in a few at zoom 12.
    assert (limits["10"]["minTileCol"], limits["10"]["minTileRow"]) == (518, 352)
    assert limits["12"]["minTileCol"] < 2074 <= limits["12"]["maxTileCol"]
    assert set(tileset["layers"][0]["propertiesSchema"]["properties"]) == set(mvt.FIELDS)


def test_tilejson_of_the_tileset_credits_odbl_and_the_city(client: TestClient) -> None:
    tileset = _get(client, TILESET)
    tilejson = _get(client, _rel(tileset, "describedby")["href"])
    assert tilejson["tiles"] == [f"http://testserver{TILESET}/{{z}}/{{y}}/{{x}}"]
    assert "Paris" in tilejson["attribution"]
    assert "OpenStreetMap" in tilejson["attribution"]
    assert "ODbL" in tilejson["attribution"]
    legacy = _get(client, "/tiles/incidents.json")
    assert legacy["attribution"] == tilejson["attribution"]


@pytest.mark.parametrize(("z", "x", "y"), [(10, 518, 352), (12, 2074, 1409), (16, 33195, 22545)])
def test_ogc_tiles_are_the_legacy_tiles(client: TestClient, z: int, x: int, y: int) -> None:
    ogc = client.get(f"{TILESET}/{z}/{y}/{x}")
    assert ogc.status_code == 200
    assert ogc.headers["content-type"] == mvt.MEDIA_TYPE
    legacy = client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt")
    assert ogc.content == legacy.content


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        (f"{TILESET}/23/0/0", 400, "tileMatrix"),
        (f"{TILESET}/2/4/0", 400, "tileRow"),
        (f"{TILESET}/2/0/-1", 400, "tileCol"),
        (f"{CRS84_TILESET}/2/4/0", 400, "tileRow"),
        (f"{CRS84_TILESET}/2/0/8", 400, "tileCol"),
        (f"{CRS84_TILESET}/metadata", 404, "tileMatrixSetId"),
        ("/ogc/collections/incidents/tiles/GNOSISGlobalGrid/2/0/0", 404, "tileMatrixSetId"),
        ("/ogc/collections/streets/tiles/WebMercatorQuad/2/0/0", 404, "collectionId"),
    ],
)
def test_bad_tile_addresses_name_the_part(
    client: TestClient, path: str, status: int, field: str
) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_crs84_tileset_limits_hold_the_city(client: TestClient) -> None:
    tileset = _get(client, CRS84_TILESET)
    assert tileset["tileMatrixSetURI"].endswith("/WorldCRS84Quad")
    assert _rel(tileset, "item")["href"].startswith(f"http://testserver{CRS84_TILESET}/")
    assert "describedby" not in {link["rel"] for link in tileset["links"]}
    limits = {limit["tileMatrix"]: limit for limit in tileset["tileMatrixSetLimits"]}
    # Paris (2.22..2.47 E, 48.82..48.90 N) in tiles of 180/1024 degrees at matrix 10.
    assert (limits["10"]["minTileCol"], limits["10"]["maxTileCol"]) == (1036, 1038)
    assert (limits["10"]["minTileRow"], limits["10"]["maxTileRow"]) == (233, 234)
    empty = client.get(f"{CRS84_TILESET}/10/0/0")
    assert empty.status_code == 200
    assert empty.content == b""


def test_gdal_reads_the_tiles_the_tileset_points_at(server: LiveServer, tmp_path: Path) -> None:
    """Debian 12's GDAL (the MVT driver) reads every zoom-10 tile the WebMercatorQuad
    tileset's limits and templated ``item`` link give: aggregated per cell, their counts add
    up to every incident."""
    tileset = json.loads(server.get("/ogc/collections/incidents/tiles/WebMercatorQuad"))
    template = next(link["href"] for link in tileset["links"] if link["rel"] == "item")
    limits = {limit["tileMatrix"]: limit for limit in tileset["tileMatrixSetLimits"]}["10"]
    counts: list[int] = []
    for row in range(limits["minTileRow"], limits["maxTileRow"] + 1):
        for col in range(limits["minTileCol"], limits["maxTileCol"] + 1):
            url = template.format(tileMatrix=10, tileRow=row, tileCol=col)
            tile = tmp_path / f"{row}-{col}.mvt"
            content = server.get(url.removeprefix(server.base))
            if not content:
                continue  # no incident there: an empty tile, which no driver opens
            tile.write_bytes(content)
            options = ["-oo", "Z=10", "-oo", f"X={col}", "-oo", f"Y={row}"]
            done = subprocess.run(
                ["ogrinfo", "-ro", "-al", *options, str(tile)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            found = re.findall(r"^\s*count \(Integer\S*\) = (\d+)$", done.stdout, re.M)
            counts.extend(int(n) for n in found)
    matched = json.loads(server.get("/ogc/collections/incidents/items?limit=1"))["numberMatched"]
    assert sum(counts) == matched > 0


def test_gdal_ogcapi_driver_reads_the_incidents_from_the_tiles(server: LiveServer) -> None:
    """GDAL's ``OGCAPI:`` driver, default options, on the collection: one layer per tile
    matrix, read from the WorldCRS84Quad tiles it picks. Through the GDAL of the pyogrio
    wheel (3.12): Debian 12's GDAL 3.6.2 is built without the driver's vector-tiles code
    and opens no layer from any OGC API Tiles server (voirie.maps.ogc_tiles)."""
    source = f"OGCAPI:{server.base}/ogc/collections/incidents?f=json"
    before = len(server.requests())
    layers = [str(name) for name, _ in pyogrio.list_layers(source)]
    assert layers == [f"Zoom level {z}" for z in range(23)]
    asked = [line.split(" ")[1] for line in server.requests()[before:]]
    assert "/ogc/collections/incidents/tiles/WorldCRS84Quad" in asked
    assert "/ogc/tileMatrixSets/WorldCRS84Quad" in asked
    items = json.loads(server.get("/ogc/collections/incidents/items?limit=1000"))
    ids = {feature["id"] for feature in items["features"]}
    assert len(ids) == items["numberMatched"] > 0
    cells = pyogrio.read_dataframe(source, layer="Zoom level 10")
    assert cells["count"].sum() == len(ids)
    incidents = pyogrio.read_dataframe(source, layer="Zoom level 13")
    assert set(incidents["mvt_id"]) == ids
    assert len(incidents) == len(ids)
    assert set(mvt.FIELDS) <= set(incidents.columns)
    assert incidents["status"].notna().all()
    assert incidents["service_code"].notna().all()
    box = incidents.total_bounds
    assert 2.2 < box[0] < box[2] < 2.5
    assert 48.8 < box[1] < box[3] < 48.91
