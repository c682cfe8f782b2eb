"""Lines cut into straight edges, for nearest-line queries done with NumPy arithmetic.

GEOS answers "which line is nearest to this point" with a best-first tree walk per point
(``STRtree.query_nearest``), measured at about 10 µs per point on the Paris network. Most
reports lie a few metres from a street, so ``Edges`` asks the tree only for the edges
whose box meets a small box around each point (a pure box test, in C) and measures the
exact point-to-edge distances itself, vectorized; the nearest edge also gives, at no
extra cost, the position along its line, the projected point and the side. Points with
no edge within the radius are left to the caller's exact fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely


@dataclass(frozen=True)
class Located:
    """Point-to-edge measures of (point, edge) pairs, one value per pair."""

    point: np.ndarray
    edge: np.ndarray
    distance: np.ndarray
    fraction: np.ndarray
    """where the nearest point of the edge lies, from its start (0) to its end (1)"""


class Edges:
    """The straight edges of an array of lines, with an STRtree over the edges."""

    def __init__(self, lines: np.ndarray) -> None:
        coords, line = shapely.get_coordinates(lines, return_index=True)
        inner = np.flatnonzero(line[1:] == line[:-1])
        self.ax, self.ay = coords[inner, 0], coords[inner, 1]
        self.bx, self.by = coords[inner + 1, 0], coords[inner + 1, 1]
        self.line = line[inner]
        """index of the line each edge belongs to (edges are in line order, then along it)"""
        self.length = np.hypot(self.bx - self.ax, self.by - self.ay)
        # Distance along its line of each edge's start: cumulative length within the line.
        cumulative = np.cumsum(self.length) - self.length
        self.first = np.searchsorted(self.line, np.arange(len(lines) + 1))
        """edges of line ``i`` are ``first[i]:first[i + 1]``"""
        starts = self.first[:-1]
        has_edges = starts < len(self.line)
        line_start = np.zeros(len(lines))
        line_start[has_edges] = cumulative[starts[has_edges]]
        self.start_m = cumulative - line_start[self.line]
        self.line_length = shapely.length(lines)
        self.tree = shapely.STRtree(
            shapely.linestrings(
                np.stack([np.column_stack([self.ax, self.ay]),
                          np.column_stack([self.bx, self.by])], axis=1)
            )
        )

    def near(self, x: np.ndarray, y: np.ndarray, radius: float) -> Located:
        """Every (point, edge) pair whose edge box meets the point's box of half-size
        ``radius`` (a superset of the edges within ``radius``), measured; sorted by point."""
        boxes = shapely.box(x - radius, y - radius, x + radius, y + radius)
        point, edge = self.tree.query(boxes)
        return self.locate(x, y, point, edge)

    def of_lines(self, point: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (point, edge) pairs of the given (point, line) pairs."""
        count = self.first[line + 1] - self.first[line]
        pair = np.repeat(np.arange(len(point)), count)
        offset = np.arange(len(pair)) - np.repeat(np.cumsum(count) - count, count)
        return point[pair], self.first[line][pair] + offset

    def locate(self, x: np.ndarray, y: np.ndarray, point: np.ndarray, edge: np.ndarray
               ) -> Located:
        """Distance from each point to each edge of the pairs, and where it is nearest."""
        dx, dy = self.bx[edge] - self.ax[edge], self.by[edge] - self.ay[edge]
        px, py = x[point] - self.ax[edge], y[point] - self.ay[edge]
        squared = dx * dx + dy * dy
        fraction = np.clip(
            (px * dx + py * dy) / np.where(squared > 0, squared, 1.0), 0.0, 1.0
        )
        distance = np.hypot(px - fraction * dx, py - fraction * dy)
        return Located(point, edge, distance, fraction)

    def position_m(self, edge: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Distance along the line of a point ``fraction`` of the way along ``edge``
        (never beyond the line's length, whatever the rounding of the sum)."""
        position: np.ndarray = np.minimum(
            self.start_m[edge] + fraction * self.length[edge], self.line_length[self.line[edge]]
        )
        return position

    def point_at(self, edge: np.ndarray, fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the point ``fraction`` of the way along ``edge``."""
        return (self.ax[edge] + fraction * (self.bx[edge] - self.ax[edge]),
                self.ay[edge] + fraction * (self.by[edge] - self.ay[edge]))

    def side(self, edge: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``left``/``right`` of each point from its edge's direction, ``None`` on the line."""
        cross = ((self.bx[edge] - self.ax[edge]) * (y - self.ay[edge])
                 - (self.by[edge] - self.ay[edge]) * (x - self.ax[edge]))
        side = np.full(len(edge), None, dtype=object)
        side[cross > 0] = "left"
        side[cross < 0] = "right"
        return side


def nearest_per_point(located: Located, keep: np.ndarray | None = None) -> Located:
    """Per distinct point, its nearest pair (ties: the lowest edge, so the lowest line).

    Pairs must be sorted by point; ``keep`` optionally restricts the pairs considered.
    """
    if keep is not None:
        located = Located(located.point[keep], located.edge[keep], located.distance[keep],
                          located.fraction[keep])
    point, distance = located.point, located.distance
    if not len(point):
        return located
    starts = np.flatnonzero(np.concatenate(([True], point[1:] != point[:-1])))
    nearest = np.minimum.reduceat(distance, starts)
    counts = np.diff(np.append(starts, len(point)))
    tied = distance == np.repeat(nearest, counts)
    best_edge = np.minimum.reduceat(
        np.where(tied, located.edge, np.iinfo(np.intp).max), starts
    )
    # The row of each point's chosen edge (the first tied row holding that edge).
    chosen = tied & (located.edge == np.repeat(best_edge, counts))
    rows = np.flatnonzero(chosen)
    rows = rows[np.concatenate(([True], point[rows][1:] != point[rows][:-1]))]
    return Located(point[rows], located.edge[rows], distance[rows], located.fraction[rows])
