"""An on-disk cache of a city's prepared GIS: the layers read, cleaned and indexed once.

Reading the street and zone files, repairing their geometry and building the snapping and
zone grids costs seconds at every start (``voirie import``, ``voirie serve``, each test
session); the result depends only on the layer files, the keys of city.yaml that describe
them, the code that builds it and the libraries it runs on. Those are hashed into the
cache key (``prepared_key``), so a changed layer, city.yaml key, voirie module or library
version misses the cache and the GIS is built again: a stale entry is never read.

An entry is a pickle of the built object's attributes, written with reducers that make
it fast to load: arrays of geometries as their coordinates and offsets when they share
one type (``shapely.from_ragged_array``), else as one WKB array (``shapely.from_wkb``),
rebuilt in one vectorized call and prepared again where they were; geopandas' geometry
columns as those arrays (not geopandas' own WKB, decoded a second time for the streets);
spatial trees as their geometries (the ``STRtree`` is rebuilt from them). An entry that
cannot be read (truncated, corrupt, written by another version) is removed and the GIS
built again. Entries are written to a temporary file and renamed, so readers never see
half an entry, and only the most recently used ``KEEP_ENTRIES`` are kept.

The folder is ``$XDG_CACHE_HOME/voirie/gis`` (``~/.cache/voirie/gis`` by default); the
entries are pickles, so the folder is created private to its user (mode 0700).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import platform
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from geopandas.array import GeometryArray

from voirie.city import City

KEEP_ENTRIES = 8
"""Entries kept in the folder (the most recently used): a few cities and their variants
(about 110 MB each for Paris)."""
_FORMAT = 2
"""Version of the entry layout; bumped when ``_Pickler``'s reducers change."""
_LIBRARIES = ("numpy", "pandas", "shapely", "geopandas", "pyproj", "pyogrio", "osmium")
_CONFIG_KEYS = {"metric_crs", "locale", "streets", "addresses", "zones"}
"""The keys of city.yaml that the prepared GIS depends on (not routing, teams...)."""


def cache_dir() -> Path:
    """The folder of cache entries: ``$XDG_CACHE_HOME/voirie/gis`` (read at each call)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voirie" / "gis"


@functools.cache
def _code_digest() -> str:
    """A digest of the source of the modules that read and index the layers, as this
    process imported them (once: the code a process runs does not change under it)."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in [*sorted(here.glob("*.py")), Path(str(sys.modules[City.__module__].__file__))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _versions() -> str:
    """Python, GEOS and the versions of the libraries the built objects come from."""
    parts = [platform.python_version(), shapely.geos_version_string, f"format {_FORMAT}"]
    for name in _LIBRARIES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} absent")
    return "; ".join(parts)


def _layer_paths(city: City) -> list[Path]:
    config = city.config
    relative = [config.streets.path] if config.streets else []
    relative += [config.addresses.path] if config.addresses else []
    relative += [zone.path for zone in config.zones]
    return [city.path(rel) for rel in relative]


def prepared_key(city: City) -> str:
    """The cache key of a city's prepared GIS: a digest of its layer files' contents, of
    the city.yaml keys describing them, of voirie's GIS code and of the library versions."""
    digest = hashlib.sha256()
    digest.update(city.config.model_dump_json(include=_CONFIG_KEYS).encode())
    digest.update(_code_digest().encode() + _versions().encode())
    for path in _layer_paths(city):
        with path.open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()[:32]


def entry_path(city: City, directory: Path | None = None) -> Path:
    """Where the prepared GIS of ``city`` (as it is now) is or would be cached."""
    return (directory or cache_dir()) / f"{city.jurisdiction_id}-{prepared_key(city)}.pickle"


def load_prepared(city: City, directory: Path | None = None) -> dict[str, Any] | None:
    """The cached attributes of ``city``'s prepared GIS, or ``None`` when there is no
    entry for it as it is now, or the entry cannot be read (it is then removed)."""
    path = entry_path(city, directory)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        # Our own entry, in a folder private to its user (mode 0700).
        state = pickle.loads(data)
    except Exception:  # a truncated or foreign entry: rebuilt, whatever the unpickler raised
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict):
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # most recently used: kept by the pruning
    return state


def save_prepared(city: City, state: Mapping[str, Any], directory: Path | None = None) -> None:
    """Write the attributes of ``city``'s prepared GIS (``city`` itself left out: the loader
    sets the one it was given), then keep only the ``KEEP_ENTRIES`` most recent entries.
    A cache that cannot be written (read-only home, full disk) is not an error."""
    path = entry_path(city, directory)
    buffer = io.BytesIO()
    _Pickler(buffer).dump({k: v for k, v in state.items() if k != "city"})
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(buffer.getbuffer())
        os.replace(tmp.name, path)
        _prune(path.parent)
    except OSError:
        return


def _prune(directory: Path) -> None:
    """Remove all but the ``KEEP_ENTRIES`` most recently used entries."""
    entries = sorted(directory.glob("*.pickle"), key=_mtime, reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def _geometries(wkb: np.ndarray, prepared: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Geometries from WKB (``None`` stays ``None``), prepared again where they were."""
    out = shapely.from_wkb(wkb)
    shapely.prepare(out[prepared])  # the same geometry objects: prepared in place
    reshaped: np.ndarray = out.reshape(shape)
    return reshaped


def _geometries_ragged(
    ragged: tuple[Any, ...], prepared: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Geometries of one type from their coordinates and offsets (faster than WKB),
    prepared again where they were."""
    out = shapely.from_ragged_array(*ragged)
    shapely.prepare(out[prepared])
    reshaped: np.ndarray = out.reshape(shape)
    return reshaped


def _tree(geometries: np.ndarray) -> shapely.STRtree:
    """A spatial tree built again over its geometries (voirie builds every tree with the
    default node capacity, which shapely's own pickling also assumes)."""
    return shapely.STRtree(geometries)


class _Pickler(pickle.Pickler):
    """A pickler that writes arrays of geometries as WKB and trees as their geometries."""

    def reducer_override(self, obj: object) -> Any:
        """The reduction of geometry arrays and trees; others pickle as usual."""
        if isinstance(obj, shapely.STRtree):
            return _tree, (obj.geometries,)
        if isinstance(obj, GeometryArray):
            # geopandas pickles its arrays as WKB; as their array of geometries instead,
            # the one a frame shares with the GIS's own arrays (the streets') is written
            # and rebuilt once, and the loaded object shares it as the built one did.
            return GeometryArray, (np.asarray(obj), obj.crs)
        if isinstance(obj, np.ndarray) and obj.dtype == object and obj.size:
            flat = obj.ravel()
            geometry = shapely.is_geometry(flat)
            if geometry.all() and len(np.unique(shapely.get_type_id(flat))) == 1:
                ragged = shapely.to_ragged_array(flat)
                return _geometries_ragged, (ragged, shapely.is_prepared(flat), obj.shape)
            if geometry.any() and (geometry | np.array([g is None for g in flat])).all():
                prepared = shapely.is_prepared(flat)
                return _geometries, (shapely.to_wkb(flat), prepared, obj.shape)
        return NotImplemented
