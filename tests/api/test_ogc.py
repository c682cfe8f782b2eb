"""OGC API Features (Part 1 Core, Part 2 CRS) on both backends, through the app itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer

from voirie.maps.ogc import CONFORMANCE, CRS84
from voirie.model import Contact, Report
from voirie.store.selection import Selection

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
ITEMS = "/ogc/collections/incidents/items"


def get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rels(document: dict[str, Any]) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in document["links"]}


def test_landing_page_links_everything_with_absolute_urls(client: TestClient) -> None:
    response = client.get("/ogc")
    assert response.headers["content-type"].startswith("application/json")
    links = rels(response.json())
    assert links["conformance"] == "http://testserver/ogc/conformance"
    assert links["data"] == "http://testserver/ogc/collections"
    assert links["service-desc"] == "http://testserver/ogc/api"
    assert links["service-doc"] == "http://testserver/docs"


def test_conformance_declares_core_geojson_html_oas30_and_crs(client: TestClient) -> None:
    assert get(client, "/ogc/conformance")["conformsTo"] == list(CONFORMANCE)


def test_collections_list_layers_with_extent_and_crs(client: TestClient) -> None:
    body = get(client, "/ogc/collections")
    found = {c["id"]: c for c in body["collections"]}
    assert list(found) == [
        "incidents",
        "reports",
        "streets",
        "arrondissement",
        "quartier",
        "espace_vert",
    ]
    incidents = found["incidents"]
    assert incidents["storageCrs"] == CRS84
    assert found["streets"]["storageCrs"] == f"{EPSG}2154"
    assert {CRS84, f"{EPSG}4326", f"{EPSG}2154", f"{EPSG}3857"} <= set(incidents["crs"])
    minlon, minlat, maxlon, maxlat = incidents["extent"]["spatial"]["bbox"][0]
    assert 2.2 < minlon < 2.3 < 2.4 < maxlon < 2.5
    assert 48.8 < minlat < 48.85 < 48.88 < maxlat < 48.95
    items = [link for link in incidents["links"] if link["rel"] == "items"]
    assert {link["type"] for link in items} == {"application/geo+json", "text/html"}
    assert get(client, "/ogc/collections/quartier")["id"] == "quartier"


def test_paging_walks_every_incident_once_with_next_and_prev(client: TestClient) -> None:
    first = get(client, ITEMS, limit=50)
    total = first["numberMatched"]
    assert first["numberReturned"] == 50
    assert "prev" not in rels(first)
    seen = [f["id"] for f in first["features"]]
    page = first
    while "next" in rels(page):
        url = rels(page)["next"]
        assert url.startswith("http://testserver/ogc/collections/incidents/items?")
        page = client.get(url).json()
        assert "prev" in rels(page)
        seen += [f["id"] for f in page["features"]]
    assert len(seen) == len(set(seen)) == total > 100
    assert seen == sorted(seen)


def test_next_links_seek_by_id_and_give_the_pages_offsets_give(client: TestClient) -> None:
    first = get(client, ITEMS, limit=30)
    following = parse_qs(urlsplit(rels(first)["next"]).query)
    assert following["offset"] == ["30"]
    assert following["after"] == [str(first["features"][-1]["id"])]
    by_id = get(client, ITEMS, limit=30, after=following["after"][0], offset=30)
    by_offset = get(client, ITEMS, limit=30, offset=30)
    assert [f["id"] for f in by_id["features"]] == [f["id"] for f in by_offset["features"]]
    assert by_id["numberMatched"] == by_offset["numberMatched"] == first["numberMatched"]
    response = client.get("/ogc/collections/streets/items", params={"after": "3"})
    assert response.status_code == 400
    assert response.json()["field"] == "after"


def test_api_definition_advertises_the_paging_clients_read(client: TestClient) -> None:
    response = client.get("/ogc/api")
    assert response.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.0"
    api = response.json()
    assert api["servers"] == [{"url": "http://testserver/ogc"}]
    # QGIS reads components/parameters/limit; GDAL (3.8+) follows the $ref of each
    # collection's items path, relative to the server URL.
    limit = api["components"]["parameters"]["limit"]["schema"]
    assert limit == {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1_000}
    for collection in ("incidents", "reports", "streets", "arrondissement"):
        parameters = api["paths"][f"/collections/{collection}/items"]["get"]["parameters"]
        assert {"$ref": "#/components/parameters/limit"} in parameters
    default = get(client, ITEMS)
    assert default["numberReturned"] == min(1_000, default["numberMatched"])


def test_bbox_keeps_only_points_inside(client: TestClient) -> None:
    box = (2.365, 48.855, 2.39, 48.87)
    body = get(client, ITEMS, bbox=",".join(map(str, box)), limit=1000)
    assert 0 < body["numberMatched"] == body["numberReturned"]
    for feature in body["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert box[0] <= lon <= box[2]
        assert box[1] <= lat <= box[3]


def test_bbox_crs_in_lambert93_and_in_lat_lon_order_select_the_same(client: TestClient) -> None:
    box = (2.365, 48.855, 2.39, 48.87)
    plain = get(client, ITEMS, bbox=",".join(map(str, box)), limit=1000)
    lat_lon = get(
        client,
        ITEMS,
        bbox=f"{box[1]},{box[0]},{box[3]},{box[2]}",
        **{"bbox-crs": f"{EPSG}4326"},
        limit=1000,
    )
    assert [f["id"] for f in lat_lon["features"]] == [f["id"] for f in plain["features"]]
    to_l93 = Transformer.from_crs(4326, 2154, always_xy=True)
    x0, y0, x1, y1 = to_l93.transform_bounds(*box)
    l93 = get(client, ITEMS, bbox=f"{x0},{y0},{x1},{y1}", **{"bbox-crs": f"{EPSG}2154"}, limit=1000)
    # The Lambert-93 box holds the WGS84 one (its corners bulge out a little).
    assert {f["id"] for f in plain["features"]} <= {f["id"] for f in l93["features"]}


def test_output_crs_axis_order_and_content_crs(client: TestClient) -> None:
    lon_lat = client.get(ITEMS, params={"limit": 1})
    assert lon_lat.headers["content-crs"] == f"<{CRS84}>"
    lon, lat = lon_lat.json()["features"][0]["geometry"]["coordinates"]
    lat_lon = client.get(ITEMS, params={"limit": 1, "crs": f"{EPSG}4326"})
    assert lat_lon.headers["content-crs"] == f"<{EPSG}4326>"
    assert lat_lon.json()["features"][0]["geometry"]["coordinates"] == [lat, lon]
    for code in (2154, 3857):
        response = client.get(ITEMS, params={"limit": 1, "crs": f"{EPSG}{code}"})
        assert response.headers["content-crs"] == f"<{EPSG}{code}>"
        x, y = response.json()["features"][0]["geometry"]["coordinates"]
        ex, ey = Transformer.from_crs(4326, code, always_xy=True).transform(lon, lat)
        assert abs(x - ex) < 0.001
        assert abs(y - ey) < 0.001


def test_datetime_and_property_filters(client: TestClient) -> None:
    everything = get(client, ITEMS, limit=1000)["features"]
    new = get(client, ITEMS, status="new", limit=1000)
    assert new["numberMatched"] == sum(f["properties"]["status"] == "new" for f in everything)
    team = everything[0]["properties"]["team"]
    by_team = get(client, ITEMS, team=team, limit=1000)["features"]
    assert by_team
    assert {f["properties"]["team"] for f in by_team} == {team}
    zone = everything[0]["properties"]["zone_arrondissement"]
    in_zone = get(client, ITEMS, zone_arrondissement=zone, limit=1000)["features"]
    assert {f["properties"]["zone_arrondissement"] for f in in_zone} == {zone}
    since = "2023-08-01T00:00:00Z"
    later = get(client, ITEMS, datetime=f"{since}/..", limit=1000)["features"]
    assert 0 < len(later) < len(everything)
    assert all(f["properties"]["last_reported_at"] >= since for f in later)
    before = get(client, ITEMS, datetime=f"../{since}", limit=1000)["features"]
    assert all(f["properties"]["first_reported_at"] <= since for f in before)


def test_single_item_and_reference_layers(client: TestClient) -> None:
    first = get(client, ITEMS, limit=1)["features"][0]
    item = client.get(f"{ITEMS}/{first['id']}", params={"crs": f"{EPSG}2154"})
    assert item.headers["content-crs"] == f"<{EPSG}2154>"
    assert item.json()["id"] == first["id"]
    assert rels(item.json())["collection"] == "http://testserver/ogc/collections/incidents"
    zone = get(client, "/ogc/collections/arrondissement/items", code="11")
    assert zone["numberMatched"] == 1
    assert zone["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    streets = get(client, "/ogc/collections/streets/items", street_name="Rue Oberkampf")
    assert streets["numberMatched"] > 1
    assert {f["properties"]["street_name"] for f in streets["features"]} == {"Rue Oberkampf"}
    report = get(client, "/ogc/collections/reports/items", limit=1)["features"][0]
    assert not {"email", "phone", "device_id", "name"} & set(report["properties"])


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        (f"{ITEMS}?limit=0", 400, "limit"),
        (f"{ITEMS}?limit=abc", 400, "limit"),
        (f"{ITEMS}?offset=-1", 400, "offset"),
        (f"{ITEMS}?bbox=1,2,3", 400, "bbox"),
        (f"{ITEMS}?bbox=2.4,48.9,2.3,48.8", 400, "bbox"),
        (f"{ITEMS}?crs=EPSG:27700", 400, "crs"),
        (f"{ITEMS}?datetime=yesterday", 400, "datetime"),
        (f"{ITEMS}?colour=red", 400, "colour"),
        (f"{ITEMS}?f=xml", 400, "f"),
        ("/ogc/collections/roads", 404, "collectionId"),
        (f"{ITEMS}/999999", 404, "featureId"),
        (f"{ITEMS}/abc", 404, "featureId"),
    ],
)
def test_bad_requests_name_the_parameter(
    client: TestClient, path: str, status: int, field: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["field"] == field


def test_html_on_request_escaped_and_offline(client: TestClient) -> None:
    for path in (
        "/ogc",
        "/ogc/conformance",
        "/ogc/collections",
        "/ogc/collections/incidents",
        ITEMS,
        f"{ITEMS}/1",
    ):
        by_param = client.get(path, params={"f": "html"})
        by_header = client.get(path, headers={"Accept": "text/html"})
        for response in (by_param, by_header):
            assert response.headers["content-type"].startswith("text/html")
            page = response.text
            # Scripts only from the app itself, and the map's data as inert JSON.
            for script in re.findall(r"<script[^>]*>", page):
                assert 'src="/static/' in script or 'type="application/json"' in script, script
            # Nothing fetched from elsewhere: the only outside addresses are links
            # (the data's credits and the OGC's own identifiers), never sources.
            assert not re.search(
                r"""(?:src|href)=["']?https?://(?!testserver/)[^"']*\.(?:js|css)""", page
            )
            assert not re.search(r"""src=["']?https?://(?!testserver/)""", page)
    assert client.get(ITEMS).headers["content-type"] == "application/geo+json"


def test_openapi_declares_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    items = paths["/ogc/collections/{collectionId}/items"]["get"]
    assert set(items["responses"]["200"]["content"]) == {"application/geo+json", "text/html"}
    assert {p["name"] for p in items["parameters"]} >= {
        "limit",
        "offset",
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "f",
    }
    assert set(paths["/ogc"]["get"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/html",
    }


def test_what_a_citizen_wrote_is_escaped_in_html(client: TestClient) -> None:
    pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
    service = pipeline.reads.reports(Selection(limit=1))["service_code"].iloc[0]
    hostile = "<script>alert('voirie')</script><img src=x onerror=alert(1)>"
    submitted = pipeline.intake.submit(
        Report(
            external_id="xss-1",
            source="test",
            service_code=service,
            lon=2.3631,
            lat=48.8735,
            requested_at=datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
            description=hostile,
            contact=Contact(email="voisine@example.org"),
        )
    )
    for path in (
        f"/ogc/collections/reports/items/{submitted.report_id}?",
        f"/ogc/collections/reports/items?incident_id={submitted.incident_id}&",
    ):
        page = client.get(f"{path}f=html").text
        assert "&lt;script&gt;" in page
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "voisine@example.org" not in page
        assert "voisine@example.org" not in client.get(path).text
