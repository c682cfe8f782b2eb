"""A category city.yaml does not list, in a feed imported later (Open311 requests with no
group: Chicago's 311 adds request types the city was configured without): imported under
the source's own code, routed to triage, deduplicated within that category by voirie's
defaults (30 m, 7 days), and counted in the import's summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from clirunner import run_voirie

from voirie.city import TRIAGE_TEAM, load_city, service_code_for
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import OPEN311
from voirie.ingest.sources import read_open311_json
from voirie.ingest.validate import validate
from voirie.model import Flag
from voirie.services.pipeline import Pipeline
from voirie.store import Store

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "tests/data/chicago_100.json"
NEW_CODE = "ZZNEW"
NEW_NAME = "Request type added after the city was configured"


def _requests(path: Path) -> list[str]:
    """The bundled Chicago requests, three of them (far apart) given a new type, and a
    fourth the same new type 5 m north of the first, an hour later: the ids of the four."""
    requests = json.loads(REQUESTS.read_text(encoding="utf-8"))
    located = [r for r in requests if r.get("lat") is not None and r["service_code"] != "311IOC"]
    chosen = located[:3]
    for request in chosen:
        request.update(service_code=NEW_CODE, service_name=NEW_NAME)
    twin = dict(
        chosen[0],
        service_request_id="SR21-TWIN",
        lat=chosen[0]["lat"] + 5 / 111_000,
        requested_datetime=(
            pd.Timestamp(chosen[0]["requested_datetime"]) + pd.Timedelta(hours=1)
        ).isoformat(),
    )
    requests.append(twin)
    path.write_text(json.dumps(requests), encoding="utf-8")
    return [r["service_request_id"] for r in (*chosen, twin)]


@pytest.fixture(scope="module")
def chicago_gis() -> CityGIS:
    return CityGIS(load_city("chicago"))


def test_a_new_request_type_is_imported_deduplicated_and_sent_to_triage(
    tmp_path: Path, chicago_gis: CityGIS, store: Store
) -> None:
    ids = _requests(tmp_path / "later.json")
    pipeline = Pipeline(chicago_gis.city, store, chicago_gis)
    summary = pipeline.imports.import_table(read_open311_json(tmp_path / "later.json"), OPEN311)
    layer = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
    assert not summary.quarantine["reason"].str.startswith("unknown category").any()
    assert summary.new_categories == {NEW_CODE: 4}
    assert summary.category_names == {NEW_CODE: NEW_NAME}
    new = layer.set_index("external_id").loc[ids]
    assert (new["service_code"] == NEW_CODE).all()
    assert (new["team"] == TRIAGE_TEAM).all()
    # The twin joins the first one's incident; the other two, kilometres away, do not.
    incidents = new["incident_id"].tolist()
    assert incidents[3] == incidents[0]
    assert len(set(incidents[:3])) == 3


def test_the_import_command_names_the_new_categories(tmp_path: Path) -> None:
    _requests(tmp_path / "later.json")
    done = run_voirie(
        tmp_path, "import", "later.json", "--city", "chicago", "--format", "open311-json"
    )
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, said
    assert "of a category not in city.yaml │ 4" in said, said
    assert f"categories not in city.yaml, routed to triage: {NEW_CODE} '{NEW_NAME}' (4);" in said


def test_a_new_category_without_a_usable_code_gets_one_from_its_name(
    tmp_path: Path, chicago_gis: CityGIS
) -> None:
    requests = json.loads(REQUESTS.read_text(encoding="utf-8"))[:5]
    requests[0].update(service_code="not a code!", service_name="Brand New Complaint")
    requests[1].update(service_code=None, service_name="Brand New Complaint")
    (tmp_path / "later.json").write_text(json.dumps(requests), encoding="utf-8")
    valid = validate(read_open311_json(tmp_path / "later.json"), OPEN311, chicago_gis.city)
    derived = service_code_for("Brand New Complaint", "Brand New Complaint")
    assert derived.startswith("brand-new-compla-")
    assert valid.reports["service_code"].tolist()[:2] == [derived, derived]
    assert valid.reports[Flag.UNKNOWN_SERVICE].tolist() == [True, True, False, False, False]
