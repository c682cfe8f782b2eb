"""The order of a round's stops: nearest neighbour, then 2-opt, over metric coordinates.

A round visits a few dozen incidents; the exact shortest tour is not needed, a sensible
one is: start at the depot (or, without one, at the westmost stop), go each time to the
nearest stop not yet visited, then improve with 2-opt (reverse a stretch of the tour
while that shortens it) until no reversal helps. The tour is open: it ends at its last
stop, the crew does not come back. Distances are straight lines in the city's metric CRS
(metres); the street network would change some legs, not the order's sense.
"""

from __future__ import annotations

import numpy as np

MAX_2OPT_ROUNDS = 50
"""A bound on the improvement passes (each is O(n²)); 2-opt converges well before it."""


def tour_length(points: np.ndarray, order: np.ndarray, start: np.ndarray | None = None) -> float:
    """Length in metres of the open tour visiting ``points`` (n×2, metres) in ``order``,
    from ``start`` when given."""
    path = points[order]
    if start is not None:
        path = np.vstack([start, path])
    return float(np.hypot(*np.diff(path, axis=0).T).sum())


def order_stops(points: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``points`` (n×2, metric coordinates) in a short open tour from ``start``
    (a depot, x/y in metres) or, without one, from the westmost point."""
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    here = start if start is not None else points[int(np.argmin(points[:, 0]))]
    left = np.ones(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for step in range(n):
        distance = np.where(left, np.hypot(*(points - here).T), np.inf)
        chosen = int(np.argmin(distance))
        order[step], left[chosen], here = chosen, False, points[chosen]
    return _two_opt(points, order, start)


def _two_opt(points: np.ndarray, order: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """``order`` improved by reversing stretches while that shortens the tour. The tour's
    first point (the depot, or the westmost stop) stays first."""
    fixed = start is not None
    route, index = points[order], order.copy()
    if start is not None:
        route, index = np.vstack([start, route]), np.concatenate([[-1], index])
    m = len(route)
    for _ in range(MAX_2OPT_ROUNDS):
        improved = False
        for i in range(1, m - 1):
            # Reversing route[i..j]: legs (i-1, i) and (j, j+1) become (i-1, j) and (i, j+1);
            # with j the last stop, the tour is open and only the first leg changes.
            a, b = route[i - 1], route[i]
            j = np.arange(i + 1, m)
            c, after = route[j], np.vstack([route[j[:-1] + 1], [np.nan, np.nan]])
            before_len = np.hypot(*(a - b)) + np.nan_to_num(np.hypot(*(c - after).T))
            after_len = np.hypot(*(a - c).T) + np.nan_to_num(np.hypot(*(b - after).T))
            gain = before_len - after_len
            best = int(np.argmax(gain))
            if gain[best] > 1e-6:
                k = int(j[best])
                route[i : k + 1] = route[i : k + 1][::-1].copy()
                index[i : k + 1] = index[i : k + 1][::-1].copy()
                improved = True
        if not improved:
            break
    return index[1:] if fixed else index
