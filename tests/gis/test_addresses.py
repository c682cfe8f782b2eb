"""Reverse geocoding (the address guessed for a report that has none) and forward
geocoding of house numbers (where an address stands on its street)."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml

from voirie.city import load_city
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.gis.housenumbers import HouseNumbers, house_number
from voirie.gis.streetsearch import geocode_street
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


# Forward geocoding: house numbers learned from the reports of earlier months.


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """The bundled reports' address, pin and month."""
    raw = read_csv(REPORTS).rows
    return pd.DataFrame(
        {
            "address": raw["adresse"].astype(object),
            "lon": raw["longitude"].astype(float),
            "lat": raw["latitude"].astype(float),
            "month": raw["mois_annee_decla"].astype(str),
        }
    )


def test_numbers_learned_before_a_month_place_its_addresses(
    paris_gis: CityGIS, history: pd.DataFrame
) -> None:
    """Walk-forward: learned on the reports before March 2024, measured on March's."""
    past, month = history[history["month"] < "2024-03"], history[history["month"] == "2024-03"]
    numbers = HouseNumbers.learn(
        paris_gis, past["address"].to_numpy(object), past["lon"], past["lat"]
    )
    sample = month.drop_duplicates("address").head(300)
    near = {"with": 0, "without": 0}
    rx, ry = paris_gis.project(sample["lon"].to_numpy(), sample["lat"].to_numpy())
    for address, x, y in zip(sample["address"], rx, ry, strict=True):
        for label, known in (("with", numbers), ("without", None)):
            found = geocode_street(paris_gis, address, limit=1, numbers=known)
            if found:
                gx, gy = paris_gis.project(np.array([found[0].lon]), np.array([found[0].lat]))
                near[label] += bool(np.hypot(gx[0] - x, gy[0] - y) <= 50)
    assert near["with"] > 2 * near["without"]
    assert near["with"] / len(sample) > 0.5


def test_a_number_is_interpolated_between_its_neighbours_of_the_same_parity(
    paris_gis: CityGIS,
) -> None:
    points = HouseNumbers.from_points(
        np.array(["quai valmy"] * 4, dtype=object),
        np.array([73, 93, 90, 210]),
        np.array([0.0, 100.0, 500.0, 900.0]),
        np.array([0.0, 0.0, 50.0, 50.0]),
        np.array(["Quai de Valmy"] * 4, dtype=object),
    )
    assert points.locate("quai valmy", 83) == (50.0, 0.0, False)  # odd: between 73 and 93
    assert points.locate("quai valmy", 93) == (100.0, 0.0, True)
    assert points.locate("quai valmy", 150) == (700.0, 50.0, False)  # even: 90 and 210
    assert points.locate("quai valmy", 145) == (100.0, 0.0, False)  # after the last odd
    assert points.locate("quai valmy", 1) == (0.0, 0.0, False)  # before the first: nearest
    assert points.locate("quai de jemmapes", 1) is None
    assert points.names == {"quai valmy": "Quai de Valmy"}


@pytest.mark.parametrize(
    ("address", "language", "number"),
    [
        ("91 Quai de Valmy, 75010 PARIS", "fr", 91),
        ("12 bis Av. du Général Leclerc", "fr", 12),
        ("Quai de Valmy", "fr", None),
        ("8600 S SANGAMON ST", "en", 8600),
        ("Hauptstraße 12a, 10115 Berlin", "de", 12),
    ],
)
def test_the_house_number_of_an_address(address: str, language: str, number: int | None) -> None:
    assert house_number(address, language) == number
