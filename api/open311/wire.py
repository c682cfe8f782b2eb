"""Open311 GeoReport v2 wire models: what goes over the wire, never what is stored.

Spec: https://wiki.open311.org/GeoReport_v2 (and the FixMyStreet ``servicerequestupdates``
extension, https://wiki.open311.org/GeoReport_v2/Servicerequestupdates). These models are
built from the domain (``voirie.city.Service``, the report and incident layers) at the edge;
``service_code`` and ``service_request_id`` are always strings, datetimes always carry a
UTC offset. Fields beyond the spec (``incident_id``, ``detailed_status``...) are extensions
that clients ignore.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SPEC_URL = "https://wiki.open311.org/GeoReport_v2"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open311Error(_Wire):
    """One error of an error response (https://wiki.open311.org/GeoReport_v2#Errors)."""

    code: int = Field(description="the HTTP status, or a more specific Open311 code")
    description: str = Field(description="what was wrong, naming the field")


class Endpoint(_Wire):
    """One endpoint of the discovery document (https://wiki.open311.org/Service_Discovery)."""

    specification: str
    url: str
    changeset: AwareDatetime
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(_Wire):
    """The service discovery document (https://wiki.open311.org/Service_Discovery)."""

    changeset: AwareDatetime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(_Wire):
    """One entry of GET services (https://wiki.open311.org/GeoReport_v2#GET_Service_List)."""

    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="true when the service has a definition (attributes)")
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str = Field(description="comma-separated keywords")
    group: str


class AttributeValue(_Wire):
    """An allowed value of a list attribute (GeoReport v2 service definition)."""

    key: str
    name: str


class Attribute(_Wire):
    """One attribute of a service definition
    (https://wiki.open311.org/GeoReport_v2#GET_Service_Definition)."""

    variable: bool
    code: str
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(_Wire):
    """GET services/{service_code} (https://wiki.open311.org/GeoReport_v2#GET_Service_Definition)."""

    service_code: str
    attributes: list[Attribute]


class ServiceRequest(_Wire):
    """One request of GET requests (https://wiki.open311.org/GeoReport_v2#GET_Service_Requests).

    ``service_request_id`` is a report id; ``incident_id`` (extension) is the incident the
    report belongs to, ``detailed_status`` (extension) its voirie status.
    """

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: AwareDatetime
    updated_datetime: AwareDatetime | None
    expected_datetime: AwareDatetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float
    long: float
    media_url: str | None
    incident_id: str
    detailed_status: str


class RequestCreated(_Wire):
    """The answer to POST requests (https://wiki.open311.org/GeoReport_v2#POST_Service_Request).

    Extensions: ``incident_id`` (the incident the report opened or joined) and ``attached``
    (true when it joined an existing incident).
    """

    service_request_id: str
    token: str
    service_notice: str | None
    account_id: str | None
    incident_id: str
    attached: bool


class TokenAnswer(_Wire):
    """GET tokens/{token} (https://wiki.open311.org/GeoReport_v2#GET_request_id_from_a_token)."""

    service_request_id: str
    token: str


class ServiceRequestUpdate(_Wire):
    """One update of GET servicerequestupdates (FixMyStreet extension of GeoReport v2,
    https://wiki.open311.org/GeoReport_v2/Servicerequestupdates)."""

    update_id: str
    service_request_id: str
    status: Literal["open", "closed"]
    detailed_status: str
    updated_datetime: AwareDatetime
    description: str | None
    media_url: str | None


class UpdateCreated(_Wire):
    """The answer to POST servicerequestupdates (FixMyStreet extension)."""

    update_id: str


class MediaStored(_Wire):
    """The answer to a photo upload: the ``media_url`` to send with POST requests."""

    media_url: str
    thumbnail_url: str
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
