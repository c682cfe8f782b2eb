"""Loading a city folder: the shipped Paris city, and every problem of a broken one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from voirie.city import TRIAGE_TEAM, load_city, service_code_for
from voirie.errors import CityConfigError

PARIS = Path(__file__).parents[1] / "cities" / "paris"


def test_paris_is_valid_and_complete() -> None:
    city = load_city("paris")
    assert city.jurisdiction_id == "paris.fr"
    assert city.metric_crs == "EPSG:2154"
    assert len(city.services) == 302
    assert {"Ramen", "graffitis", "DVD", "DEVE", TRIAGE_TEAM} <= set(city.teams)
    assert [z.name for z in city.config.zones] == ["arrondissement", "quartier", "espace_vert"]
    assert (PARIS / "LICENCE.md").is_file()


def test_service_codes_are_stable_functions_of_names() -> None:
    city = load_city("paris")
    for service in list(city.services.values())[:20]:
        group = city.groups[service.group]
        assert service_code_for(group.name, service.name) == service.code


def test_broken_city_lists_every_problem_with_file_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    doc = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    doc["metric_crs"] = "EPSG:4326"
    doc["routing"]["rules"][0]["team"] = "no-such-team"
    doc["services"][1]["group"] = "no-such-group"
    doc["zones"][1]["path"] = "layers/missing.geojson"
    (folder / "city.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CityConfigError) as caught:
        load_city(folder)
    problems = "\n".join(caught.value.problems)
    assert "metric_crs" in problems
    assert "not a projected" in problems
    # Structural errors stop before cross-checks; fix the CRS to see the rest at once.
    doc["metric_crs"] = "EPSG:2154"
    (folder / "city.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CityConfigError) as caught:
        load_city(folder)
    problems = caught.value.problems
    assert all(str(folder / "city.yaml") in p for p in problems)
    joined = "\n".join(problems)
    assert "routing.rules[0]" in joined
    assert "unknown team 'no-such-team'" in joined
    assert "services[1].group: unknown group 'no-such-group'" in joined
    assert "zones[1].path: file 'layers/missing.geojson' not found" in joined


def test_unknown_city_name_is_a_clear_error() -> None:
    with pytest.raises(CityConfigError, match="no shipped city named 'atlantis'"):
        load_city("atlantis")
