"""A mapping guessed from a CSV's columns (``ingest.guess``), on real reports written as
three portals write them: DansMaRue's own columns, Socrata's (Chicago: US dates), and
Opendatasoft's (one point column, day-first dates); then ``voirie city init`` without
``--mapping`` and the import that reads the mapping it drafted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from clirunner import run_voirie

from voirie.city import City
from voirie.errors import SourceError
from voirie.ingest.guess import guess_mapping, guess_team_column
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.ingest.validate import validate

ROOT = Path(__file__).resolve().parents[2]
PARIS = ROOT / "tests/data/dansmarue_200.csv"
CHICAGO = ROOT / "tests/data/chicago_100.json"


def _socrata(path: Path) -> None:
    """The Chicago requests as Chicago's Socrata portal exports them."""
    requests = pd.DataFrame(json.loads(CHICAGO.read_text(encoding="utf-8")))
    when = pd.to_datetime(requests["requested_datetime"], utc=True).dt.tz_convert("America/Chicago")
    pd.DataFrame(
        {
            "sr_number": requests["service_request_id"],
            "sr_type": requests["service_name"],
            "sr_short_code": requests["service_code"],
            "owner_department": requests["service_code"].str[:3],
            "created_date": when.dt.strftime("%m/%d/%Y %I:%M:%S %p"),
            "street_address": requests["address"],
            "latitude": requests["lat"],
            "longitude": requests["long"],
        }
    ).to_csv(path, index=False)


def test_dansmarue_columns_give_the_dansmarue_mapping(paris: City) -> None:
    table = read_csv(PARIS)
    mapping, said = guess_mapping(table, "exemple")
    expected = DANSMARUE.model_copy(
        update={"source": "exemple", "point": None, "other_date_formats": ()}
    )
    assert mapping == expected, said
    found = validate(table, mapping, paris).reports.drop(columns="source")
    pd.testing.assert_frame_equal(
        found, validate(table, DANSMARUE, paris).reports.drop(columns="source")
    )


def test_socrata_columns_and_us_dates(tmp_path: Path) -> None:
    _socrata(tmp_path / "chicago.csv")
    mapping, _ = guess_mapping(read_csv(tmp_path / "chicago.csv"), "chicago")
    assert (mapping.external_id, mapping.lat, mapping.lon) == ("sr_number", "latitude", "longitude")
    assert (mapping.requested_at, mapping.date_format) == ("created_date", "%m/%d/%Y %I:%M:%S %p")
    assert (mapping.service_name, mapping.address) == ("sr_type", "street_address")
    assert mapping.service_code == "sr_short_code"


def test_a_code_column_that_does_not_name_one_service_is_not_the_service_code(
    tmp_path: Path,
) -> None:
    """A column named like a service code whose values go with several services (or are
    not codes city.yaml takes) is left out of the mapping."""
    _socrata(tmp_path / "chicago.csv")
    frame = pd.read_csv(tmp_path / "chicago.csv", dtype=str)
    frame["sr_short_code"] = ["A", "B"] * (len(frame) // 2)
    frame.to_csv(tmp_path / "shuffled.csv", index=False)
    assert guess_mapping(read_csv(tmp_path / "shuffled.csv"), "x")[0].service_code is None
    frame["sr_short_code"] = frame["sr_type"]  # names with spaces: not codes
    frame.to_csv(tmp_path / "names.csv", index=False)
    assert guess_mapping(read_csv(tmp_path / "names.csv"), "x")[0].service_code is None


def test_the_team_column_is_one_named_like_it_holding_a_short_list(tmp_path: Path) -> None:
    _socrata(tmp_path / "chicago.csv")
    table = read_csv(tmp_path / "chicago.csv")
    mapping, _ = guess_mapping(table, "chicago")
    assert guess_team_column(table, mapping) == "owner_department"
    # A column read by the mapping is never the team column.
    as_code = mapping.model_copy(update={"service_code": "owner_department"})
    assert guess_team_column(table, as_code) is None
    # Nor one of (nearly) a value a row: an id, not a team.
    frame = pd.read_csv(tmp_path / "chicago.csv", dtype=str)
    frame["owner_department"] = frame["sr_number"]
    frame.to_csv(tmp_path / "ids.csv", index=False)
    assert guess_team_column(read_csv(tmp_path / "ids.csv"), mapping) is None
    # Nor one filled on fewer than half the rows.
    frame["owner_department"] = frame["sr_short_code"].where(frame.index % 3 == 0)
    frame.to_csv(tmp_path / "sparse.csv", index=False)
    assert guess_team_column(read_csv(tmp_path / "sparse.csv"), mapping) is None


def test_an_opendatasoft_export_gives_its_point_and_day_first_dates(tmp_path: Path) -> None:
    frame = pd.read_csv(PARIS, dtype=str, keep_default_na=False)
    frame["geo_point_2d"] = frame["latitude"] + ", " + frame["longitude"]
    day, month, year = (
        frame["datedecl"].str[8:],
        frame["datedecl"].str[5:7],
        frame["datedecl"].str[:4],
    )
    frame["datedecl"] = day + "/" + month + "/" + year
    frame.drop(columns=["latitude", "longitude"]).to_csv(tmp_path / "ods.csv", index=False, sep=";")
    mapping, _ = guess_mapping(read_csv(tmp_path / "ods.csv"), "ods")
    assert (mapping.lat, mapping.lon, mapping.point) == (None, None, "geo_point_2d")
    assert mapping.date_format == "%d/%m/%Y"


def test_without_an_id_column_it_says_which_fields_it_could_not_tell(tmp_path: Path) -> None:
    frame = pd.read_csv(PARIS, dtype=str, keep_default_na=False)
    frame["id_dmr"] = "same"  # not unique: no id
    frame.drop(columns=["numero"]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(SourceError, match=r"could be told to hold external_id \(columns: id_dmr,"):
        guess_mapping(read_csv(tmp_path / "r.csv"), "x")


def test_city_init_without_a_mapping_drafts_one_that_the_import_reads(tmp_path: Path) -> None:
    _socrata(tmp_path / "chicago.csv")
    init = run_voirie(
        tmp_path,
        *("city", "init", "Chicago", "--reports", "chicago.csv", "--format", "csv"),
        *("--timezone", "America/Chicago", "--out", "chicago"),
    )
    said = init.stdout + init.stderr
    assert init.returncode == 0, said
    assert "chicago/mapping.yaml, guessed from the columns (review it)" in " ".join(said.split())
    assert "requested_at: created_date\n" in (tmp_path / "chicago/mapping.yaml").read_text()
    done = run_voirie(tmp_path, "import", "chicago.csv", "--city", "chicago", "--format", "csv")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "mapping: " in said
    assert "imported                                 │ 99" in said, said  # one has no point
