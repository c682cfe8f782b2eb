"""Open311 discovery, service list and service definitions, built from city.yaml.

https://wiki.open311.org/GeoReport_v2#GET_Service_List and
https://wiki.open311.org/GeoReport_v2#GET_Service_Definition; a service's attributes are
its ``attributes`` in city.yaml.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep
from voirie.api.open311.render import MEDIA_TYPES, Format, render, responses
from voirie.city import CITY_FILE, City
from voirie.city import Service as CityService
from voirie.errors import NotFound

router = APIRouter(prefix="/open311/v2", tags=["open311"], dependencies=[JurisdictionDep])


def service_of(city: City, code: str) -> CityService:
    """The city's service with this code; 404 naming it otherwise."""
    service = city.services.get(code)
    if service is None:
        raise NotFound(
            f"service_code: no service {code[:80]!r} in {city.config.name}; "
            "GET services lists them",
            field="service_code",
        )
    return service


def _wire_service(city: City, service: CityService) -> wire.Service:
    group = city.groups[service.group].name
    return wire.Service(
        service_code=service.code,
        service_name=service.name,
        description=f"{group} — {service.name}",
        metadata=bool(service.attributes),
        type="realtime",
        keywords=",".join(service.keywords),
        group=group,
    )


def _definition(service: CityService) -> wire.ServiceDefinition:
    return wire.ServiceDefinition(
        service_code=service.code,
        attributes=[
            wire.Attribute(
                variable=True,
                code=attribute.code,
                datatype=attribute.datatype,
                required=attribute.required,
                datatype_description=attribute.datatype_description,
                order=order,
                description=attribute.description,
                values=[wire.AttributeValue(key=v.key, name=v.name) for v in attribute.values],
            )
            for order, attribute in enumerate(service.attributes, start=1)
        ],
    )


@router.get(
    "/discovery.{fmt}",
    summary="Service discovery",
    response_class=Response,
    responses=responses(wire.Discovery),
)
def discovery(fmt: Format, request: Request, pipeline: PipelineDep) -> Response:
    """Where this GeoReport v2 endpoint is and what it speaks (https://wiki.open311.org/Service_Discovery)."""
    city = pipeline.city
    changed = datetime.fromtimestamp(city.path(CITY_FILE).stat().st_mtime, UTC)
    document = wire.Discovery(
        changeset=changed,
        contact=f"voirie — {city.config.name} ({city.jurisdiction_id})",
        key_service="POST requests needs an api_key: a client token issued by the city "
        "(voirie tokens add NAME --role client)",
        endpoints=[
            wire.Endpoint(
                specification="http://wiki.open311.org/GeoReport_v2",
                # On the public address, path prefix included (``url_for`` drops it).
                url=public_base(request) + router.prefix,
                changeset=changed,
                type="production",
                formats=list(MEDIA_TYPES.values()),
            )
        ],
    )
    return render(fmt, document, root="discovery")


@router.get(
    "/services.{fmt}",
    summary="GET Service List",
    response_class=Response,
    responses=responses(list[wire.Service]),
)
def services(fmt: Format, pipeline: PipelineDep) -> Response:
    """Every service a citizen can report, with its group and keywords."""
    city = pipeline.city
    listed = [_wire_service(city, service) for service in city.config.services]
    return render(fmt, listed, root="services", item="service")


@router.get(
    "/services/{service_code}.{fmt}",
    summary="GET Service Definition",
    response_class=Response,
    responses=responses(wire.ServiceDefinition),
)
def service_definition(service_code: str, fmt: Format, pipeline: PipelineDep) -> Response:
    """The extra questions (attributes) of one service; 404 for an unknown service_code."""
    service = service_of(pipeline.city, service_code)
    return render(fmt, _definition(service), root="service_definition")
