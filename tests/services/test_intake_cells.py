"""The per-report path's lock cells: two reports that may be one incident share a key.

``Intake`` holds a report's service family in shared mode and, exclusively, the cells of
the family's grid near the report (``cell_keys``) and its external ids. Two reports of one
family whose decisions may depend on each other lie at most twice the family's reach
apart; they must share a cell, wherever the grid's lines fall between them.
"""

from __future__ import annotations

import itertools

import numpy as np

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.intake import CELL_MARGIN_M, cell_keys
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store

SIDE = 122.0


def _share(a: tuple[float, float], b: tuple[float, float], side: float = SIDE) -> bool:
    return bool(set(cell_keys("f", side, *a)) & set(cell_keys("f", side, *b)))


def test_points_less_than_a_side_apart_share_a_cell() -> None:
    # Around grid lines and corners (exact multiples of the side, and either side of
    # them by less than a millimetre), then anywhere.
    rng = np.random.default_rng(7)
    lines = [k * SIDE + d for k in (-3, 0, 1, 17) for d in (0.0, -1e-4, 1e-4, SIDE / 2)]
    points = list(itertools.product(lines, lines))
    points += [tuple(p) for p in rng.uniform(-5_000, 5_000, (300, 2))]
    reach = (SIDE - CELL_MARGIN_M) / 2  # the reach a family of this side has
    for x, y in points:
        for angle in np.linspace(0, 2 * np.pi, 24, endpoint=False):
            for dist in (0.0, 1.0, reach, 2 * reach):
                other = (x + dist * np.cos(angle), y + dist * np.sin(angle))
                assert _share((x, y), other), ((x, y), other)
    # At most four cells per report.
    assert max(len(cell_keys("f", SIDE, x, y)) for x, y in points) <= 4


def test_points_two_sides_apart_share_none() -> None:
    # The grid lets reports far apart write at once (the family alone would serialize
    # them).
    assert not _share((0.0, 0.0), (2 * SIDE, 0.0))
    assert not _share((10.0, 10.0), (10.0, -2 * SIDE))
    assert cell_keys("a", SIDE, 0.0, 0.0) != cell_keys("b", SIDE, 0.0, 0.0)


def test_a_family_cell_covers_twice_its_longest_reach(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    # Every service of a family reaches at most half a cell (minus the margin).
    intake = Pipeline(paris, store, paris_gis).intake
    policy = intake.policy
    for code, rule in policy.rules.items():
        (family,) = policy.lock_keys([code])
        reach = max(rule.radius_m, policy.reach_m(rule.radius_m, rule.street_radius_m))
        assert intake._cell_side(family) >= 2 * reach + CELL_MARGIN_M
