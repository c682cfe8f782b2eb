"""Real GDAL against a real server: OGC API Features (``OAPIF:``), downloads, tiles, QGIS.

Each backend gets one ``voirie serve`` on a free port over a store holding the 200 real
Paris reports; ``ogrinfo``/``ogr2ogr`` (Debian gdal-bin) read every layer from it.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

import pyogrio
import pytest
from liveserver import LiveServer

pytestmark = pytest.mark.slow  # left out by scripts/test -m "not slow"

VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"
PAGE_SIZE = 7


def gdal(*args: str) -> str:
    """Run a GDAL command line tool; its standard output."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def features(path: Path) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["features"]
    return found


def _all_items(server: LiveServer, collection: str, **params: str) -> dict[str, object]:
    query = "&".join(f"{k}={v}" for k, v in {"limit": "10000", **params}.items())
    body: dict[str, object] = json.loads(server.get(f"/ogc/collections/{collection}/items?{query}"))
    return body


def _items_requests(server: LiveServer, collection: str) -> list[dict[str, list[str]]]:
    path = f"/ogc/collections/{collection}/items"
    found = []
    for line in server.requests():
        target = urlsplit(line.split(" ")[1])
        if target.path == path:
            found.append(parse_qs(target.query))
    return found


def test_ogrinfo_lists_every_collection(server: LiveServer) -> None:
    listing = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{server.base}/ogc")
    for name in ("incidents", "reports", "streets", "arrondissement", "quartier"):
        assert f": {name} (" in listing or f": {name}\n" in listing, listing


def test_gdal_pages_through_every_incident(server: LiveServer, tmp_path: Path) -> None:
    matched = _all_items(server, "incidents")["numberMatched"]
    out = tmp_path / "incidents.geojson"
    before = len(_items_requests(server, "incidents"))
    gdal(
        "ogr2ogr",
        "-f",
        "GeoJSON",
        str(out),
        f"OAPIF:{server.base}/ogc",
        "incidents",
        "-oo",
        f"PAGE_SIZE={PAGE_SIZE}",
    )
    read = features(out)
    ids = [f["properties"]["incident_id"] for f in read]  # type: ignore[index]
    assert len(ids) == matched == len(set(ids))
    pages = _items_requests(server, "incidents")[before:]
    assert len(pages) >= int(str(matched)) // PAGE_SIZE
    assert any("offset" in page for page in pages)


def test_debian_gdal_asks_pages_of_10_then_follows_our_next_links(
    server: LiveServer, tmp_path: Path
) -> None:
    """Debian 12's GDAL 3.6.2, no open option: it reads no API definition and asks
    ``limit=10`` twice (``ogroapifdriver.cpp`` of the 3.6.2 release: ``m_nPageSize = 10``
    line 69, the schema sample line 1263, the first page line 1360), then requests each
    page's ``next`` href as it is (line 1483). Only that link is the server's to write, and
    it keeps the client's limit (OGC 17-069 /rec/core/fc-next-3: a ``next`` response
    follows the rules of the original query) while seeking past the last id (keyset)."""
    matched = int(str(_all_items(server, "incidents")["numberMatched"]))
    before = len(server.requests())
    out = tmp_path / "incidents.geojson"
    gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{server.base}/ogc", "incidents")
    assert len(features(out)) == matched > 30
    asked = [line.split(" ")[1] for line in server.requests()[before:]]
    assert "/ogc/api" not in asked
    pages = [a for a in asked if urlsplit(a).path == "/ogc/collections/incidents/items"]
    assert pages[:2] == ["/ogc/collections/incidents/items?limit=10"] * 2
    assert len(pages) == 1 + -(-matched // 10)
    for page, following in itertools.pairwise(pages[1:]):
        links = json.loads(server.get(page))["links"]
        assert [link["href"] for link in links if link["rel"] == "next"] == [
            server.base + following
        ]
        query = parse_qs(urlsplit(following).query)
        assert query["limit"] == ["10"]
        assert "after" in query


def test_a_recent_gdal_pages_by_the_limit_the_api_definition_gives(server: LiveServer) -> None:
    """With no open option, GDAL from 3.8 (here pyogrio's) takes its page size from the
    ``limit`` parameter of the OpenAPI document the landing page's ``service-desc`` link
    gives (``/ogc/api``: default 1,000). Debian 12's GDAL 3.6 reads no page size there:
    it always asks for 10 (GDAL issue 8522, fixed in 3.8; see the test above)."""
    matched = _all_items(server, "incidents")["numberMatched"]
    before, pages_before = len(server.requests()), len(_items_requests(server, "incidents"))
    frame = pyogrio.read_dataframe(f"OAPIF:{server.base}/ogc", layer="incidents")
    assert len(frame) == matched
    assert "/ogc/api" in [line.split(" ")[1] for line in server.requests()[before:]]
    pages = _items_requests(server, "incidents")[pages_before:]
    assert pages[-1]["limit"] == ["1000"]
    assert len(pages) <= 2  # a first look at the schema, then one page for every incident


def test_gdal_bbox_is_filtered_by_the_server(server: LiveServer, tmp_path: Path) -> None:
    everything = _all_items(server, "incidents")["features"]
    # A box around the 11th arrondissement, where the slice has many reports.
    box = (2.365, 48.855, 2.39, 48.87)
    inside = {
        f["id"]
        for f in everything  # type: ignore[attr-defined]
        if box[0] <= f["geometry"]["coordinates"][0] <= box[2]
        and box[1] <= f["geometry"]["coordinates"][1] <= box[3]
    }
    assert 0 < len(inside) < len(everything)  # type: ignore[arg-type]
    out = tmp_path / "box.geojson"
    before = len(_items_requests(server, "incidents"))
    gdal(
        "ogr2ogr",
        "-f",
        "GeoJSON",
        str(out),
        f"OAPIF:{server.base}/ogc",
        "incidents",
        "-spat",
        *map(str, box),
    )
    assert {f["properties"]["incident_id"] for f in features(out)} == inside  # type: ignore[index]
    # GDAL reads one unfiltered page to learn the schema, then asks the server for the box.
    asked = _items_requests(server, "incidents")[before:]
    assert any("bbox" in page for page in asked)
    served = _all_items(server, "incidents", bbox=",".join(map(str, box)))
    assert served["numberMatched"] == len(inside)


def test_gdal_reprojection_matches_the_servers_own_2154(server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "l93.geojson"
    gdal(
        "ogr2ogr",
        "-f",
        "GeoJSON",
        "-t_srs",
        "EPSG:2154",
        str(out),
        f"OAPIF:{server.base}/ogc",
        "incidents",
    )
    by_gdal = {
        f["properties"]["incident_id"]: f["geometry"]["coordinates"]  # type: ignore[index]
        for f in features(out)
    }
    served = _all_items(server, "incidents", crs="http://www.opengis.net/def/crs/EPSG/0/2154")
    by_server = {
        f["id"]: f["geometry"]["coordinates"]  # type: ignore[index]
        for f in served["features"]
    }  # type: ignore[attr-defined]
    assert by_gdal.keys() == by_server.keys()
    for key, (x, y) in by_server.items():
        gx, gy = by_gdal[key]
        assert abs(gx - x) < 0.01, (key, gx, x)
        assert abs(gy - y) < 0.01, (key, gy, y)
        assert 640_000 < x < 665_000, x  # Paris in Lambert-93
        assert 6_855_000 < y < 6_870_000, y


def test_downloads_read_back_with_gdal(server: LiveServer, tmp_path: Path) -> None:
    matched = _all_items(server, "reports")["numberMatched"]
    for fmt in ("geojson", "gpkg", "csv"):
        path = tmp_path / f"reports.{fmt}"
        path.write_bytes(server.get(f"/exports/reports.{fmt}"))
        source = str(path)
        if fmt == "csv":
            source = f"CSV:{path}"
        summary = (
            gdal(
                "ogrinfo",
                "-ro",
                "-so",
                "-al",
                "-oo",
                "GEOM_POSSIBLE_NAMES=wkt",
                "-oo",
                "KEEP_GEOM_COLUMNS=NO",
                source,
            )
            if fmt == "csv"
            else gdal("ogrinfo", "-ro", "-so", "-al", source)
        )
        assert f"Feature Count: {matched}" in summary, summary
        for column in (
            "report_id",
            "external_id",
            "service_code",
            "segment_id",
            "snap_distance_m",
            "zone_arrondissement",
            "incident_id",
            "team",
            "status",
            "requested_at",
        ):
            assert f"{column}: " in summary or f"{column} (" in summary, (fmt, column)
        for private in ("email", "phone", "device_id"):
            assert f"{private}:" not in summary
    gpkg = tmp_path / "reports.gpkg"
    summary = gdal("ogrinfo", "-ro", "-so", "-al", str(gpkg))
    assert "requested_at: DateTime" in summary
    done = subprocess.run(
        ["/usr/bin/python3", VALIDATOR, str(gpkg)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(gpkg) as conn:
        titles = dict(
            conn.execute(
                "SELECT column_name, title FROM gpkg_data_columns WHERE table_name = 'reports'"
            ).fetchall()
        )
    assert titles["requested_at"] == "Date du signalement"
    assert titles["zone_arrondissement"] == "Zone arrondissement"


def test_geojson_download_in_2154_through_ogr2ogr(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "incidents.geojson"
    path.write_bytes(server.get("/exports/incidents.geojson?crs=EPSG:2154&status=new"))
    out = tmp_path / "incidents.gpkg"
    gdal("ogr2ogr", "-f", "GPKG", str(out), str(path))
    summary = gdal("ogrinfo", "-ro", "-so", "-al", str(out))
    assert 'ID["EPSG",2154]' in summary
    served = _all_items(server, "incidents", status="new")
    assert f"Feature Count: {served['numberMatched']}" in summary


def test_tiles_read_by_gdal(server: LiveServer, tmp_path: Path) -> None:
    tilejson = json.loads(server.get("/tiles/incidents.json"))
    assert tilejson["tiles"] == [f"{server.base}/tiles/incidents/{{z}}/{{x}}/{{y}}.mvt"]
    tile = tmp_path / "tile.mvt"
    tile.write_bytes(server.get("/tiles/incidents/10/518/352.mvt"))
    read = gdal("ogrinfo", "-ro", "-al", "-oo", "Z=10", "-oo", "X=518", "-oo", "Y=352", str(tile))
    matched = _all_items(server, "incidents")["numberMatched"]
    # The whole slice lies in this z10 tile, aggregated per cell below CLUSTER_BELOW_ZOOM.
    counts = [int(n) for n in re.findall(r"^\s*count \(Integer\S*\) = (\d+)$", read, re.M)]
    assert sum(counts) == matched
    assert "reports (Integer" in read
    assert "team" not in read
    street = tmp_path / "street.mvt"
    street.write_bytes(server.get("/tiles/incidents/14/8298/5636.mvt"))
    read = gdal(
        "ogrinfo", "-ro", "-al", "-oo", "Z=14", "-oo", "X=8298", "-oo", "Y=5636", str(street)
    )
    assert "team (String)" in read
    assert "status (String)" in read
    assert "description" not in read
    assert "email" not in read


def _system_libgdal() -> bytes:
    """The shared library Debian's ``ogrinfo`` runs on."""
    linked = subprocess.run(
        ["ldd", "/usr/bin/ogrinfo"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    path = next(
        line.split(" => ")[1].split(" (")[0] for line in linked.splitlines() if "libgdal" in line
    )
    return Path(path).read_bytes()


def test_debian_gdal_ogcapi_walks_our_tile_documents(server: LiveServer, tmp_path: Path) -> None:
    """Debian 12's GDAL 3.6.2 ``OGCAPI:`` on the collection follows what the server
    writes down to the tile matrix set: the ``tilesets-vector`` link, the WorldCRS84Quad
    tileset it prefers (``dataType``, ``tileMatrixSetURI``), its ``tiling-scheme``
    link, and the definition, which its own parser reads (its COG driver cuts a raster on
    that grid). There it stops: the vector tile layers are built under ``#ifdef
    OGR_ENABLE_DRIVER_GML`` (``gdalogcapidataset.cpp`` lines 1687-1771 of the 3.6.2
    release), a definition its CMake passes only when the GML driver was configured
    before ``frmts/`` (it comes after: ``gdal.cmake`` lines 555-556), so Debian's build
    lacks that code (its library has no ``vectorType`` string: GDAL pull request 7993,
    fixed in 3.7.1) and opens no layer from any OGC API Tiles server; a GDAL with the
    code reads the tiles (test_ogc_tiles.py)."""
    source = f"OGCAPI:{server.base}/ogc/collections/incidents"
    before = len(server.requests())
    done = subprocess.run(
        ["ogrinfo", "-ro", "-so", source], capture_output=True, text=True, timeout=300, check=False
    )
    asked = [line.split(" ")[1] for line in server.requests()[before:]]
    assert asked == [
        "/ogc/collections/incidents",
        "/ogc/collections/incidents/tiles",
        "/ogc/collections/incidents/tiles/WorldCRS84Quad",
        "/ogc/tileMatrixSets/WorldCRS84Quad",
        *asked[4:],
    ]
    if done.returncode == 0:
        assert "Zoom level 13" in done.stdout, done.stdout
    else:
        assert b"vectorType" not in _system_libgdal()
    definition = tmp_path / "WorldCRS84Quad.json"
    definition.write_bytes(server.get("/ogc/tileMatrixSets/WorldCRS84Quad"))
    flat = tmp_path / "paris.tif"
    gdal(
        "gdal_create",
        "-outsize",
        "64",
        "64",
        "-a_srs",
        "EPSG:4326",
        "-a_ullr",
        "2.22",
        "48.91",
        "2.47",
        "48.81",
        str(flat),
    )
    cut = tmp_path / "cut.tif"
    gdal(
        "gdal_translate",
        "-q",
        "-of",
        "COG",
        "-co",
        f"TILING_SCHEME={definition}",
        str(flat),
        str(cut),
    )
    info = json.loads(gdal("gdalinfo", "-json", str(cut)))
    zoom = int(info["metadata"]["TILING_SCHEME"]["ZOOM_LEVEL"])
    side = 180 / 2**zoom  # WorldCRS84Quad: 2 x 1 tiles of 180 degrees at zoom 0
    left, _, _, top, _, _ = info["geoTransform"]
    assert abs((left + 180) / side - round((left + 180) / side)) < 1e-6
    assert abs((90 - top) / side - round((90 - top) / side)) < 1e-6
    assert 2.22 - side <= left <= 2.22
    assert 48.91 <= top <= 48.91 + side


def test_qgis_project_points_at_this_server(server: LiveServer) -> None:
    project = ET.fromstring(server.get("/exports/voirie.qgs"))
    sources = [e.text or "" for e in project.iter("datasource")]
    names = [e.text for e in project.iter("layername")]
    assert "Incidents par statut" in names
    assert "Incidents par équipe" in names
    renderers = {r.get("attr") for r in project.iter("renderer-v2")}
    assert {"status", "team"} <= renderers
    for source in sources:
        assert f"url='{server.base}/ogc'" in source
        typename = source.split("typename='")[1].split("'")[0]
        listing = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server.base}/ogc", typename)
        assert "Feature Count:" in listing
