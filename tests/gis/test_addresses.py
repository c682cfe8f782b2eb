"""Reverse geocoding: the address guessed for a report that has none."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import yaml

from voirie.city import load_city
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import read_csv

PARIS = Path(__file__).parents[2] / "cities/paris"
REPORTS = PARIS / "reports/dansmarue_2023-07_2024-03.csv.gz"
LEFT_OUT = 100  # the house number whose report is enriched without its address


@pytest.fixture(scope="module")
def oberkampf() -> gpd.GeoDataFrame:
    """One real DansMaRue position per house number of Rue Oberkampf (28 numbers)."""
    raw = read_csv(REPORTS).rows
    parts = raw["adresse"].str.extract(r"^(\d+) (Rue Oberkampf), 75011")
    rows = raw[parts[0].notna()].assign(numero=parts[0], voie=parts[1])
    rows = rows.drop_duplicates("numero")
    return gpd.GeoDataFrame(
        rows[["numero", "voie"]].reset_index(drop=True),
        geometry=gpd.points_from_xy(
            rows["longitude"].astype(float), rows["latitude"].astype(float)
        ),
        crs="EPSG:4326",
    )


def _city_with_addresses(folder: Path, points: gpd.GeoDataFrame, **layer: object) -> Path:
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    points.to_file(folder / "layers/addresses.geojson")
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    config["addresses"] = {
        "path": "layers/addresses.geojson",
        "number_field": "numero",
        "street_field": "voie",
        **layer,
    }
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return folder


def test_the_house_number_is_interpolated_between_its_neighbours(
    tmp_path: Path, oberkampf: gpd.GeoDataFrame
) -> None:
    left_out = oberkampf["numero"] == str(LEFT_OUT)
    report = oberkampf[left_out].geometry.iloc[0]
    gis = CityGIS(load_city(_city_with_addresses(tmp_path / "city", oberkampf[~left_out])))
    out = gis.enrich(
        np.array([report.x, report.x]),
        np.array([report.y, report.y]),
        np.array([None, "100 Rue Oberkampf, 75011 PARIS"], dtype=object),
    )
    guess = out["address_guess"].iloc[0]
    number, street = guess.split(" ", 1)
    assert street == out["street_name"].iloc[0] == "Rue Oberkampf"
    # Even like its side of the street, between the even neighbours 92 and 120.
    assert int(number) % 2 == 0
    assert 92 <= int(number) <= 120
    # A report that has an address needs no guess.
    assert out["address_guess"].isna().iloc[1]


def test_without_address_points_the_guess_is_the_street(paris_gis: CityGIS) -> None:
    out = paris_gis.enrich(
        np.array([2.3800201422199687, -8.0]), np.array([48.86614608645489, 46.0])
    )
    assert out["address_guess"].iloc[0] == out["street_name"].iloc[0] == "Rue Oberkampf"
    assert out["address_guess"].isna().iloc[1]  # outside the city, on no street


def test_an_address_layer_without_its_number_field_is_named(
    tmp_path: Path, oberkampf: gpd.GeoDataFrame
) -> None:
    folder = _city_with_addresses(tmp_path / "city", oberkampf, number_field="housenumber")
    with pytest.raises(CityConfigError, match=r"addresses\.number_field: no attribute"):
        CityGIS(load_city(folder))
