"""A report's answers to its service's attributes, checked against the service definition.

A service may ask extra questions (``ServiceAttribute``: a datatype, a list of allowed
values, required or not). Whatever carries the answers, an Open311 POST's
``attribute[CODE]`` fields or a column of a bulk import, they are checked here, with
Python values only, so that every entry point accepts and refuses the same answers. The
first problem raises ``InvalidInput`` naming the field (``attribute[CODE]``) and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from voirie.city import Service, ServiceAttribute
from voirie.errors import InvalidInput

MAX_FIELD = 500
"""characters of one text value a report field or attribute answer may hold"""


def attribute_field(code: str) -> str:
    """The field name an attribute's problems carry: ``attribute[CODE]``, as Open311 sends."""
    return f"attribute[{code}]"


def check_attributes(service: Service, given: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(code, value) rows of the answers ``given`` (code -> values), blanks dropped and each
    value once; every required attribute answered, no unknown one."""
    defined = {attribute.code: attribute for attribute in service.attributes}
    unknown = sorted(set(given) - set(defined))
    if unknown:
        name = attribute_field(unknown[0])
        raise InvalidInput(
            f"{name}: not an attribute of service {service.code}; GET services/"
            f"{service.code} lists them",
            field=name,
        )
    rows: list[tuple[str, str]] = []
    for code, attribute in defined.items():
        values = _answer(attribute, given.get(code, []))
        if attribute.required and not values:
            name = attribute_field(code)
            raise InvalidInput(f"{name}: required ({attribute.description})", field=name)
        rows += [(code, value) for value in dict.fromkeys(values)]
    return rows


def _answer(attribute: ServiceAttribute, values: Sequence[str]) -> list[str]:
    """The answer's non-blank values, stripped, checked against the attribute's datatype
    and allowed values."""
    name = attribute_field(attribute.code)
    kept = [v.strip() for v in values if v.strip()]
    if attribute.datatype != "multivaluelist" and len(kept) > 1:
        raise InvalidInput(f"{name}: takes one value, got {len(kept)}", field=name)
    keys = {v.key for v in attribute.values}
    for value in kept:
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{name}: too long", field=name)
        if keys and value not in keys:
            raise InvalidInput(
                f"{name}: {value[:40]!r} is not one of {', '.join(sorted(keys))}", field=name
            )
        if attribute.datatype == "number" and not _is_number(value):
            raise InvalidInput(f"{name}: not a number: {value[:40]!r}", field=name)
        if attribute.datatype == "datetime" and not _is_datetime(value):
            raise InvalidInput(f"{name}: not an ISO 8601 datetime", field=name)
    return kept


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
