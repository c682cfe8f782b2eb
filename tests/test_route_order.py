"""The order of a round's stops (``voirie.services.route_order``): a permutation, from the
depot or the westmost stop, never longer than nearest neighbour alone, close to the best
tour where the best can be found by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from voirie.services.route_order import order_stops, tour_length


def _nearest_neighbour(points: np.ndarray, start: np.ndarray) -> np.ndarray:
    left, here, order = list(range(len(points))), start, []
    while left:
        chosen = min(left, key=lambda i: float(np.hypot(*(points[i] - here))))
        order.append(chosen)
        left.remove(chosen)
        here = points[chosen]
    return np.array(order)


@pytest.mark.parametrize("seed", range(6))
def test_order_is_a_short_permutation_from_the_westmost_stop(seed: int) -> None:
    points = np.random.default_rng(seed).uniform(0, 5_000, (8, 2))
    order = order_stops(points)
    assert sorted(order.tolist()) == list(range(8))
    west = int(np.argmin(points[:, 0]))
    assert order[0] == west
    nn = _nearest_neighbour(points, points[west])
    assert tour_length(points, order) <= tour_length(points, nn) + 1e-6
    others = [i for i in range(8) if i != west]
    best = min(tour_length(points, np.array([west, *p])) for p in itertools.permutations(others))
    assert tour_length(points, order) <= 1.1 * best


def test_a_depot_starts_the_tour_and_counts_in_its_length() -> None:
    # Five stops on a line, the depot at its east end: the tour runs east to west.
    points = np.array([[0.0, 0.0], [400.0, 0.0], [100.0, 0.0], [300.0, 0.0], [200.0, 0.0]])
    depot = np.array([500.0, 0.0])
    order = order_stops(points, depot)
    assert order.tolist() == [1, 3, 4, 2, 0]
    assert tour_length(points, order, depot) == pytest.approx(500.0)
    assert order_stops(np.zeros((0, 2))).tolist() == []


def test_two_opt_shortens_what_nearest_neighbour_leaves() -> None:
    rng = np.random.default_rng(16)
    gains = []
    for _ in range(30):
        points = rng.uniform(0, 5_000, (25, 2))
        nn = _nearest_neighbour(points, points[int(np.argmin(points[:, 0]))])
        gains.append(tour_length(points, nn) - tour_length(points, order_stops(points)))
    assert min(gains) >= -1e-6
    assert sum(g > 1 for g in gains) >= 10
