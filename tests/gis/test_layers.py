"""Reading reference layers in the formats cities publish, and ``voirie layers check``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
import yaml
from clirunner import run_voirie

from voirie.city import City, StreetLayer, ZoneLayer
from voirie.errors import CityConfigError
from voirie.gis.check import check_city_layers
from voirie.gis.layers import (
    clean_geometry,
    gdal_path,
    load_streets,
    load_zones,
    read_streets,
    read_zones,
)

ROOT = Path(__file__).parents[2]
PARIS = ROOT / "cities/paris"
QUARTIERS = PARIS / "layers/quartiers_administratifs.geojson.gz"
STREETS = PARIS / "layers/streets.geojson.gz"
QUARTIER = ZoneLayer(name="quartier", path="", code_field="c_qu", name_field="l_qu")
STREET = StreetLayer(path="", name_field="name", attributes=["roadClass"])


def test_gdal_path_reads_compressed_files_in_place() -> None:
    assert gdal_path(Path("a/b.geojson.gz")) == "/vsigzip/a/b.geojson.gz"
    assert gdal_path(Path("a/b.shp.zip")) == "/vsizip/a/b.shp.zip"
    assert gdal_path(Path("a/B.ZIP")) == "/vsizip/a/B.ZIP"
    assert gdal_path(Path("a/b.gpkg")) == "a/b.gpkg"


def _write(frame: gpd.GeoDataFrame, folder: Path, fmt: str) -> str:
    """Write ``frame`` in ``fmt`` into ``folder``; the path city.yaml would name."""
    if fmt == "shp.zip":
        shp = folder / "shp"
        shp.mkdir()
        pyogrio.write_dataframe(frame, shp / "layer.shp")
        with zipfile.ZipFile(folder / "layer.shp.zip", "w") as archive:
            for part in shp.iterdir():
                archive.write(part, part.name)
        return "layer.shp.zip"
    name = f"layer.{fmt}"
    pyogrio.write_dataframe(frame, folder / name)
    return name


FORMATS = ["gpkg", "shp.zip", "fgb", "geojson"]


@pytest.mark.parametrize("source_crs", ["EPSG:2154", "EPSG:3857"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_zones_in_every_format_and_crs_reach_the_city_crs(
    paris: City, tmp_path: Path, fmt: str, source_crs: str
) -> None:
    quartiers = gpd.read_file(gdal_path(QUARTIERS)).iloc[:50][["c_qu", "l_qu", "geometry"]]
    rel = _write(quartiers.to_crs(source_crs), tmp_path, fmt)
    city = City(tmp_path, paris.config)
    zones = load_zones(city, QUARTIER.model_copy(update={"path": rel}))
    assert zones.crs == paris.metric_crs
    assert len(zones) == 50
    # FlatGeobuf stores features in the order of its spatial index: compare by code.
    zones = zones.sort_values("code", ignore_index=True)
    expected = quartiers.to_crs(paris.metric_crs)
    expected = expected.assign(c_qu=expected["c_qu"].astype(str)).sort_values(
        "c_qu", ignore_index=True
    )
    assert zones["code"].tolist() == expected["c_qu"].tolist()
    assert zones["name"].tolist() == expected["l_qu"].tolist()
    # Same places as reprojected directly from the source (to the millimetre).
    assert np.all(
        shapely.hausdorff_distance(zones.geometry.values, expected.geometry.values) < 0.001
    )


@pytest.mark.parametrize("source_crs", ["EPSG:2154", "EPSG:3857"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_streets_in_every_format_and_crs_are_exploded_and_reprojected(
    paris: City, tmp_path: Path, fmt: str, source_crs: str
) -> None:
    streets = gpd.read_file(gdal_path(STREETS), max_features=200)[["name", "roadClass", "geometry"]]
    # Pairs of segments as multi-part lines, as many street files hold them.
    multi = [
        shapely.MultiLineString([a, b])
        for a, b in zip(streets.geometry.iloc[0:100:2], streets.geometry.iloc[1:100:2], strict=True)
    ]
    source = gpd.GeoDataFrame(
        {
            "name": streets["name"].iloc[0:100:2].tolist() + streets["name"].iloc[100:].tolist(),
            "roadClass": streets["roadClass"].iloc[0:100:2].tolist()
            + streets["roadClass"].iloc[100:].tolist(),
        },
        geometry=multi + streets.geometry.iloc[100:].tolist(),
        crs=streets.crs,
    )
    rel = _write(source.to_crs(source_crs), tmp_path, fmt)
    loaded = read_streets(City(tmp_path, paris.config), STREET.model_copy(update={"path": rel}))
    assert loaded.frame.crs == paris.metric_crs
    assert loaded.stats.read == 150
    assert loaded.stats.exploded == 50
    assert loaded.stats.kept == len(loaded.frame) == 200
    assert set(loaded.frame.geom_type) == {"LineString"}
    assert loaded.frame["segment_id"].is_unique
    expected = streets.to_crs(paris.metric_crs)
    assert np.isclose(loaded.frame.length.sum(), expected.length.sum(), rtol=1e-9)
    assert loaded.frame.total_bounds == pytest.approx(expected.total_bounds, abs=0.001)


def test_loading_counts_what_it_repairs_and_drops(paris: City, tmp_path: Path) -> None:
    quartiers = gpd.read_file(gdal_path(QUARTIERS)).iloc[:10][["c_qu", "l_qu", "geometry"]]
    x, y = 2.35, 48.86
    bowtie = shapely.Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)])
    geometry = quartiers.geometry.tolist()
    geometry[0], geometry[1] = bowtie, None
    geometry[2] = shapely.LineString([(x, y), (x + 0.01, y)])
    quartiers = quartiers.set_geometry(geometry, crs=4326)
    quartiers.to_file(tmp_path / "q.geojson")
    city = City(tmp_path, paris.config)
    loaded = read_zones(city, QUARTIER.model_copy(update={"path": "q.geojson"}))
    stats = loaded.stats
    assert (stats.read, stats.empty, stats.repaired, stats.rejected, stats.kept) == (10, 1, 1, 1, 8)
    assert loaded.frame.geometry.is_valid.all()
    assert loaded.frame["code"].iloc[0] == str(quartiers["c_qu"].iloc[0])
    assert set(loaded.frame.geom_type) <= {"Polygon", "MultiPolygon"}
    # The street loader rejects the parts that are not lines.
    streets = gpd.GeoDataFrame(
        {"name": ["a", "b", "c"], "roadClass": ["x", "y", "z"]},
        geometry=[shapely.LineString([(x, y), (x + 0.001, y)]), shapely.Point(x, y), None],
        crs=4326,
    )
    streets.to_file(tmp_path / "s.geojson")
    street = STREET.model_copy(update={"path": "s.geojson"})
    lines = read_streets(city, street)
    assert (lines.stats.read, lines.stats.empty, lines.stats.rejected, lines.stats.kept) == (
        3,
        1,
        1,
        1,
    )
    assert len(load_streets(city, street)) == 1


def test_paris_layers_check_clean(paris: City) -> None:
    reports = {r.name: r for r in check_city_layers(PARIS)}
    assert list(reports) == ["streets", "arrondissement", "quartier", "espace_vert"]
    assert all(not r.problems for r in reports.values())
    assert reports["arrondissement"].features == 20
    assert reports["quartier"].features == 80
    assert reports["quartier"].coverage == {"c_qu": 1.0, "l_qu": 1.0}
    assert reports["streets"].coverage == {"name": 1.0, "roadClass": 1.0}
    bbox = reports["arrondissement"].bbox
    assert bbox is not None
    # Paris in Lambert-93: about 18 km across, around (652 km, 6862 km).
    assert 640_000 < bbox[0] < bbox[2] < 665_000
    assert 6_855_000 < bbox[1] < bbox[3] < 6_870_000


def test_paris_layers_check_cli(tmp_path: Path) -> None:
    run = run_voirie(tmp_path, "layers", "check", str(PARIS))
    assert run.returncode == 0, run.stderr
    rows = {
        line.split("│")[1].strip(): line
        for line in run.stdout.splitlines()
        if line.count("│") > 5 and line.split("│")[1].strip()
    }
    assert "│ 20 " in rows["arrondissement"]
    assert "│ 80 " in rows["quartier"]
    assert "4 layers, no problem" in run.stdout


@pytest.fixture
def corrupted(tmp_path: Path) -> Path:
    """Paris, with every kind of layer problem at once."""
    folder = tmp_path / "city"
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    layers = folder / "layers"
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    # Quartiers: a self-intersecting bow-tie, an empty geometry, the name attribute removed.
    quartiers = gpd.read_file(gdal_path(layers / "quartiers_administratifs.geojson.gz"))
    x, y = 2.35, 48.86
    geometry = quartiers.geometry.tolist()
    geometry[0] = shapely.Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)])
    geometry[1] = shapely.Polygon()
    quartiers = quartiers.set_geometry(geometry, crs=quartiers.crs).drop(columns=["l_qu"])
    quartiers.to_file(layers / "quartiers.gpkg")
    config["zones"][1]["path"] = "layers/quartiers.gpkg"
    # Arrondissements: a shapefile without its .prj, so without CRS.
    arrondissements = gpd.read_file(gdal_path(layers / "arrondissements.geojson.gz"))
    arrondissements[["c_ar", "l_aroff", "geometry"]].to_file(layers / "arrondissements.shp")
    (layers / "arrondissements.prj").unlink()
    config["zones"][0]["path"] = "layers/arrondissements.shp"
    # Green spaces: not a vector file at all.
    (layers / "espaces_verts.gpkg").write_bytes(b"not a geopackage")
    config["zones"][2]["path"] = "layers/espaces_verts.gpkg"
    # Streets: missing.
    (layers / "streets.geojson.gz").unlink()
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return folder


def test_corrupted_layers_are_all_reported(corrupted: Path) -> None:
    reports = {r.name: r for r in check_city_layers(corrupted)}
    assert len(reports["streets"].problems) == 1
    assert "not found" in reports["streets"].problems[0]
    assert reports["arrondissement"].crs is None
    assert reports["arrondissement"].features == 20
    assert reports["arrondissement"].bbox is None
    assert ["no CRS" in p for p in reports["arrondissement"].problems] == [True]
    quartier = reports["quartier"]
    assert quartier.stats is not None
    assert (quartier.stats.empty, quartier.stats.repaired, quartier.stats.kept) == (1, 1, 79)
    assert quartier.coverage == {"c_qu": 1.0}
    assert len(quartier.problems) == 1
    assert "'l_qu'" in quartier.problems[0]
    assert "zones[1].name_field" in quartier.problems[0]
    assert ["unreadable" in p for p in reports["espace_vert"].problems] == [True]


def test_corrupted_layers_cli(corrupted: Path) -> None:
    run = run_voirie(corrupted, "layers", "check", str(corrupted))
    assert run.returncode == 1, run.stdout + run.stderr
    problems = [line for line in run.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 4, run.stderr
    text = "\n".join(problems)
    assert "layers/streets.geojson.gz (streets): file not found" in text
    assert "layers/arrondissements.shp (zones[0]): no CRS" in text
    assert "layers/quartiers.gpkg (zones[1]): attribute 'l_qu' (zones[1].name_field)" in text
    assert "layers/espaces_verts.gpkg (zones[2]): unreadable" in text
    # What loading repairs by itself is named too, without being a problem.
    assert "layers/quartiers.gpkg (zones[1]): 1 empty geometry dropped" in run.stdout
    assert "layers/quartiers.gpkg (zones[1]): 1 invalid polygon repaired" in run.stdout


def test_loading_names_a_missing_attribute_and_a_missing_crs(paris: City, tmp_path: Path) -> None:
    quartiers = gpd.read_file(gdal_path(QUARTIERS)).iloc[:3][["c_qu", "geometry"]]
    quartiers.to_file(tmp_path / "q.gpkg")
    quartiers.to_file(tmp_path / "n.shp")
    (tmp_path / "n.prj").unlink()
    city = City(tmp_path, paris.config)
    with pytest.raises(CityConfigError, match=r"q\.gpkg: zone quartier\.name_field: .*'l_qu'"):
        load_zones(city, QUARTIER.model_copy(update={"path": "q.gpkg"}))
    with pytest.raises(CityConfigError, match=r"n\.shp: the layer has no CRS"):
        load_zones(city, QUARTIER.model_copy(update={"path": "n.shp"}))


def test_polygons_mixed_with_stray_lines_keep_their_polygons(paris: City) -> None:
    """25 Paris green spaces are collections of polygons and stray lines: keep the polygons."""
    path = paris.path(paris.config.zones[2].path)
    source = gpd.read_file(gdal_path(path))
    mixed = source[source.geom_type == "GeometryCollection"]
    assert len(mixed) > 0
    cleaned, stats = clean_geometry(mixed, "polygons", paris.metric_crs)
    assert stats.rejected == 0
    assert len(cleaned) == len(mixed)
    assert set(cleaned.geom_type) <= {"Polygon", "MultiPolygon"}
    assert (cleaned.area > 0).all()


BOGUS_PROJECTION = (
    'PROJCS["bogus",GEOGCS["GRS80",DATUM["d",SPHEROID["GRS 1980",6378137,298.257222101]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["No_Such_Projection"],UNIT["metre",1]]'
)
BROKEN_ELLIPSOID = BOGUS_PROJECTION.replace("6378137,298.257222101", "0,0")


@pytest.mark.parametrize("prj", [BOGUS_PROJECTION, BROKEN_ELLIPSOID])
def test_layers_check_names_an_unknown_crs(tmp_path: Path, prj: str) -> None:
    folder = tmp_path / "city"
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    arrondissements = gpd.read_file(gdal_path(folder / "layers/arrondissements.geojson.gz"))
    arrondissements[["c_ar", "l_aroff", "geometry"]].to_file(folder / "layers/arr.shp")
    (folder / "layers/arr.prj").write_text(prj, encoding="utf-8")
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    config["zones"][0]["path"] = "layers/arr.shp"
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    report = {r.name: r for r in check_city_layers(folder)}["arrondissement"]
    assert len(report.problems) == 1
    assert report.problems[0].startswith("layers/arr.shp (zones[0]): unknown CRS")
