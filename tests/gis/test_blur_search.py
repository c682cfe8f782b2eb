"""``Blur.search_box``: the box a read filtering on public points must read (issue 17 item 5).

On the 2,000 real DansMaRue reports of the shared sample, every point taken as a blurred
incident: for tiles of zoom 12 to 17 around them, each point whose public point lies in
the tile must have its exact point in the tile's search box (else a tile would miss it),
for both methods. The box must also stay small at street zooms (the longest segments of
Paris are kilometres long: a box grown by their half-length would read half the city).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import morecantile
import numpy as np
import pandas as pd
import pytest
import yaml

from voirie.city import load_city
from voirie.gis.blur import Blur
from voirie.gis.enrich import CityGIS

PARIS = Path(__file__).parents[2] / "cities" / "paris"
REPORTS = PARIS / "reports" / "dansmarue_2023-07_2024-03.csv.gz"
"""The bundled DansMaRue history: 2,000 of its real points, spread over its months."""


def _blur(folder: Path, method: str, gis: CityGIS) -> tuple[Blur, str]:
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports"))
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    code = sorted(load_city(PARIS).services)[0]
    config["privacy"] = {"blur": {"services": [code], "method": method, "grid_m": 50}}
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return Blur(load_city(folder), gis), code


@pytest.mark.parametrize("method", ["grid", "street_middle"])
def test_the_search_box_holds_every_point_shown_in_the_box(
    tmp_path: Path, paris_gis: CityGIS, method: str
) -> None:
    rows = pd.read_csv(REPORTS, usecols=["longitude", "latitude"]).iloc[::11].head(2000)
    lon = rows["longitude"].astype(float).to_numpy()
    lat = rows["latitude"].astype(float).to_numpy()
    blur, code = _blur(tmp_path / method, method, paris_gis)
    codes = np.full(len(lon), code, dtype=object)
    plon, plat = blur.public(codes, lon, lat)
    moved = np.hypot(plon - lon, plat - lat)
    assert (moved > 0).mean() > 0.9  # the points did move
    tms = morecantile.tms.get("WebMercatorQuad")
    checked = 0
    widths = []
    for i in range(0, len(lon), 40):
        for zoom in (12, 14, 16, 17):
            left, bottom, right, top = tms.bounds(tms.tile(plon[i], plat[i], zoom))
            shown = (plon >= left) & (plon <= right) & (plat >= bottom) & (plat <= top)
            w, s, e, n = blur.search_box((left, bottom, right, top))
            inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
            assert inside[shown].all(), (zoom, i, np.flatnonzero(shown & ~inside)[:5])
            checked += int(shown.sum())
            if zoom == 17:
                widths.append((e - w) / (right - left))
    assert checked > 1000
    # At street zoom the box stays a few tiles wide, not the longest segment's reach.
    assert float(np.median(widths)) < 6, np.median(widths)
