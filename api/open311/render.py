"""One structure, two encodings: Open311 wire models as JSON or as XML.

JSON lists are arrays at the root; XML documents start with the utf-8 declaration and name
their elements as the spec's examples do (https://wiki.open311.org/GeoReport_v2): a list
field holds one child per item, named after it (``attributes`` -> ``attribute``), empty
values are empty elements, booleans are ``true``/``false``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal
from xml.etree import ElementTree as ET

import orjson
from fastapi import Response
from pydantic import BaseModel

from voirie.api.open311.wire import Open311Error

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES: dict[Format, str] = {"json": "application/json", "xml": "application/xml"}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

# Element name of one item of each list, by the list's element name.
_ITEM = {
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}
# Characters XML 1.0 cannot carry at all (not even escaped): replaced, so that text a
# citizen typed never makes a document unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: object) -> str:
    """A value as XML element text: None empty, booleans as true/false, characters XML
    cannot carry replaced."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _element(parent: ET.Element, name: str, value: object) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(child, key, item)
    elif isinstance(value, list):
        for item in value:
            _element(child, _ITEM.get(name, "item"), item)
    else:
        child.text = _xml_text(value)


def to_xml(data: object, root: str, item: str | None = None) -> str:
    """A JSON-like value as an XML document: a list under ``root`` as ``item`` elements,
    an object as ``root`` with one child per field."""
    top = ET.Element(root)
    if isinstance(data, list):
        for entry in data:
            _element(top, item or "item", entry)
    elif isinstance(data, dict):
        for key, value in data.items():
            _element(top, key, value)
    return XML_DECLARATION + ET.tostring(top, encoding="unicode")


def render(
    fmt: Format,
    payload: BaseModel | Sequence[BaseModel],
    *,
    root: str,
    item: str | None = None,
    status: int = 200,
) -> Response:
    """A wire model, or a list of them, as a JSON or XML response."""
    data: object = (
        payload.model_dump(mode="json")
        if isinstance(payload, BaseModel)
        else [entry.model_dump(mode="json") for entry in payload]
    )
    return render_data(fmt, data, root=root, item=item, status=status)


def render_data(
    fmt: Format, data: object, *, root: str, item: str | None = None, status: int = 200
) -> Response:
    """JSON-ready data (what ``model_dump(mode="json")`` gives) as a JSON or XML response:
    the lean read path builds it without the wire models."""
    if fmt == "xml":
        body = to_xml(data, root, item)
        return Response(body, status, media_type=f"{MEDIA_TYPES['xml']}; charset=utf-8")
    return Response(orjson.dumps(data), status, media_type=MEDIA_TYPES["json"])


def render_errors(fmt: Format, status: int, errors: Sequence[Open311Error]) -> Response:
    """``[{"code", "description"}]``, or ``<errors><error>`` with ``code``, ``description``."""
    return render(fmt, errors, root="errors", item="error", status=status)


def format_of(path: str) -> Format:
    """The format a request asked for, from its path's extension (JSON unless ``.xml``)."""
    return "xml" if path.endswith(".xml") else "json"


_ERROR_TEXT = {
    400: "Bad request: a parameter is missing or invalid (the description names it).",
    403: "Invalid or missing api_key.",
    404: "Not found: unknown jurisdiction_id, service_code or service_request_id.",
    409: "The current state refuses the change.",
    413: "The upload is too large.",
    415: "The upload is not an image of an accepted type.",
    507: "The server's storage is full: nothing was stored; try again later.",
}
_XML = {"application/xml": {"schema": {"type": "string", "description": "XML document"}}}


def responses(
    model: object, *errors: int, ok: int = 200, description: str = "Success."
) -> dict[int | str, dict[str, object]]:
    """OpenAPI responses of an Open311 route: the model in JSON or XML, and its errors
    (``[{"code", "description"}]`` or ``<errors>``)."""
    declared: dict[int | str, dict[str, object]] = {
        ok: {"model": model, "description": description, "content": _XML}
    }
    for status in (400, 404, *errors):
        declared[status] = {
            "model": list[Open311Error],
            "description": _ERROR_TEXT[status],
            "content": _XML,
        }
    return declared
