"""OGC API Features Part 3 on both backends: queryables, and ``filter`` in CQL2 text and JSON.

The cases follow the examples of the CQL2 standard (OGC 21-065r2, Annex B) that apply to
point layers of incidents and reports: basic comparisons, LIKE/BETWEEN/IN, IS NULL,
CASEI, S_INTERSECTS with a BBOX and a polygon, and comparisons of the time fields with
TIMESTAMP, DATE and INTERVAL. Each answer is checked against the same condition computed
here with pandas and shapely over the whole layer as the app reads it, and each condition
keeps some features and drops others, so a filter the server ignored would fail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from liveserver import LiveServer
from pyproj import Transformer

from voirie.maps.ogc import CONFORMANCE
from voirie.maps.ogc_filter import CONFORMANCE as FILTER_CONFORMANCE
from voirie.services.pipeline import Pipeline

# The 11th arrondissement's centre, where the sample has reports on several streets.
BOX = (2.36, 48.855, 2.385, 48.87)
TRIANGLE = ((2.36, 48.855), (2.385, 48.855), (2.385, 48.87), (2.36, 48.855))
WKT_TRIANGLE = ", ".join(f"{x} {y}" for x, y in TRIANGLE)
MIDDLE = "2023-08-10T00:00:00Z"  # the sample runs from 2023-07-18 to 2023-08-25


def _pipeline(client: TestClient) -> Pipeline:
    pipeline: Pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
    return pipeline


def _layer(client: TestClient, collection: str) -> gpd.GeoDataFrame:
    reads = _pipeline(client).reads
    return reads.incidents() if collection == "incidents" else reads.reports()


def _ids(client: TestClient, collection: str, **params: str) -> list[int]:
    response = client.get(
        f"/ogc/collections/{collection}/items", params={"limit": "10000", **params}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == len(body["features"])
    return sorted(int(f["id"]) for f in body["features"])


def _utc(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, utc=True, format="ISO8601")


Expected = Callable[[gpd.GeoDataFrame], pd.Series]
_INSIDE = shapely.Polygon(TRIANGLE)
CASES: list[tuple[str, str, dict[str, Any], Expected]] = [
    (
        "incidents",
        "team = 'Ramen'",
        {"op": "=", "args": [{"property": "team"}, "Ramen"]},
        lambda f: f["team"] == "Ramen",
    ),
    (
        "incidents",
        "team <> 'Ramen' AND NOT (team = 'graffitis')",
        {
            "op": "and",
            "args": [
                {"op": "<>", "args": [{"property": "team"}, "Ramen"]},
                {"op": "not", "args": [{"op": "=", "args": [{"property": "team"}, "graffitis"]}]},
            ],
        },
        lambda f: ~f["team"].isin(["Ramen", "graffitis"]),
    ),
    (
        "incidents",
        "street_name LIKE 'Rue de%'",
        {"op": "like", "args": [{"property": "street_name"}, "Rue de%"]},
        lambda f: f["street_name"].fillna("").str.startswith("Rue de"),
    ),
    (
        "incidents",
        "CASEI(street_name) LIKE casei('rue de%')",
        {
            "op": "like",
            "args": [
                {"op": "casei", "args": [{"property": "street_name"}]},
                {"op": "casei", "args": ["rue de%"]},
            ],
        },
        lambda f: f["street_name"].fillna("").str.lower().str.startswith("rue de"),
    ),
    (
        "incidents",
        "team IN ('DVD', 'EPHYRA', 'La Poste')",
        {"op": "in", "args": [{"property": "team"}, ["DVD", "EPHYRA", "La Poste"]]},
        lambda f: f["team"].isin(["DVD", "EPHYRA", "La Poste"]),
    ),
    (
        "reports",
        "snap_distance_m BETWEEN 2 AND 10",
        {"op": "between", "args": [{"property": "snap_distance_m"}, 2, 10]},
        lambda f: f["snap_distance_m"].between(2, 10),
    ),
    (
        "reports",
        "incident_id < 50 OR incident_id >= 180",
        {
            "op": "or",
            "args": [
                {"op": "<", "args": [{"property": "incident_id"}, 50]},
                {"op": ">=", "args": [{"property": "incident_id"}, 180]},
            ],
        },
        lambda f: (f["incident_id"] < 50) | (f["incident_id"] >= 180),
    ),
    (
        "incidents",
        "street_name IS NULL OR zone_arrondissement = '11'",
        {
            "op": "or",
            "args": [
                {"op": "isNull", "args": [{"property": "street_name"}]},
                {"op": "=", "args": [{"property": "zone_arrondissement"}, "11"]},
            ],
        },
        lambda f: f["street_name"].isna() | (f["zone_arrondissement"] == "11"),
    ),
    (
        "incidents",
        "S_INTERSECTS(geometry, BBOX({}, {}, {}, {}))".format(*BOX),
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(BOX)}]},
        lambda f: f["lon"].between(BOX[0], BOX[2]) & f["lat"].between(BOX[1], BOX[3]),
    ),
    (
        "reports",
        f"S_INTERSECTS(geometry, POLYGON(({WKT_TRIANGLE})))",
        {
            "op": "s_intersects",
            "args": [
                {"property": "geometry"},
                {"type": "Polygon", "coordinates": [[list(p) for p in TRIANGLE]]},
            ],
        },
        lambda f: pd.Series(shapely.contains_xy(_INSIDE, f["lon"], f["lat"]), index=f.index),
    ),
    (
        "reports",
        f"requested_at > TIMESTAMP('{MIDDLE}')",
        {"op": ">", "args": [{"property": "requested_at"}, {"timestamp": MIDDLE}]},
        lambda f: _utc(f["requested_at"]) > pd.Timestamp(MIDDLE),
    ),
    (
        "reports",
        f"T_BEFORE(requested_at, TIMESTAMP('{MIDDLE}'))",
        {"op": "t_before", "args": [{"property": "requested_at"}, {"timestamp": MIDDLE}]},
        lambda f: _utc(f["requested_at"]) < pd.Timestamp(MIDDLE),
    ),
    (
        "reports",
        "requested_at >= DATE('2023-08-10')",
        {"op": ">=", "args": [{"property": "requested_at"}, {"date": "2023-08-10"}]},
        lambda f: _utc(f["requested_at"]) >= pd.Timestamp("2023-08-10T00:00:00Z"),
    ),
    (
        "incidents",
        "T_INTERSECTS(first_reported_at, INTERVAL('2023-08-01', '2023-08-15'))",
        {
            "op": "t_intersects",
            "args": [{"property": "first_reported_at"}, {"interval": ["2023-08-01", "2023-08-15"]}],
        },
        lambda f: _utc(f["first_reported_at"]).between(
            pd.Timestamp("2023-08-01T00:00:00Z"),
            pd.Timestamp("2023-08-16T00:00:00Z"),
            inclusive="left",
        ),
    ),
    (
        "incidents",
        f"T_AFTER(first_reported_at, INTERVAL('2023-07-01T00:00:00Z', '{MIDDLE}'))",
        {
            "op": "t_after",
            "args": [
                {"property": "first_reported_at"},
                {"interval": ["2023-07-01T00:00:00Z", MIDDLE]},
            ],
        },
        lambda f: _utc(f["first_reported_at"]) > pd.Timestamp(MIDDLE),
    ),
    (
        "reports",
        f"T_DURING(requested_at, INTERVAL('{MIDDLE}', '..')) AND team = 'Ramen'",
        {
            "op": "and",
            "args": [
                {
                    "op": "t_during",
                    "args": [{"property": "requested_at"}, {"interval": [MIDDLE, ".."]}],
                },
                {"op": "=", "args": [{"property": "team"}, "Ramen"]},
            ],
        },
        lambda f: (_utc(f["requested_at"]) > pd.Timestamp(MIDDLE)) & (f["team"] == "Ramen"),
    ),
]


@pytest.mark.parametrize(("collection", "text", "as_json", "expected"), CASES)
def test_filter_in_text_and_json_keeps_what_the_condition_keeps(
    client: TestClient,
    collection: str,
    text: str,
    as_json: dict[str, Any],
    expected: Expected,
) -> None:
    frame = _layer(client, collection)
    key = "incident_id" if collection == "incidents" else "report_id"
    keep = expected(frame).fillna(False).astype(bool)
    wanted = sorted(int(i) for i in frame.loc[keep, key])
    assert 0 < len(wanted) < len(frame), f"{text}: the sample should split on it"
    assert _ids(client, collection, filter=text) == wanted
    explicit = {"filter": text, "filter-lang": "cql2-text"}
    assert _ids(client, collection, **explicit) == wanted
    as_json_text = json.dumps(as_json)
    assert _ids(client, collection, filter=as_json_text, **{"filter-lang": "cql2-json"}) == wanted


def test_filter_combines_with_bbox_datetime_and_paging(client: TestClient) -> None:
    frame = _layer(client, "reports")
    keep = (frame["team"] == "Ramen") & _utc(frame["requested_at"]).lt(pd.Timestamp(MIDDLE))
    wanted = sorted(int(i) for i in frame.loc[keep, "report_id"])
    assert len(wanted) > 3
    pages: list[int] = []
    url: str | None = "/ogc/collections/reports/items"
    params: dict[str, str] | None = {
        "filter": "team = 'Ramen'",
        "datetime": f"../{MIDDLE}",
        "limit": "3",
    }
    while url:
        body = client.get(url, params=params).json()
        assert body["numberMatched"] == len(wanted)
        pages.extend(int(f["id"]) for f in body["features"])
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params = None
    assert pages == wanted


def test_filter_crs_takes_the_polygon_in_lambert_93(client: TestClient) -> None:
    to_2154 = Transformer.from_crs("OGC:CRS84", "EPSG:2154", always_xy=True)
    ring = ", ".join("{:.3f} {:.3f}".format(*to_2154.transform(x, y)) for x, y in TRIANGLE)
    in_2154 = _ids(
        client,
        "reports",
        filter=f"S_INTERSECTS(geometry, POLYGON(({ring})))",
        **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/2154"},
    )
    in_crs84 = _ids(client, "reports", filter=f"S_INTERSECTS(geometry, POLYGON(({WKT_TRIANGLE})))")
    assert in_2154 == in_crs84
    assert in_2154
    lat_first = ", ".join(f"{y} {x}" for x, y in TRIANGLE)
    in_4326 = _ids(
        client,
        "reports",
        filter=f"S_INTERSECTS(geometry, POLYGON(({lat_first})))",
        **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
    )
    assert in_4326 == in_crs84


@pytest.mark.parametrize(
    ("collection", "params", "field", "words"),
    [
        ("incidents", {"filter": "colour = 'red'"}, "filter", "unknown property 'colour'"),
        ("incidents", {"filter": "team = "}, "filter", "not valid cql2-text"),
        ("incidents", {"filter": "team > 3"}, "filter", "compares number and string"),
        ("incidents", {"filter": "{", "filter-lang": "cql2-json"}, "filter", "cql2-json"),
        ("incidents", {"filter": "team = 'x'", "filter-lang": "ecql"}, "filter-lang", "ecql"),
        ("incidents", {"filter-lang": "cql2-text"}, "filter-lang", "without filter"),
        (
            "incidents",
            {"filter": "team = 'x'", "filter-crs": "EPSG:99999"},
            "filter-crs",
            "unknown CRS",
        ),
        ("incidents", {"filter": "ACCENTI(team) = 'x'"}, "filter", "accenti"),
        (
            "incidents",
            {"filter": "S_CROSSES(geometry, LINESTRING(2.3 48.8, 2.4 48.9))"},
            "filter",
            "s_crosses",
        ),
        (
            "incidents",
            {"filter": "S_INTERSECTS(geometry, LINESTRING(2.3 48.8, 2.4 48.9))"},
            "filter",
            "LineString",
        ),
        ("incidents", {"filter": "T_AFTER(team, DATE('2023-01-01'))"}, "filter", "not a time"),
        ("streets", {"filter": "l_longitud > 3"}, "filter", "takes no CQL2 filter"),
        (
            "reports",
            {"filter": "S_INTERSECTS(geometry, BBOX(1e400, 0, 1, 2))"},
            "filter",
            "finite",
        ),
    ],
)
def test_bad_filters_are_400_naming_the_problem(
    client: TestClient, collection: str, params: dict[str, str], field: str, words: str
) -> None:
    response = client.get(f"/ogc/collections/{collection}/items", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert words in response.json()["detail"]


def test_queryables_are_a_json_schema_linked_from_the_collection(client: TestClient) -> None:
    collection = client.get("/ogc/collections/reports").json()
    rel = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
    href = next(link["href"] for link in collection["links"] if link["rel"] == rel)
    assert href == "http://testserver/ogc/collections/reports/queryables"
    response = client.get(href)
    assert response.headers["content-type"] == "application/schema+json"
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    assert schema["$id"] == href
    properties = schema["properties"]
    assert properties["geometry"]["x-ogc-role"] == "primary-geometry"
    assert properties["requested_at"] == {
        "title": "Date du signalement",
        "type": "string",
        "format": "date-time",
        "x-ogc-role": "primary-instant",
    }
    assert "new" in properties["status"]["enum"]
    assert "Ramen" in properties["team"]["enum"]
    assert {"zone_arrondissement", "zone_quartier"} <= set(properties)
    assert not {"description", "address", "contact_email"} & set(properties)
    html = client.get(href, params={"f": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert client.get("/ogc/collections/streets/queryables").status_code == 404


def test_conformance_and_api_definition_declare_the_filter(client: TestClient) -> None:
    conforms = client.get("/ogc/conformance").json()["conformsTo"]
    assert set(FILTER_CONFORMANCE) <= set(conforms) == set(CONFORMANCE)
    definition = client.get("/ogc/api").json()
    items = definition["paths"]["/collections/incidents/items"]["get"]["parameters"]
    refs = {p.get("$ref", "").rsplit("/", 1)[-1] for p in items}
    assert {"filter", "filter-lang", "filter-crs"} <= refs
    assert "/collections/incidents/queryables" in definition["paths"]


def test_gdal_attribute_filter_through_oapif(server: LiveServer, tmp_path: Path) -> None:
    """``ogr2ogr -where`` on the OAPIF driver gives the features the server's filter keeps.

    The driver hands the server what it can: Debian 12's GDAL 3.6 sends the equality as the
    ``team`` query parameter and tests the LIKE itself; GDAL 3.7 and later send the whole
    condition as a CQL2-text ``filter`` (this API declares the conformance classes).
    """
    out = tmp_path / "ramen.geojson"
    done = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            f"OAPIF:{server.base}/ogc",
            "incidents",
            "-where",
            "team = 'Ramen' AND street_name LIKE 'Rue%'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = sorted(
        int(f["properties"]["incident_id"]) for f in json.loads(out.read_text())["features"]
    )
    body = json.loads(
        server.get(
            "/ogc/collections/incidents/items?limit=10000&filter="
            "team%20%3D%20%27Ramen%27%20AND%20street_name%20LIKE%20%27Rue%25%27"
        )
    )
    wanted = sorted(int(f["id"]) for f in body["features"])
    assert 0 < len(got) == len(wanted) < 200
    assert got == wanted
    sent = [line for line in server.requests() if "/collections/incidents/items?" in line]
    assert any("team=Ramen" in line or "filter=" in line for line in sent[:-1]), sent
