"""Open311 through real HTTP: the ``georeport`` client library from PyPI, and raw HTTP
(``urllib`` + the standard XML parser), against the app served by uvicorn.

``georeport`` 0.3.1 reads services, definitions and requests (JSON and XML, via
``xmltodict``) but has no method to create a request, so POST goes through raw HTTP.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import uvicorn
from georeport import GeoReport
from open311_support import ALL_OF_2023, CARTONS, ENCOMBRANTS, VALMY, Served, serve

from voirie.city import City
from voirie.gis.enrich import CityGIS


@pytest.fixture
def live(
    store_url: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> Iterator[tuple[str, Served]]:
    """The Open311 root URL of the app served on a free local port, and the app."""
    served = serve(store_url, paris, paris_gis, tmp_path / "media")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(served.client.app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/open311/v2", served
    server.should_exit = True
    thread.join(10)
    listener.close()
    served.store.close()


def _raw(url: str, data: dict[str, object] | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, or a form POST when ``data`` is given."""
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as r:
            return r.status, r.headers["content-type"], r.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["content-type"], error.read().decode("utf-8")


@pytest.mark.parametrize("output_format", ["json", "xml"])
def test_georeport_client_reads_services_and_requests(
    live: tuple[str, Served], output_format: str
) -> None:
    root, _ = live
    client = GeoReport(root, jurisdiction="paris.fr", output_format=output_format)
    services = client.get_service_list()
    assert len(services) > 300
    encombrants = next(s for s in services if s["service_code"] == ENCOMBRANTS)
    assert encombrants["service_name"] == "Autres objets encombrants abandonnés"
    assert str(encombrants["metadata"]).lower() == "true"
    definition = client.get_service_definition(ENCOMBRANTS)
    assert definition["service_code"] == ENCOMBRANTS
    requests = client.get_service_requests(service_code=CARTONS, status="open", **ALL_OF_2023)
    assert len(requests) == 5
    assert {r["service_code"] for r in requests} == {CARTONS}
    one = client.get_service_request(requests[0]["service_request_id"])
    assert one["service_request_id"] == requests[0]["service_request_id"]
    assert one["status"] == "open"


def test_raw_http_post_then_read_back_as_xml(live: tuple[str, Served]) -> None:
    root, served = live
    form = {
        "api_key": served.client_key,
        "service_code": ENCOMBRANTS,
        "address_string": VALMY["address"],
        "attribute[volume]": "grand",
        "attribute[objets][]": ["meuble", "autre"],
        "description": "Armoire et cartons",
    }
    status, kind, body = _raw(f"{root}/requests.xml", form)
    assert (status, kind) == (201, "application/xml; charset=utf-8")
    created = ET.fromstring(body.encode())
    rid = created.findtext("request/service_request_id")
    assert rid is not None
    assert rid.isdigit()
    status, _, body = _raw(f"{root}/requests/{rid}.xml")
    assert status == 200
    (request,) = ET.fromstring(body.encode()).findall("request")
    assert request.findtext("description") == "Armoire et cartons"
    assert request.findtext("incident_id") == created.findtext("request/incident_id")

    status, kind, body = _raw(f"{root}/requests.json", {**form, "api_key": "voirie_nope"})
    assert (status, kind) == (403, "application/json")
    assert json.loads(body) == [{"code": 403, "description": "api_key: unknown API token"}]
    status, kind, body = _raw(f"{root}/services/nope.xml")
    assert (status, kind) == (404, "application/xml; charset=utf-8")
    error = ET.fromstring(body.encode())
    assert [e.tag for e in error.iter()] == ["errors", "error", "code", "description"]
