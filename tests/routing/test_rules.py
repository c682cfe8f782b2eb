"""The rule engine: every condition kind, the evaluation order, the fallback chain, load
errors, and rule versions stored on both backends. Locations are real Paris points
enriched by the real layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from voirie.city import TRIAGE_TEAM, City, Route, load_city
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.notify.versions import record_rules
from voirie.routing.table import route, unreachable_rules
from voirie.store import Store

GRAFFITI = "graffitis-tags-a-914fea"  # graffiti on street furniture
OTHER_GRAFFITI = "graffitis-tags-a-8723b2"
GROUP = "graffitis-tags-affiches"
TREE = "arbres-vegetaux-96314d"
# Inside the Bois de Vincennes (espace_vert 10132, 12th arrondissement, off the network);
# on the Boulevard Saint-Germain (5th, a "major" road).
VINCENNES = (2.4335, 48.8372)
SAINT_GERMAIN = (2.35, 48.85)


def city_with(paris: City, rules: list[dict[str, Any]], **routing: Any) -> City:
    """Paris with other routing rules (validated like city.yaml)."""
    config = paris.config.routing.model_copy(
        update={"rules": [Route.model_validate(r) for r in rules], **routing}
    )
    return City(paris.folder, paris.config.model_copy(update={"routing": config}))


def batch(gis: CityGIS, rows: list[tuple[str, tuple[float, float], str]]) -> pd.DataFrame:
    """Enriched reports: (service, (lon, lat), requested_at in UTC)."""
    lon = np.array([r[1][0] for r in rows])
    lat = np.array([r[1][1] for r in rows])
    frame = pd.DataFrame(
        {
            "service_code": [r[0] for r in rows],
            "requested_at": pd.to_datetime([r[2] for r in rows], utc=True),
        }
    )
    return pd.concat([frame, gis.enrich(lon, lat)], axis=1)


WEDNESDAY_NOON = "2024-03-06T11:00:00Z"  # 12:00 in Paris
SATURDAY_NIGHT = "2024-03-09T22:30:00Z"  # 23:30 in Paris


@pytest.fixture(scope="module")
def reports(paris_gis: CityGIS) -> pd.DataFrame:
    return batch(
        paris_gis,
        [
            (GRAFFITI, VINCENNES, WEDNESDAY_NOON),
            (GRAFFITI, SAINT_GERMAIN, WEDNESDAY_NOON),
            (GRAFFITI, SAINT_GERMAIN, SATURDAY_NIGHT),
            (OTHER_GRAFFITI, SAINT_GERMAIN, WEDNESDAY_NOON),
            (TREE, SAINT_GERMAIN, WEDNESDAY_NOON),
            ("not-a-service", SAINT_GERMAIN, WEDNESDAY_NOON),
        ],
    )


PLAIN = [
    {"id": "graffiti", "team": "graffitis", "service": GRAFFITI},
    {"id": "posters", "team": "DPE-STPP-DT", "group": GROUP},
]


@pytest.mark.parametrize(
    ("condition", "matching"),
    [
        ({"zones": {"espace_vert": "*"}}, [0]),
        ({"zones": {"espace_vert": ["10132"]}}, [0]),
        ({"zones": {"espace_vert": ["99999"]}}, []),
        ({"zones": {"arrondissement": [5]}}, [1, 2]),
        ({"segment": {"roadClass": ["major"]}}, [1, 2]),
        ({"segment": {"roadClass": ["minor"]}}, []),
        ({"hours": "20:00-07:00"}, [2]),
        ({"hours": "09:00-17:00"}, [0, 1]),
        ({"weekdays": ["sat", "sun"]}, [2]),
        ({"flags": {"off_network": True}}, [0]),
        ({"flags": {"off_network": False}}, [1, 2]),
        ({"flags": {"near_boundary": True}}, []),
        ({"zones": {"arrondissement": ["5"]}, "weekdays": ["wed"]}, [1]),
    ],
)
def test_each_condition_kind(
    paris: City, reports: pd.DataFrame, condition: dict[str, Any], matching: list[int]
) -> None:
    city = city_with(
        paris, [{"id": "cond", "team": "DEVE", "service": GRAFFITI, **condition}, *PLAIN]
    )
    routed = route(city, reports)
    assert routed.index[routed["rule_id"] == "cond"].tolist() == matching
    fallback = [i for i in range(3) if i not in matching]
    assert (routed.loc[fallback, "rule_id"] == "graffiti").all()


def test_order_fallback_chain_and_reason(paris: City, reports: pd.DataFrame) -> None:
    city = city_with(
        paris,
        [
            *PLAIN,  # plain rules first in the file: they still only apply when no condition does
            {
                "id": "parks-graffiti",
                "version": 3,
                "team": "DEVE",
                "group": GROUP,
                "zones": {"espace_vert": "*"},
            },
            {"id": "night", "team": "DPMP-Divisions", "service": GRAFFITI, "hours": "22:00-06:00"},
            {"id": "never", "team": "DVD", "service": GRAFFITI, "zones": {"espace_vert": "*"}},
        ],
        default_team="DVD",
    )
    routed = route(city, reports)
    assert routed["team"].tolist() == [
        "DEVE",
        "graffitis",
        "DPMP-Divisions",
        "DPE-STPP-DT",
        "DVD",
        TRIAGE_TEAM,
    ]
    assert routed["rule_id"].tolist()[:4] == ["parks-graffiti", "graffiti", "night", "posters"]
    assert routed["rule_id"].iloc[4:].isna().all()
    assert routed["rule_version"].tolist()[:4] == [3, 1, 1, 1]
    reason = routed["routing_reason"]
    assert reason[0] == (
        "« Affiches, autocollants ou graffitis sur mobilier : Autre mobilier urbain » inside "
        "BOIS DE VINCENNES → Direction des Espaces Verts et de l'Environnement, "
        "rule parks-graffiti v3"
    )
    assert "between 22:00 and 06:00" in reason[2]
    assert "group « Graffitis, tags, affiches et autocollants »" in reason[3]
    assert "city default" in reason[4]
    assert "not in the city's catalogue" in reason[5]
    warnings = unreachable_rules(city)
    assert len(warnings) == 1
    assert "(never) never fires" in warnings[0]
    assert "parks-graffiti" in warnings[0]


def test_default_team_is_triage_unless_named(paris: City, reports: pd.DataFrame) -> None:
    routed = route(city_with(paris, []), reports)
    assert (routed["team"] == TRIAGE_TEAM).all()


def test_batch_equals_one_by_one(paris: City, reports: pd.DataFrame) -> None:
    city = city_with(
        paris,
        [
            *PLAIN,
            {"id": "parks", "team": "DEVE", "zones": {"espace_vert": "*"}},
            {
                "id": "weekend",
                "team": "DVD",
                "weekdays": ["sat"],
                "segment": {"roadClass": ["major"]},
            },
        ],
    )
    whole = route(city, reports)
    single = pd.concat([route(city, reports.iloc[[i]]) for i in range(len(reports))])
    pd.testing.assert_frame_equal(whole, single)


def _edit(tmp_path: Path, rule: dict[str, Any]) -> Path:
    source = load_city("paris").folder / "city.yaml"
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["routing"]["rules"] = [rule]
    folder = tmp_path / "city"
    folder.mkdir()
    (folder / "city.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return folder


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"zones": {"parcs": "*"}}, "routing.rules[0] (r).zones.parcs: no zone layer named"),
        (
            {"segment": {"owner": ["city"]}},
            "routing.rules[0] (r).segment.owner: 'owner' is not a street attribute",
        ),
        ({"team": "nobody"}, "routing.rules[0] (r).team: unknown team 'nobody'"),
        ({"escalate_to": "nobody"}, "routing.rules[0] (r).escalate_to: unknown team"),
        ({"hours": "25:00-07:00"}, "routing.rules[0].hours"),
        ({"flags": {"sunny": True}}, "routing.rules[0].flags.sunny"),
        ({"sla": {"hours": 4, "working_days": 2}}, "give exactly one of hours"),
    ],
)
def test_rule_with_missing_reference_rejected_at_load(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    folder = _edit(tmp_path, {"id": "r", "team": "DEVE", "service": GRAFFITI, **change})
    with pytest.raises(CityConfigError) as error:
        load_city(folder, check_files=False)
    assert str(folder / "city.yaml") in error.value.message
    assert expected in error.value.message


def test_rule_versions_are_stored_and_a_silent_change_refused(paris: City, store: Store) -> None:
    def record(city: City) -> int:
        with store.transaction(paris.jurisdiction_id) as uow:
            return record_rules(uow, city)

    city = city_with(paris, PLAIN)
    assert record(city) == 2
    assert record(city) == 0
    changed = city_with(paris, [dict(PLAIN[0], team="DVD"), PLAIN[1]])
    with pytest.raises(CityConfigError) as error:
        record(changed)
    assert "routing.rules[0] (graffiti).version" in error.value.message
    assert "give the changed rule version 2" in error.value.message
    bumped = city_with(paris, [dict(PLAIN[0], team="DVD", version=2), PLAIN[1]])
    assert record(bumped) == 1
    stored = store.lookup("routing_rules", paris.jurisdiction_id, "rule_id", ["graffiti"])
    assert stored["version"].tolist() == [1, 2]
    assert stored["content_hash"].nunique() == 2


def test_a_rule_changed_without_a_new_version_stops_the_import(
    paris: City, paris_gis: CityGIS, store: Store
) -> None:
    from datetime import UTC, datetime

    from voirie.model import Report
    from voirie.services.pipeline import Pipeline

    def submit(city: City, external_id: str, where: tuple[float, float] = SAINT_GERMAIN) -> None:
        Pipeline(city, store, paris_gis).intake.submit(
            Report(
                external_id=external_id,
                source="test",
                service_code=GRAFFITI,
                lon=where[0],
                lat=where[1],
                requested_at=datetime.now(UTC),
            )
        )

    submit(city_with(paris, PLAIN), "v1")
    stored = store.lookup("routing_rules", paris.jurisdiction_id, "rule_id", ["graffiti"])
    assert stored["version"].tolist() == [1]
    with pytest.raises(CityConfigError, match="give the changed rule version 2"):
        submit(city_with(paris, [dict(PLAIN[0], team="DVD"), PLAIN[1]]), "v1-changed")
    assert store.count("reports", paris.jurisdiction_id) == 1  # nothing of it was written
    # Elsewhere (another incident), with the new version: routed by it.
    submit(city_with(paris, [dict(PLAIN[0], team="DVD", version=2), PLAIN[1]]), "v2", VINCENNES)
    incidents = store.read("incidents", paris.jurisdiction_id)
    assert sorted(incidents["team"]) == ["DVD", "graffitis"]
