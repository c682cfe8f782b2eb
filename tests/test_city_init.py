"""``voirie city init``: a city folder drafted from a city's own files, then imported as is.

Run as a user would (the installed command, in a fresh folder, no hand-written city.yaml),
on the bundled real data: Chicago's Open311 requests with its community areas, and Paris's
DansMaRue reports with the team each was really routed to.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from clirunner import run_voirie

from voirie.city import load_city
from voirie.gis.layers import read_source
from voirie.services.rules_learning import Learning

ROOT = Path(__file__).parents[1]
CHICAGO_REPORTS = ROOT / "tests/data/chicago_100.json"
COMMUNITY_AREAS = ROOT / "cities/chicago/layers/community_areas.geojson.gz"
PARIS_REPORTS = ROOT / "tests/data/dansmarue_200.csv"
ARRONDISSEMENTS = ROOT / "cities/paris/layers/arrondissements.geojson.gz"


def _ok(folder: Path, *args: str) -> str:
    done = run_voirie(folder, *args)
    assert done.returncode == 0, done.stderr
    return done.stderr + done.stdout


def _reports(folder: Path, city: str) -> pd.DataFrame:
    _ok(folder, "export", "reports", "--city", city, "--format", "csv", "-o", "reports.csv")
    return pd.read_csv(folder / "reports.csv", dtype={"zone_community_areas": "string"})


def test_chicago_from_scratch_imports_with_its_zones(tmp_path: Path) -> None:
    out = _ok(
        tmp_path,
        "city", "init", "Chicago",
        "--reports", str(CHICAGO_REPORTS),
        "--zones", str(COMMUNITY_AREAS),
        "--timezone", "America/Chicago",
    )  # fmt: skip
    assert "99 of 100 reports located" in out
    city = load_city(tmp_path / "chicago")
    assert city.metric_crs == "EPSG:32616"  # UTM 16N, where Chicago is
    assert city.config.territory.layer == "community_areas"
    zone = city.config.zones[0]
    assert (zone.code_field, zone.name_field) == ("AREA_NUMBE", "COMMUNITY")

    summary = _ok(
        tmp_path, "import", str(CHICAGO_REPORTS), "--city", "chicago", "--format", "open311-json"
    )
    assert "imported" in summary
    reports = _reports(tmp_path, "chicago")
    source = pd.read_json(CHICAGO_REPORTS, dtype={"service_request_id": str})
    located = source.dropna(subset=["lat", "long"])
    assert len(reports) == len(located) == 99
    # Every report's service is the category it was filed under (none sent to "unknown").
    by_id = reports.set_index("external_id")
    assert (
        by_id.loc[located["service_request_id"], "service_code"].to_numpy()
        == located["service_code"].to_numpy()
    ).all()
    # Zones: the community area each point falls in, checked against the layer directly.
    areas = read_source(COMMUNITY_AREAS).to_crs(4326)
    points = gpd.GeoDataFrame(
        located[["service_request_id"]],
        geometry=shapely.points(located["long"], located["lat"]),
        crs=4326,
    )
    truth = gpd.sjoin(points, areas[["AREA_NUMBE", "geometry"]], predicate="within")
    truth = truth.set_index("service_request_id")["AREA_NUMBE"].astype(str)
    assert len(truth) > 90
    got = by_id.loc[truth.index, "zone_community_areas"]
    assert (got.to_numpy() == truth.to_numpy()).all()
    # Incidents: every incident holds one service (the default match), every report one.
    assert reports["incident_id"].notna().all()
    assert (reports.groupby("incident_id")["service_code"].nunique() == 1).all()
    # 59 of the 60 information calls stand at one point, the 311 centre: a stand-in, not a
    # place, so they are never merged (the 7 aircraft-noise complaints, all at O'Hare, are
    # too few to tell: at least 10 are needed).
    never = {s.code: s.dedupe for s in city.config.services if s.dedupe is not None}
    assert list(never) == ["311IOC"], never
    assert never["311IOC"].match == "never"
    assert "59 of 60 reports at one point (41.87183, -87.67985)" in str(never["311IOC"].why)
    assert reports[reports["service_code"] == "311IOC"]["incident_id"].is_unique


def test_without_zones_the_territory_is_drawn_around_the_reports(tmp_path: Path) -> None:
    _ok(
        tmp_path,
        "city", "init", "Chicago",
        "--reports", str(CHICAGO_REPORTS),
        "--out", "here",
    )  # fmt: skip
    city = load_city(tmp_path / "here")
    assert [z.name for z in city.config.zones] == ["territory"]
    territory = read_source(city.path(city.config.zones[0].path)).to_crs(4326)
    source = pd.read_json(CHICAGO_REPORTS).dropna(subset=["lat", "long"])
    inside = shapely.contains_xy(
        territory.geometry.iloc[0], source["long"].to_numpy(), source["lat"].to_numpy()
    )
    assert inside.all()
    _ok(tmp_path, "import", str(CHICAGO_REPORTS), "--city", "here", "--format", "open311-json")
    assert len(_reports(tmp_path, "here")) == 99


def test_a_team_column_gives_teams_and_learned_routing(tmp_path: Path) -> None:
    _ok(
        tmp_path,
        "city", "init", "Paris",
        "--reports", str(PARIS_REPORTS),
        "--format", "dansmarue",
        "--zones", str(ARRONDISSEMENTS),
        "--team-column", "intervenant",
        "--locale", "fr",
        "--timezone", "Europe/Paris",
    )  # fmt: skip
    city = load_city(tmp_path / "paris")
    source = pd.read_csv(PARIS_REPORTS, dtype=str)
    assert {t.code for t in city.config.teams} == set(source["intervenant"])
    rules = {r.service: r.team for r in city.config.routing.rules if r.service and not r.zones}
    assert rules, "no service rule was learned"
    # A service rule names the majority team of its service (the walk-forward baseline),
    # and only services with the learning's support get one.
    source["service_code"] = [
        next(s.code for s in city.config.services if s.name == name) for name in source["soustype"]
    ]
    counts = source.groupby("service_code")["intervenant"].value_counts()
    for service, team in rules.items():
        assert counts[service].idxmax() == team
        assert counts[service].sum() >= Learning().min_support

    _ok(tmp_path, "import", str(PARIS_REPORTS), "--city", "paris", "--format", "dansmarue")
    reports = _reports(tmp_path, "paris")
    ruled = reports[reports["service_code"].isin(list(rules))]
    assert len(ruled) > 0
    assert (ruled["team"] == ruled["service_code"].map(rules)).all()
    assert reports["zone_arrondissements"].notna().all()


def test_a_column_named_like_a_team_column_is_taken_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    """DansMaRue's ``intervenant`` is found without ``--team-column`` (and said to be a
    guess): the same teams and rules as when it is named; ``--no-teams`` drafts none."""
    base = ("city", "init", "Paris", "--reports", str(PARIS_REPORTS), "--format", "dansmarue")
    said = " ".join(_ok(tmp_path, *base, "--out", "guessed").split())
    assert "learned from 'intervenant' (guessed from its name" in said, said
    _ok(tmp_path, *base, "--out", "named", "--team-column", "intervenant")
    guessed, named = (load_city(tmp_path / out).config for out in ("guessed", "named"))
    assert guessed.teams == named.teams
    assert len(guessed.teams) > 1
    assert guessed.routing == named.routing
    assert guessed.routing.rules

    said = " ".join(_ok(tmp_path, *base, "--out", "none", "--no-teams").split())
    assert "0 teams; no team column: every report goes to triage" in said, said
    none = load_city(tmp_path / "none").config
    assert not none.teams
    assert not none.routing.rules
    both = run_voirie(tmp_path, *base, "--no-teams", "--team-column", "intervenant")
    assert both.returncode == 2
    assert "--no-teams and --team-column: give one or the other" in both.stderr


def test_an_existing_city_is_not_overwritten(tmp_path: Path) -> None:
    args = ("city", "init", "Chicago", "--reports", str(CHICAGO_REPORTS), "--out", "c")
    _ok(tmp_path, *args)
    again = run_voirie(tmp_path, *args)
    assert again.returncode == 2
    assert "--force" in again.stderr
    _ok(tmp_path, *args, "--force")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--team-column", "owner"), "--team-column: the reports have no column 'owner'"),
        (("--zones", str(PARIS_REPORTS)), f"--zones {PARIS_REPORTS}: the file has no geometry"),
        (("--streets", str(COMMUNITY_AREAS)), "expected LineString or MultiLineString geometry"),
    ],
)
def test_bad_options_name_the_option(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run_voirie(tmp_path, "city", "init", "X", "--reports", str(CHICAGO_REPORTS), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "x").exists()  # nothing half-written
