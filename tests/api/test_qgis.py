"""Real QGIS against a real server: the served project and the downloads, opened headless.

QGIS's Python is the system ``python3`` with Debian's ``python3-qgis`` (installed by
``scripts/system-deps``), not the project's virtualenv: each test runs ``qgis_open.py``
under it with ``QT_QPA_PLATFORM=offscreen`` against a ``voirie serve`` holding the 200
real Paris reports, and checks what QGIS reports: every layer valid with the server's
feature count, the city's CRS, the styles, and a rendered PNG. Without QGIS the tests
skip, except with ``CI=true`` where they fail. ``VOIRIE_SCREENSHOTS=/some/folder`` keeps
the rendered images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient
from liveserver import LiveServer

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.maps.dispatch import STATUS_COLOURS
from voirie.model import Status
from voirie.settings import CitySettings, ServerSettings, StoreSettings

QGIS_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_open.py")
TIMEOUT_S = 300

pytestmark = [pytest.mark.qgis, pytest.mark.slow]


def _unavailable(reason: str) -> NoReturn:
    """Skip a QGIS test locally, but fail it in CI where QGIS must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"QGIS test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def qgis() -> str:
    """The system Python, once it is known to import QGIS."""
    if not Path(QGIS_PYTHON).exists():
        _unavailable(f"{QGIS_PYTHON} not found")
    done = subprocess.run(
        [QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        _unavailable(f"python3-qgis is not installed: {done.stderr.strip()[-200:]}")
    return QGIS_PYTHON


def open_in_qgis(qgis: str, *args: str) -> dict[str, Any]:
    """What ``qgis_open.py`` reports (see its docstring for the arguments)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOIRIE_", "PYTHON"))}
    env |= {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    done = subprocess.run(
        [qgis, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def matched(server: LiveServer, collection: str) -> int:
    body = json.loads(server.get(f"/ogc/collections/{collection}/items?limit=1"))
    return int(body["numberMatched"])


def keep_screenshot(png: Path, name: str) -> None:
    """Copy a rendered image where ``VOIRIE_SCREENSHOTS`` says (for the docs)."""
    folder = os.environ.get("VOIRIE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / name)


@pytest.mark.parametrize("suffix", ["qgs", "qgz"])
def test_qgis_opens_the_served_project(
    qgis: str, server: LiveServer, tmp_path: Path, suffix: str
) -> None:
    project = tmp_path / f"voirie.{suffix}"
    project.write_bytes(server.get(f"/exports/voirie.{suffix}"))
    png = tmp_path / "project.png"
    report = open_in_qgis(qgis, "project", str(project), str(png))

    assert report["read"]
    assert report["crs"] == "EPSG:2154"  # Paris's metric CRS, applied by QGIS
    assert report["title"] == "voirie — Paris"
    # Every legend entry is bound to a layer, and every layer sits in the legend.
    assert all(entry["bound"] for entry in report["legend"]), report["legend"]
    layers = {layer["id"]: layer for layer in report["layers"]}
    assert {entry["id"] for entry in report["legend"]} == set(layers)
    expected = {
        "voirie_incidents_par_statut": ("Incidents par statut", "incidents"),
        "voirie_incidents_par_equipe": ("Incidents par équipe", "incidents"),
        "voirie_signalements": ("Signalements", "reports"),
        "voirie_rues": ("Rues", "streets"),
        "voirie_zone_arrondissement": ("Arrondissement", "arrondissement"),
        "voirie_zone_quartier": ("Quartier administratif", "quartier"),
        "voirie_zone_espace_vert": ("Espace vert", "espace_vert"),
    }
    assert set(layers) == set(expected)
    for layer_id, (name, collection) in expected.items():
        layer = layers[layer_id]
        assert layer["valid"], layer
        assert layer["provider"] == "OAPIF"
        assert layer["name"] == name
        count = matched(server, collection)
        assert layer["feature_count"] == count, (layer_id, layer["feature_count"], count)
        assert layer.get("features_read", count) == count, layer_id
        assert "ODbL" in " ".join(layer["licenses"])
        assert layer["rights"]
        assert layer["attribution"]
    assert "OpenStreetMap" in layers["voirie_rues"]["attribution"]

    by_status = layers["voirie_incidents_par_statut"]
    assert by_status["renderer"]["attribute"] == "status"
    assert {s.value: STATUS_COLOURS[s] for s in Status}.items() <= by_status["renderer"][
        "categories"
    ].items()
    assert by_status["aliases"]["status"] == "Statut"
    assert by_status["aliases"]["zone_arrondissement"] == "Zone arrondissement"
    by_team = layers["voirie_incidents_par_equipe"]
    assert by_team["renderer"]["attribute"] == "team"
    assert len(by_team["renderer"]["categories"]) > 40
    assert layers["voirie_signalements"]["aliases"]["requested_at"] == "Date du signalement"

    # Shown: incidents by status over the district outlines, drawn in their colours.
    assert report["shown"] == ["voirie_incidents_par_statut", "voirie_zone_arrondissement"]
    render = report["render"]
    assert render["errors"] == []
    incidents = json.loads(server.get("/ogc/collections/incidents/items?limit=1000"))
    most_common = max(
        Status,
        key=lambda s: sum(f["properties"]["status"] == s.value for f in incidents["features"]),
    )
    assert render["colours"].get(STATUS_COLOURS[most_common], 0) > 100
    assert render["colours"].get("#3366cc", 0) > 100  # district outlines
    assert render["painted"] > 0.2 * 600 * 450
    # QGIS took its page size from the API definition (/ogc/api), not its own 10.
    pages = [r for r in server.requests() if "/ogc/collections/incidents/items?" in r]
    assert any("limit=1000" in r for r in pages), pages
    if suffix == "qgs":
        keep_screenshot(png, "qgis-project.png")


def test_qgis_opens_the_downloads_through_ogr(
    qgis: str, server: LiveServer, tmp_path: Path
) -> None:
    files = []
    for name in ("incidents.gpkg", "reports.gpkg", "incidents.geojson", "reports.geojson"):
        path = tmp_path / name
        path.write_bytes(server.get(f"/exports/{name}"))
        files.append(str(path))
    png = tmp_path / "downloads.png"
    report = open_in_qgis(qgis, "files", str(png), "EPSG:2154", *files)

    assert report["crs"] == "EPSG:2154"
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert set(layers) == {Path(f).name for f in files}
    for name, layer in layers.items():
        count = matched(server, name.split(".")[0])
        assert layer["valid"], layer
        assert layer["provider"] == "ogr"
        assert layer["crs"] == "EPSG:4326"
        assert layer["feature_count"] == layer["features_read"] == count, name
    assert report["render"]["errors"] == []
    assert report["render"]["painted"] > 1000
    keep_screenshot(png, "qgis-downloads.png")


def test_project_urls_follow_the_configured_public_url(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    """Behind a reverse proxy the project and the OGC links name the public address."""
    public = "https://sig.example.org/voirie"
    url = f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    app = create_app(
        StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2),
        CitySettings(city=str(paris.folder)),
        ServerSettings(public_url=public + "/"),
    )
    with TestClient(app) as client:
        project = client.get("/exports/voirie.qgs").text
        landing = client.get("/ogc").json()
    assert f"url='{public}/ogc' typename='incidents'" in project
    assert "testserver" not in project
    assert all(link["href"].startswith(f"{public}/") for link in landing["links"])
