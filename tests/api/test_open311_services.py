"""Open311 discovery, service list and service definitions, in JSON and XML."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from open311_support import API, ENCOMBRANTS, GRAFFITI, Served, assert_error, xml
from starlette.exceptions import HTTPException

from voirie.api.app import create_app
from voirie.api.open311.errors import install_error_handlers
from voirie.city import City
from voirie.settings import CitySettings, ServerSettings, StoreSettings


def test_discovery_names_the_endpoint_and_its_formats(city_served: Served) -> None:
    body = city_served.client.get(f"{API}/discovery.json").json()
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    (endpoint,) = body["endpoints"]
    assert endpoint["url"] == "http://testserver/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["application/json", "application/xml"]
    assert endpoint["changeset"].endswith("Z")
    root = xml(city_served.client.get(f"{API}/discovery.xml").text)
    assert root.tag == "discovery"
    formats = [f.text for f in root.findall("endpoints/endpoint/formats/format")]
    assert formats == ["application/json", "application/xml"]


def test_services_list_every_city_service_with_group_and_metadata(
    city_served: Served, paris: City
) -> None:
    response = city_served.client.get(f"{API}/services.json")
    assert response.headers["content-type"] == "application/json"
    services = response.json()
    assert isinstance(services, list)
    assert len(services) == len(paris.config.services)
    by_code = {s["service_code"]: s for s in services}
    encombrants = by_code[ENCOMBRANTS]
    assert encombrants == {
        "service_code": ENCOMBRANTS,
        "service_name": "Autres objets encombrants abandonnés",
        "description": "Objets abandonnés — Autres objets encombrants abandonnés",
        "metadata": True,
        "type": "realtime",
        "keywords": "",
        "group": "Objets abandonnés",
    }
    assert sum(s["metadata"] for s in services) == 2
    assert all(isinstance(s["service_code"], str) for s in services)

    response = city_served.client.get(f"{API}/services.xml")
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    root = xml(response.text)
    assert root.tag == "services"
    assert len(root.findall("service")) == len(services)
    first = root.find("service")
    assert first is not None
    assert [child.tag for child in first] == [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ]
    assert first.findtext("metadata") in {"true", "false"}


def test_service_definition_carries_city_yaml_attributes(city_served: Served) -> None:
    body = city_served.client.get(f"{API}/services/{ENCOMBRANTS}.json").json()
    assert body["service_code"] == ENCOMBRANTS
    volume, objets = body["attributes"]
    assert volume == {
        "variable": True,
        "code": "volume",
        "datatype": "singlevaluelist",
        "required": True,
        "datatype_description": None,
        "order": 1,
        "description": "Volume approximatif des objets",
        "values": [
            {"key": "petit", "name": "Moins de 1 m³"},
            {"key": "moyen", "name": "De 1 à 3 m³"},
            {"key": "grand", "name": "Plus de 3 m³"},
        ],
    }
    assert (objets["datatype"], objets["required"], objets["order"]) == ("multivaluelist", False, 2)
    root = xml(city_served.client.get(f"{API}/services/{GRAFFITI}.xml").text)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == GRAFFITI
    (attribute,) = root.findall("attributes/attribute")
    assert attribute.findtext("datatype") == "number"
    assert attribute.findtext("required") == "false"
    assert attribute.find("values") is not None
    assert list(attribute.find("values") or []) == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_code_is_404(city_served: Served, fmt: str) -> None:
    response = city_served.client.get(f"{API}/services/nid-de-poule.{fmt}")
    assert_error(response, 404, "service_code", "nid-de-poule")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_jurisdiction_id_selects_the_city(city_served: Served, fmt: str) -> None:
    ok = city_served.client.get(f"{API}/services.{fmt}", params={"jurisdiction_id": "paris.fr"})
    assert ok.status_code == 200
    other = city_served.client.get(f"{API}/services.{fmt}", params={"jurisdiction_id": "lyon.fr"})
    assert_error(other, 404, "jurisdiction_id", "'lyon.fr'", "'paris.fr'")
    definition = city_served.client.get(
        f"{API}/services/{ENCOMBRANTS}.{fmt}", params={"jurisdiction_id": "lyon.fr"}
    )
    assert_error(definition, 404, "jurisdiction_id")


def test_unknown_format_and_route_are_open311_errors(city_served: Served) -> None:
    assert_error(city_served.client.get(f"{API}/services.csv"), 400, "fmt")
    assert_error(city_served.client.get(f"{API}/nothing-here.json"), 404)
    # Outside /open311 the app's own problem+json is untouched.
    outside = city_served.client.get("/exports/reports.shp")
    assert outside.status_code == 422
    assert "detail" in outside.json()


def test_discovery_is_on_the_public_url_with_its_path_prefix(city_served: Served) -> None:
    # Behind a proxy serving voirie under /carto, the endpoint's URL keeps the prefix.
    app = create_app(
        StoreSettings(database_url="sqlite:///unused.gpkg"),
        CitySettings(city="paris"),
        ServerSettings(public_url="https://voirie.example.org/carto"),
    )
    app.state.pipeline = city_served.pipeline
    answer = TestClient(app).get(f"{API}/discovery.json", headers={"Host": "evil.example"})
    assert answer.json()["endpoints"][0]["url"] == "https://voirie.example.org/carto/open311/v2"


def test_open311_errors_keep_the_headers_of_the_refusal(city_served: Served) -> None:
    # A 405 names the methods of the path; any framework error keeps its headers.
    refused = city_served.client.put(f"{API}/services.json")
    assert_error(refused, 405)
    assert refused.headers["allow"] == "GET"
    app = FastAPI()

    @app.get(f"{API}/busy.json")
    def busy() -> None:
        raise HTTPException(503, "busy", headers={"Retry-After": "7"})

    install_error_handlers(app)
    answer = TestClient(app).get(f"{API}/busy.json")
    assert_error(answer, 503, "busy")
    assert answer.headers["retry-after"] == "7"
