"""Vector tile endpoints on both backends: TileJSON, tiles, cache headers, bad addresses."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from voirie.codecs import mvt


def test_tilejson_describes_the_layer(client: TestClient) -> None:
    response = client.get("/tiles/incidents.json")
    assert response.headers["cache-control"] == "public, max-age=60"
    body = response.json()
    assert body["tilejson"] == "3.0.0"
    assert body["tiles"] == ["http://testserver/tiles/incidents/{z}/{x}/{y}.mvt"]
    assert body["vector_layers"][0]["id"] == "incidents"
    layer = body["vector_layers"][0]
    assert set(layer["fields"]) == set(mvt.FIELDS) | set(mvt.CLUSTER_FIELDS)
    assert layer["fields"]["count"].endswith(f"(zoom below {mvt.CLUSTER_BELOW_ZOOM})")
    assert layer["fields"]["team"].endswith(f"(zoom {mvt.CLUSTER_BELOW_ZOOM} and more)")
    assert f"{mvt.CELL}x{mvt.CELL}" in layer["description"]
    minlon, minlat, maxlon, maxlat = body["bounds"]
    assert minlon < 2.35 < maxlon
    assert minlat < 48.86 < maxlat


def test_tile_is_served_with_its_media_type_and_cache_headers(client: TestClient) -> None:
    response = client.get("/tiles/incidents/12/2074/1409.mvt")
    assert response.status_code == 200
    assert response.headers["content-type"] == mvt.MEDIA_TYPE
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.content[:1] == b"\x1a"  # Tile.layers, field 3, length-delimited
    assert b"incidents" in response.content
    assert b"team" in client.get("/tiles/incidents/14/8298/5636.mvt").content
    city = client.get("/tiles/incidents/10/518/352.mvt").content
    assert b"reports" in city
    assert b"team" not in city  # aggregated cells carry no incident attribute
    empty = client.get("/tiles/incidents/10/400/360.mvt")
    assert empty.status_code == 200
    assert empty.content == b""


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/tiles/incidents/23/0/0.mvt", "z"),
        ("/tiles/incidents/2/4/0.mvt", "x"),
        ("/tiles/incidents/2/0/-1.mvt", "y"),
    ],
)
def test_tiles_that_do_not_exist_are_refused(client: TestClient, path: str, field: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.json()["field"] == field
