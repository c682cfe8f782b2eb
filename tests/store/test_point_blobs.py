"""``gpkg.point_blobs`` (a bulk insert's geometries, laid out by numpy) gives each point
the bytes ``point_blob`` gives it, and that GDAL's reader takes back: the header, then
the little-endian WKB with the coordinates bit for bit (NaN payloads, -0.0, infinities,
subnormals included)."""

from __future__ import annotations

import numpy as np
import shapely

from voirie.store import gpkg

ODD = np.frombuffer(
    bytes.fromhex("000000000000f8ff010000000000f07f00000000000000800100000000000000"),
    "<f8",
)
"""-NaN, a NaN with a payload, -0.0 and the smallest subnormal."""


def test_point_blobs_are_point_blob_of_each_point() -> None:
    rng = np.random.default_rng(14)
    lon = np.concatenate([rng.uniform(2.22, 2.47, 200), ODD, [np.inf, np.nan, 0.0]])
    lat = np.concatenate([rng.uniform(48.81, 48.91, 200), [48.85] * 4, [-np.inf, 1, np.nan]])
    blobs = gpkg.point_blobs(lon, lat)
    assert all(type(blob) is bytes for blob in blobs)
    assert blobs == [gpkg.point_blob(x, y) for x, y in zip(lon, lat, strict=True)]
    lambert = gpkg.point_blobs(lon[:1], lat[:1], srs_id=2154)
    assert lambert == [gpkg.point_blob(lon[0], lat[0], 2154)]


def test_point_blobs_read_back_as_their_points() -> None:
    lon, lat = np.array([2.3522219, -0.0]), np.array([48.856614, 0.5])
    points = [shapely.from_wkb(blob[8:]) for blob in gpkg.point_blobs(lon, lat)]
    assert [(p.x, p.y) for p in points] == list(zip(lon, lat, strict=True))
    assert gpkg.point_blobs(np.zeros(0), np.zeros(0)) == []
