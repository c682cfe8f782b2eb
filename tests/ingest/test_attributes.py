"""``ingest.attributes.check_attributes``: answers checked against the service definition,
each refusal naming its field (``attribute[CODE]``) and reason, without HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from voirie.city import AttributeValue, City, Service, ServiceAttribute
from voirie.errors import InvalidInput
from voirie.ingest.attributes import MAX_FIELD, check_attributes

SERVICE = Service(
    code="encombrants",
    name="Objets encombrants",
    group="proprete",
    attributes=[
        ServiceAttribute(
            code="volume",
            description="Quel volume ?",
            datatype="singlevaluelist",
            required=True,
            values=[AttributeValue(key=k, name=k) for k in ("petit", "moyen", "grand")],
        ),
        ServiceAttribute(
            code="objets",
            description="Quels objets ?",
            datatype="multivaluelist",
            values=[AttributeValue(key=k, name=k) for k in ("meuble", "matelas", "autre")],
        ),
        ServiceAttribute(code="surface_m2", description="Surface ?", datatype="number"),
        ServiceAttribute(code="vu_le", description="Vu quand ?", datatype="datetime"),
        ServiceAttribute(code="note", description="Précisions"),
    ],
)


def _refused(given: Mapping[str, Sequence[str]]) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        check_attributes(SERVICE, given)
    return raised.value


def test_answers_become_rows_stripped_without_blanks_or_repeats() -> None:
    rows = check_attributes(
        SERVICE,
        {
            "volume": [" moyen "],
            "objets": ["meuble", "matelas", "meuble", "  "],
            "surface_m2": ["2.5"],
            "vu_le": ["2024-03-01T08:30:00+01:00"],
        },
    )
    assert rows == [
        ("volume", "moyen"),
        ("objets", "meuble"),
        ("objets", "matelas"),
        ("surface_m2", "2.5"),
        ("vu_le", "2024-03-01T08:30:00+01:00"),
    ]


@pytest.mark.parametrize(
    ("given", "field", "reason"),
    [
        ({}, "attribute[volume]", "required (Quel volume ?)"),
        ({"volume": ["  "]}, "attribute[volume]", "required"),
        ({"volume": ["énorme"]}, "attribute[volume]", "'énorme' is not one of grand, moyen, petit"),
        ({"volume": ["petit", "grand"]}, "attribute[volume]", "takes one value, got 2"),
        ({"volume": ["petit"], "couleur": ["rouge"]}, "attribute[couleur]", "not an attribute"),
        ({"volume": ["petit"], "objets": ["meuble", "x"]}, "attribute[objets]", "'x' is not one"),
        ({"volume": ["petit"], "surface_m2": ["beaucoup"]}, "attribute[surface_m2]", "number"),
        ({"volume": ["petit"], "surface_m2": ["inf"]}, "attribute[surface_m2]", "number"),
        ({"volume": ["petit"], "vu_le": ["hier"]}, "attribute[vu_le]", "ISO 8601"),
        ({"volume": ["petit"], "note": ["x" * (MAX_FIELD + 1)]}, "attribute[note]", "too long"),
    ],
)
def test_a_refused_answer_names_its_field_and_reason(
    given: Mapping[str, Sequence[str]], field: str, reason: str
) -> None:
    refused = _refused(given)
    assert refused.field == field
    assert refused.message.startswith(f"{field}: ")
    assert reason in refused.message


def test_every_paris_service_accepts_its_first_allowed_values(paris: City) -> None:
    """The real service definitions: a first allowed value for each list attribute, nothing
    for the others, passes wherever only list attributes are required."""
    for service in paris.services.values():
        given = {a.code: [a.values[0].key] for a in service.attributes if a.values}
        if all(a.values or not a.required for a in service.attributes):
            assert check_attributes(service, given) == [(c, v[0]) for c, v in given.items()]
