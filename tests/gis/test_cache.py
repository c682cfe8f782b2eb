"""The on-disk cache of a city's prepared GIS (``voirie.gis.cache``): a city loaded from
its entry enriches exactly as one built from its layers, and an entry that is stale,
corrupt or truncated is never used."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from datafiles import PARIS_REPORTS

from voirie.city import City, load_city
from voirie.gis import cache
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import read_csv

CITIES = Path(__file__).parents[2] / "cities"


@pytest.fixture(name="cache_home")
def fixture_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own (``$XDG_CACHE_HOME/voirie/gis``)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "voirie" / "gis"


@pytest.fixture(name="chicago_copy")
def fixture_chicago_copy(tmp_path: Path) -> City:
    """A copy of the Chicago city folder (one zone layer, no streets), to be changed."""
    folder = tmp_path / "chicago"
    shutil.copytree(CITIES / "chicago", folder)
    return load_city(folder)


def test_paris_loaded_from_its_entry_enriches_as_when_built(cache_home: Path) -> None:
    paris = load_city("paris")
    built = CityGIS(paris)
    entry = cache.entry_path(paris)
    assert entry.parent == cache_home
    assert entry.is_file()
    loaded = CityGIS(paris)
    assert loaded.city is paris
    raw = read_csv(PARIS_REPORTS).rows
    lon = pd.to_numeric(raw["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(raw["latitude"], errors="coerce").to_numpy()
    keep = np.isfinite(lon) & np.isfinite(lat)
    address = raw["adresse"].to_numpy(dtype=object)[keep]
    expected = built.enrich(lon[keep], lat[keep], address)
    pd.testing.assert_frame_equal(loaded.enrich(lon[keep], lat[keep], address), expected)
    # Point-in-polygon tests run on prepared polygons, as after a build.
    for zone in loaded.zones.values():
        assert shapely.is_prepared(zone.polygons).all()
    assert loaded.edges is not None
    assert built.edges is not None
    assert len(loaded.edges.line_tree) == len(built.edges.line_tree)


def test_a_loaded_entry_shares_the_streets_geometries_as_the_built_gis(
    cache_home: Path,
) -> None:
    """The streets frame and the GIS's own array of their geometries are one array when
    built; loaded, they are one again (decoded once), with the frame's CRS."""
    paris = load_city("paris")
    built = CityGIS(paris)
    loaded = CityGIS(paris)
    for gis in (built, loaded):
        assert gis.streets is not None
        assert np.asarray(gis.streets.geometry.values) is gis.streets_geometry
    assert loaded.streets is not None
    assert built.streets is not None
    assert loaded.streets.crs == built.streets.crs
    assert shapely.equals_exact(loaded.streets_geometry, built.streets_geometry).all()


def test_a_changed_layer_file_is_a_new_entry(cache_home: Path, chicago_copy: City) -> None:
    first = cache.entry_path(chicago_copy)
    layer = chicago_copy.path(chicago_copy.config.zones[0].path)
    with gzip.open(layer, "rt", encoding="utf-8") as file:
        text = file.read()
    # The same features with one zone renamed: the key follows the content, not the name.
    changed = text.replace('"COMMUNITY": "LOOP"', '"COMMUNITY": "THE LOOP"', 1)
    assert changed != text
    with gzip.open(layer, "wt", encoding="utf-8") as file:
        file.write(changed)
    assert cache.entry_path(chicago_copy) != first
    CityGIS(chicago_copy)
    assert [p.name for p in cache_home.glob("*.pickle")] == [cache.entry_path(chicago_copy).name]
    names = CityGIS(chicago_copy).zones[chicago_copy.config.zones[0].name].names
    assert "THE LOOP" in set(names)


def test_a_changed_layer_key_of_city_yaml_is_a_new_entry(chicago_copy: City) -> None:
    zone = chicago_copy.config.zones[0]
    renamed = chicago_copy.config.model_copy(
        update={"zones": [zone.model_copy(update={"name_field": "AREA_NUM_1"})]}
    )
    other = City(chicago_copy.folder, renamed)
    assert cache.prepared_key(other) != cache.prepared_key(chicago_copy)
    # Keys the GIS does not read (routing, teams) leave the entry as it is.
    retimed = chicago_copy.config.model_copy(update={"near_boundary_m": 99.0})
    assert cache.prepared_key(City(chicago_copy.folder, retimed)) == cache.prepared_key(
        chicago_copy
    )


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a dict"])
def test_a_damaged_entry_is_removed_and_the_gis_built_again(
    cache_home: Path, chicago_copy: City, damage: str
) -> None:
    built = CityGIS(chicago_copy)
    entry = cache.entry_path(chicago_copy)
    good = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\x80\x05not a pickle at all")
    else:
        entry.write_bytes(b"\x80\x04K\x01.")  # pickle of the integer 1
    assert cache.load_prepared(chicago_copy) is None
    assert not entry.exists()
    rebuilt = CityGIS(chicago_copy)
    assert entry.read_bytes() == good
    name = chicago_copy.config.zones[0].name
    assert list(rebuilt.zones[name].codes) == list(built.zones[name].codes)


def test_only_the_most_recently_used_entries_are_kept(
    cache_home: Path, chicago_copy: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "KEEP_ENTRIES", 2)
    older, old = (
        City(chicago_copy.folder, chicago_copy.config.model_copy(update={"metric_crs": crs}))
        for crs in ("EPSG:26916", "EPSG:32616")
    )
    for when, city in enumerate((older, old), start=1):
        cache.save_prepared(city, {"marker": when})
        os.utime(cache.entry_path(city), (when, when))
    assert cache.load_prepared(older) == {"marker": 1}  # used now: the most recent
    CityGIS(chicago_copy)  # a third entry: the least recently used one goes
    assert sorted(p.name for p in cache_home.glob("*.pickle")) == sorted(
        [cache.entry_path(older).name, cache.entry_path(chicago_copy).name]
    )


def test_an_unwritable_cache_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chicago_copy: City
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    gis = CityGIS(chicago_copy)
    assert gis.zones
    assert cache.load_prepared(chicago_copy) is None
