"""The answers of the public reads to a fixed set of requests, over the 200 Paris reports.

``python tests/api/read_answers.py`` asks every request of ``REQUESTS`` of the app on a
fresh store of each backend and writes the answers to ``tests/data/read_answers/<backend>.json``;
``test_read_answers.py`` asks them again and compares. The snapshots were taken before the
read path was rewritten (issue 19), so a faster path must answer what the old one did.

An answer keeps what a client sees: the status, the headers that describe the content
(type, CRS), and the body, parsed where it is JSON (floats are compared at 1e-9), as text
where it is XML or HTML, and as a SHA-256 where it is a vector tile. Values that depend on
the clock (when the reports were imported, when the answer was made, ages in days) are
replaced by ``<clock>``: the sample's own dates are of 2023-2024, so in text every instant
from 2025 on is the import's.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

SNAPSHOTS = Path(__file__).parents[1] / "data" / "read_answers"
KEPT_HEADERS = ("content-type", "content-crs")
_CLOCK = frozenset({"timeStamp", "age_days", "received_at", "updated_at", "updated_datetime"})
_CLOCK_TEXT = re.compile(r"20(2[5-9]|[3-9]\d)-\d\d-\d\d[ T][0-9:.]+(Z|[+-]\d\d:?\d\d)?")
CLOCK = "<clock>"
# A point of the 10th arrondissement (rue du Faubourg-Saint-Martin) with incidents around.
_LAT, _LON = 48.8735, 2.3631
_BOX = "2.34,48.86,2.38,48.89"
_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
REQUESTS: tuple[str, ...] = (
    f"/api/v1/nearby?lat={_LAT}&lon={_LON}&radius_m=500",
    f"/api/v1/nearby?lat={_LAT}&lon={_LON}&radius_m=2000",
    "/api/v1/nearby?lat=48.8566&lon=2.3522&radius_m=50",
    "/ogc/collections/incidents/items?limit=10",
    "/ogc/collections/incidents/items?limit=5&offset=5",
    "/ogc/collections/incidents/items?limit=5&after=20",
    f"/ogc/collections/incidents/items?bbox={_BOX}&limit=100",
    f"/ogc/collections/incidents/items?limit=3&crs={_EPSG}2154",
    f"/ogc/collections/incidents/items?limit=3&crs={_EPSG}4326",
    "/ogc/collections/incidents/items?limit=5&status=new",
    "/ogc/collections/reports/items?limit=10",
    "/ogc/collections/reports/items?limit=5&zone_arrondissement=10",
    f"/ogc/collections/reports/items?bbox={_BOX}&limit=20&crs={_EPSG}3857",
    "/ogc/collections/incidents/items/3",
    f"/ogc/collections/incidents/items/3?crs={_EPSG}2154",
    "/ogc/collections/reports/items/7",
    "/ogc/collections/incidents/items/999999",
    "/ogc/collections/streets/items?limit=5",
    f"/ogc/collections/quartier/items?bbox={_BOX}&limit=2",
    "/open311/v2/requests.json",
    "/open311/v2/requests.json?status=open&page_size=5",
    f"/open311/v2/requests.json?lat={_LAT}&long={_LON}&radius=500",
    "/open311/v2/requests.json?service_request_id=1,2,5",
    "/open311/v2/requests.xml?page_size=3",
    "/open311/v2/requests/7.json",
    "/open311/v2/requests/7.xml",
    "/open311/v2/requests/999999.json",
    "/tiles/incidents/14/8300/5634.mvt",
    "/tiles/incidents/12/2075/1408.mvt",
)


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: CLOCK if k in _CLOCK else _without_clock(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def answer(client: TestClient, path: str) -> dict[str, Any]:
    """What a client sees of one request, without what depends on the clock."""
    response = client.get(path)
    kind = response.headers.get("content-type", "")
    body: Any
    if "json" in kind:
        body = _without_clock(response.json())
    elif "vnd.mapbox-vector-tile" in kind:
        body = hashlib.sha256(response.content).hexdigest()
    else:
        body = _CLOCK_TEXT.sub(CLOCK, response.text)
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return {"status": response.status_code, "headers": headers, "body": body}


def answers(client: TestClient) -> dict[str, dict[str, Any]]:
    """The answer of every request of ``REQUESTS``."""
    return {path: answer(client, path) for path in REQUESTS}


@contextmanager
def _client(backend: str, folder: Path) -> Iterator[TestClient]:
    from databases import prepare_server, scratch_database
    from liveserver import load_reports

    from voirie.api.app import create_app
    from voirie.city import load_city
    from voirie.gis.enrich import CityGIS
    from voirie.settings import CitySettings, StoreSettings

    city = load_city("paris")
    databases = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'voirie.gpkg'}"
    else:
        databases = scratch_database(prepare_server())
        url = next(databases)
    try:
        load_reports(url, city, CityGIS(city))
        app = create_app(
            StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2),
            CitySettings(city=str(city.folder)),
        )
        with TestClient(app) as client:
            yield client
    finally:
        if databases is not None:
            databases.close()


def main() -> None:
    """Write the snapshot of each backend."""
    import tempfile

    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for backend in ("sqlite", "postgis"):
        with tempfile.TemporaryDirectory() as folder, _client(backend, Path(folder)) as client:
            taken = answers(client)
        target = SNAPSHOTS / f"{backend}.json"
        target.write_text(json.dumps(taken, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"{len(taken)} answers -> {target}")


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
    main()
