"""Lines cut into straight edges, for nearest-line queries done with NumPy arithmetic.

GEOS answers "which line is nearest to this point" with a best-first tree walk per point
(``STRtree.query_nearest``), measured at about 10 µs per point on the Paris network. Most
reports lie a few metres from a street, so ``Edges`` asks a tree over the lines only for
those whose box meets a small box around each point (a pure box test, in C), keeps their
edges whose own box meets it, and measures the exact point-to-edge distances itself,
vectorized; the nearest edge also gives, at no extra cost, the position along its line,
the projected point and the side. Points with no edge within the radius are left to the
caller's exact fallback. ``EdgeGrid`` answers
the same question for the commonest radius without the tree: per cell of a lattice, the
few edges that can be nearest to a point of the cell.

Zone boundaries are cut the same way: ``ZoneGrid`` keeps, per cell of a grid over each
zone, the few boundary edges that can be nearest to a point of the cell, so the distance
from a point to its zone's edge measures those instead of every vertex of the zone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import shapely

# Side of the cells of the zone grids (see ``ZoneGrid``), in metres, unless the polygons'
# boxes would need more than _ZONE_MAX_CELLS cells (larger cells then).
_ZONE_CELL_M = 25.0
_ZONE_MAX_CELLS = 4_000_000
# ``ZoneGrid.owner_of`` for a point whose polygon the grid does not settle.
UNSETTLED = -2
# (cell, candidate edge) pairs split at once when building a ZoneGrid (bounds its memory).
_BUILD_PAIRS = 1 << 17
# Points measured at once: bounds the memory of their (point, candidate edge) pairs.
_POINT_BLOCK = 1 << 16
# Margin for floating-point rounding (metres) in the candidate bound: it only adds edges.
_ZONE_SLACK_M = 1e-3
# Side of the cells of the street edges' grid (see ``EdgeGrid``), in metres.
_EDGE_CELL_M = 20.0


class Nearest(NamedTuple):
    """One point's nearest edge: the edge, its distance and where along it (``Located``'s
    fields for one point)."""

    edge: int
    distance: float
    fraction: float


@dataclass(frozen=True)
class Located:
    """Point-to-edge measures of (point, edge) pairs, one value per pair."""

    point: np.ndarray
    edge: np.ndarray
    distance: np.ndarray
    fraction: np.ndarray
    """where the nearest point of the edge lies, from its start (0) to its end (1)"""


class Edges:
    """The straight edges of an array of lines, found near a point through an STRtree over
    the lines."""

    def __init__(
        self,
        lines: np.ndarray,
        grid_radius_m: float | None = None,
        line_tree: shapely.STRtree | None = None,
    ) -> None:
        """With ``grid_radius_m``, an ``EdgeGrid`` also serves ``nearest_within`` for radii
        up to it (built once: about a second and 30 MB for the Paris network).
        ``line_tree``: the caller's STRtree over ``lines``, if it has one (else built)."""
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
        # A tree over the lines, not one geometry per edge: a line's box holds its edges'
        # boxes, so the edges whose box meets a box are among its lines' edges. 5x fewer
        # geometries to build (and, for a GIS loaded from its cache, to rebuild at each
        # start: 264k edges, 55k lines for Paris).
        self.line_tree = shapely.STRtree(lines) if line_tree is None else line_tree
        self.grid = EdgeGrid(self, grid_radius_m) if grid_radius_m is not None else None

    def nearest_within(self, x: np.ndarray, y: np.ndarray, radius: float) -> Located:
        """The nearest edge of each point that has one within ``radius`` (ties: the
        lowest edge), sorted by point; from the grid when it covers the radius."""
        if self.grid is not None and radius <= self.grid.radius:
            return self.grid.nearest_within(x, y, radius)
        near = self.near(x, y, radius)
        return nearest_per_point(near, near.distance <= radius)

    def near(self, x: np.ndarray, y: np.ndarray, radius: float) -> Located:
        """Every (point, edge) pair whose edge box meets the point's box of half-size
        ``radius`` (a superset of the edges within ``radius``), measured; sorted by point."""
        return self.locate(x, y, *self.pairs_near(x, y, radius))

    def pairs_near(
        self, x: np.ndarray, y: np.ndarray, radius: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``near``'s (point, edge) pairs, not measured, sorted by point: the edges of the
        lines whose box meets the point's box, kept where their own box meets it (as an
        STRtree over the edges would answer: boxes that touch meet)."""
        boxes = shapely.box(x - radius, y - radius, x + radius, y + radius)
        point, line = self.line_tree.query(boxes)
        point, edge = self.of_lines(point, line)
        px, py = x[point], y[point]
        ax, ay, bx, by = self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
        meets = (np.minimum(ax, bx) <= px + radius) & (np.maximum(ax, bx) >= px - radius)
        meets &= (np.minimum(ay, by) <= py + radius) & (np.maximum(ay, by) >= py - radius)
        return point[meets], edge[meets]

    def edges_near_one(self, x: float, y: float, radius: float) -> np.ndarray:
        """``pairs_near``'s edges of one point."""
        return self.pairs_near(np.array([x]), np.array([y]), radius)[1]

    def of_lines(self, point: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (point, edge) pairs of the given (point, line) pairs."""
        pair, edge = _ranges(self.first[line], self.first[line + 1] - self.first[line])
        return point[pair], edge

    def locate(self, x: np.ndarray, y: np.ndarray, point: np.ndarray, edge: np.ndarray) -> Located:
        """Distance from each point to each edge of the pairs, and where it is nearest."""
        distance, fraction = segment_distance(
            x[point], y[point], self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
        )
        return Located(point, edge, distance, fraction)

    def nearest_one(self, x: float, y: float, radius: float) -> Nearest | None:
        """``nearest_within`` of one point: its nearest edge within ``radius`` (ties: the
        lowest edge), from the point's cell of the grid when it covers the radius, else
        among the edges whose box meets the point's box. The per-report path: a handful
        of candidates measured without building arrays of points."""
        if self.grid is not None and radius <= self.grid.radius:
            candidates = self.grid.cell_edges(x, y)
        else:
            candidates = self.edges_near_one(x, y, radius)
        return self.nearest_of(x, y, candidates, radius)

    def nearest_of(
        self, x: float, y: float, edge: np.ndarray, radius: float | None = None
    ) -> Nearest | None:
        """The nearest of these edges (distinct) to one point, within ``radius`` when
        given; ties go to the lowest edge, as ``nearest_per_point`` breaks them."""
        if not len(edge):
            return None
        distance, fraction = segment_distance(
            x, y, self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
        )
        if radius is not None:
            keep = np.flatnonzero(distance <= radius)
            if not len(keep):
                return None
            edge, distance, fraction = edge[keep], distance[keep], fraction[keep]
        tied = np.flatnonzero(distance == distance.min())
        best = tied[np.argmin(edge[tied])]
        return Nearest(int(edge[best]), float(distance[best]), float(fraction[best]))

    def position_m(self, edge: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Distance along the line of a point ``fraction`` of the way along ``edge``
        (never beyond the line's length, whatever the rounding of the sum)."""
        position: np.ndarray = self._position(edge, fraction)
        return position

    def position_one(self, edge: int, fraction: float) -> float:
        """``position_m`` of one point."""
        return float(self._position(edge, fraction))

    def _position(self, edge: Any, fraction: Any) -> Any:
        # One formula for arrays and for one point: the same floating-point result.
        return np.minimum(
            self.start_m[edge] + fraction * self.length[edge], self.line_length[self.line[edge]]
        )

    def point_at(self, edge: np.ndarray, fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the point ``fraction`` of the way along ``edge``."""
        x: np.ndarray = self._along(self.ax, self.bx, edge, fraction)
        y: np.ndarray = self._along(self.ay, self.by, edge, fraction)
        return x, y

    def point_one(self, edge: int, fraction: float) -> tuple[float, float]:
        """``point_at`` of one point."""
        return (
            float(self._along(self.ax, self.bx, edge, fraction)),
            float(self._along(self.ay, self.by, edge, fraction)),
        )

    @staticmethod
    def _along(a: np.ndarray, b: np.ndarray, edge: Any, fraction: Any) -> Any:
        return a[edge] + fraction * (b[edge] - a[edge])

    def side(self, edge: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``left``/``right`` of each point from its edge's direction, ``None`` on the line."""
        cross = self._cross(edge, x, y)
        side = np.full(len(edge), None, dtype=object)
        side[cross > 0] = "left"
        side[cross < 0] = "right"
        return side

    def side_one(self, edge: int, x: float, y: float) -> str | None:
        """``side`` of one point."""
        cross = self._cross(edge, x, y)
        return "left" if cross > 0 else "right" if cross < 0 else None

    def _cross(self, edge: Any, x: Any, y: Any) -> Any:
        """Cross product of each edge's direction and the vector from its start to the
        point (one formula for arrays and for one point: the same floating-point result)."""
        return (self.bx[edge] - self.ax[edge]) * (y - self.ay[edge]) - (
            self.by[edge] - self.ay[edge]
        ) * (x - self.ax[edge])


class EdgeGrid:
    """Per cell of a square lattice, the edges that can be the nearest edge of a point of
    the cell when that edge lies within ``radius`` of the point.

    The STRtree answers "which edges are near this point" with a box built and a tree
    walked per point; here a point finds its cell by arithmetic and measures the cell's
    few edges. With ``o`` the cell's centre and ``r`` its half-diagonal, the nearest edge
    ``e`` of a point ``p`` of the cell satisfies ``d(o, e) <= d(p, e) + r <= d(o) + 2r``
    (as in ``ZoneGrid``), and ``d(o, e) <= radius + r`` when ``d(p, e) <= radius``: a cell
    keeps the edges within both bounds (every edge tied at the nearest distance among
    them), found among the edges whose box, widened by ``radius``, meets the cell. So the
    nearest edge within the radius, ties included, is the tree's.
    """

    def __init__(self, edges: Edges, radius: float, cell_m: float = _EDGE_CELL_M) -> None:
        self.edges = edges
        self.radius = radius
        self.cell = cell_m
        self.reach = cell_m * np.sqrt(0.5) + _ZONE_SLACK_M
        # Cells met by each edge's box widened by the radius: columns ix0..ix1, rows
        # iy0..iy1.
        ix0 = ((np.minimum(edges.ax, edges.bx) - radius) // cell_m).astype(np.intp)
        iy0 = ((np.minimum(edges.ay, edges.by) - radius) // cell_m).astype(np.intp)
        ix1 = ((np.maximum(edges.ax, edges.bx) + radius) // cell_m).astype(np.intp)
        iy1 = ((np.maximum(edges.ay, edges.by) + radius) // cell_m).astype(np.intp)
        self.gx0 = int(ix0.min()) if len(ix0) else 0
        self.gy0 = int(iy0.min()) if len(iy0) else 0
        self.nx = int(ix1.max()) - self.gx0 + 1 if len(ix1) else 0
        self.ny = int(iy1.max()) - self.gy0 + 1 if len(iy1) else 0
        # Two passes over (cell, edge) pairs by blocks of edges (bounded memory): the
        # distance from each cell's centre to its nearest edge, then the edges kept.
        nearest = np.full(self.nx * self.ny, np.inf)
        for key, _, distance in self._pairs(ix0, iy0, ix1, iy1):
            np.minimum.at(nearest, key, distance)
        bound = np.minimum(nearest + 2 * self.reach, radius + self.reach) + _ZONE_SLACK_M
        keys, kept = [np.array([], dtype=np.intp)], [np.array([], dtype=np.intp)]
        for key, edge, distance in self._pairs(ix0, iy0, ix1, iy1):
            keep = distance <= bound[key]
            keys.append(key[keep])
            kept.append(edge[keep])
        key, edge = np.concatenate(keys), np.concatenate(kept)
        order = np.argsort(key, kind="stable")
        self.ptr = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=self.nx * self.ny))))
        """candidate edges of cell ``k`` are ``candidates[ptr[k]:ptr[k + 1]]``"""
        self.candidates = edge[order].astype(np.int32)

    def _pairs(
        self, ix0: np.ndarray, iy0: np.ndarray, ix1: np.ndarray, iy1: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(cell, edge, distance from the cell's centre to the edge) of every cell of the
        span of each edge (its widened box), by blocks of about _BUILD_PAIRS pairs."""
        edges = self.edges
        wide = ix1 - ix0 + 1
        count = wide * (iy1 - iy0 + 1)
        end = np.cumsum(count)
        bounds = np.unique(
            np.concatenate(
                (
                    [0],
                    np.searchsorted(
                        end, np.arange(_BUILD_PAIRS, end[-1] if len(end) else 0, _BUILD_PAIRS)
                    ),
                    [len(count)],
                )
            )
        )
        for a, b in itertools.pairwise(bounds):
            owner, offset = _ranges(np.zeros(b - a, dtype=np.intp), count[a:b])
            edge = a + owner
            ix = ix0[edge] + offset % wide[edge]
            iy = iy0[edge] + offset // wide[edge]
            distance, _ = segment_distance(
                (ix + 0.5) * self.cell,
                (iy + 0.5) * self.cell,
                edges.ax[edge],
                edges.ay[edge],
                edges.bx[edge],
                edges.by[edge],
            )
            yield (iy - self.gy0) * self.nx + (ix - self.gx0), edge, distance

    def cell_edges(self, x: float, y: float) -> np.ndarray:
        """The candidate edges of one point's cell (none beyond the lattice), computed as
        ``nearest_within`` computes the cell of each point."""
        gx, gy = x // self.cell - self.gx0, y // self.cell - self.gy0
        if not (0 <= gx < self.nx and 0 <= gy < self.ny):
            return np.array([], dtype=np.intp)
        key = int(gy * self.nx + gx)
        return self.candidates[self.ptr[key] : self.ptr[key + 1]].astype(np.intp)

    def nearest_within(self, x: np.ndarray, y: np.ndarray, radius: float) -> Located:
        """``Edges.nearest_within`` for a radius up to the grid's."""
        assert radius <= self.radius
        with np.errstate(invalid="ignore"):  # a point that does not project is inf or NaN
            gx, gy = x // self.cell - self.gx0, y // self.cell - self.gy0
        # A point beyond the lattice (or NaN) has no edge within the radius.
        rows = np.flatnonzero((gx >= 0) & (gx < self.nx) & (gy >= 0) & (gy < self.ny))
        key = (gy[rows] * self.nx + gx[rows]).astype(np.intp)
        count = self.ptr[key + 1] - self.ptr[key]
        pair, slot = _ranges(self.ptr[key], count)
        located = self.edges.locate(x, y, rows[pair], self.candidates[slot].astype(np.intp))
        return nearest_per_point(located, located.distance <= radius)


def segment_distance(
    x: np.ndarray | float,
    y: np.ndarray | float,
    ax: np.ndarray,
    ay: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point (x, y) to the segment from (ax, ay) to (bx, by), and the
    fraction of the way along it where the segment's nearest point lies."""
    dx, dy = bx - ax, by - ay
    px, py = x - ax, y - ay
    squared = dx * dx + dy * dy
    fraction = np.clip((px * dx + py * dy) / np.where(squared > 0, squared, 1.0), 0.0, 1.0)
    distance = np.hypot(px - fraction * dx, py - fraction * dy)
    return distance, fraction


def nearest_per_point(located: Located, keep: np.ndarray | None = None) -> Located:
    """Per distinct point, its nearest pair (ties: the lowest edge, so the lowest line).

    Pairs must be sorted by point; ``keep`` optionally restricts the pairs considered.
    """
    if keep is not None:
        located = Located(
            located.point[keep], located.edge[keep], located.distance[keep], located.fraction[keep]
        )
    point, distance = located.point, located.distance
    if not len(point):
        return located
    starts = np.flatnonzero(np.concatenate(([True], point[1:] != point[:-1])))
    nearest = np.minimum.reduceat(distance, starts)
    counts = np.diff(np.append(starts, len(point)))
    tied = distance == np.repeat(nearest, counts)
    best_edge = np.minimum.reduceat(np.where(tied, located.edge, np.iinfo(np.intp).max), starts)
    # The row of each point's chosen edge (the first tied row holding that edge).
    chosen = tied & (located.edge == np.repeat(best_edge, counts))
    rows = np.flatnonzero(chosen)
    rows = rows[np.concatenate(([True], point[rows][1:] != point[rows][:-1]))]
    return Located(point[rows], located.edge[rows], distance[rows], located.fraction[rows])


def _select(
    keep: np.ndarray, count: np.ndarray, items: np.ndarray, *columns: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The rows ``keep`` of ``columns``, their ``count`` and their ``items`` (laid end to
    end, ``count`` per row): ``(*columns, count, items)``, all restricted."""
    return (*(column[keep] for column in columns), count[keep], items[np.repeat(keep, count)])


def _ranges(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer ranges ``start[i]:start[i] + count[i]`` laid end to end: for each value,
    the ``i`` it belongs to and the value itself."""
    owner = np.repeat(np.arange(len(start)), count)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner, start[owner] + offset


class ZoneGrid:
    """Grids over polygons for the distance from a point to the boundary of the polygon it
    lies in (exact), and for that polygon itself without a point-in-polygon test.

    GEOS measures a point-to-boundary distance by visiting every edge of the boundary
    (hundreds for an arrondissement). Here each polygon's box is cut once into square
    cells of one lattice, and a cell keeps only the edges that can be nearest to a point in
    it: with ``o`` the cell's centre, ``r`` its half-diagonal and ``d(o)`` the distance from
    ``o`` to the boundary, the edge ``e`` nearest to a point ``p`` of the cell satisfies
    ``d(o, e) <= d(p, e) + r <= d(p, boundary) + r <= d(o) + 2r``. A point then measures,
    with NumPy, only its cell's few candidate edges. The cells are found by halving a
    square over the box: a child's candidates are among its parent's (the same bound, with
    a parent's ``r`` at least a child's ``r`` plus the distance between their centres). A
    cell with no boundary within ``r`` lies wholly inside or wholly outside its polygon (as
    its centre does): outside, it is dropped; inside, and kept by no other polygon, every
    point in it belongs to that polygon alone.

    The results do not depend on the cell size, only the speed does; a point in a dropped
    cell or farther than ``r`` from its cell's centre (neither happens to a point of the
    polygon) is measured by GEOS.
    """

    def __init__(self, polygons: np.ndarray, cell_m: float = _ZONE_CELL_M) -> None:
        self.boundaries = shapely.boundary(polygons)
        """the polygons' boundaries, for the points measured by GEOS"""
        parts, owner = shapely.get_parts(self.boundaries, return_index=True)
        coords, part = shapely.get_coordinates(parts, return_index=True)
        inner = np.flatnonzero(part[1:] == part[:-1])
        self.ax, self.ay = coords[inner, 0], coords[inner, 1]
        self.bx, self.by = coords[inner + 1, 0], coords[inner + 1, 1]
        first = np.searchsorted(owner[part[inner]], np.arange(len(polygons) + 1))
        count = np.diff(first)
        bounds = np.nan_to_num(shapely.bounds(polygons))
        # Larger cells where the polygons' boxes, or the layer's (the lattice of owners),
        # would need more than the maximum number of cells.
        real = bounds[count > 0]
        area = max(
            float(np.sum((real[:, 2] - real[:, 0]) * (real[:, 3] - real[:, 1]))),
            float(np.ptp(real[:, [0, 2]]) * np.ptp(real[:, [1, 3]])) if len(real) else 0.0,
        )
        self.cell = max(cell_m, float(np.sqrt(area / _ZONE_MAX_CELLS)))
        self.reach = self.cell * np.sqrt(0.5) + _ZONE_SLACK_M
        # Every cell index is ``coordinate // cell``: one lattice for all the polygons.
        self.gx0 = (bounds[:, 0] // self.cell).astype(np.intp)
        self.gy0 = (bounds[:, 1] // self.cell).astype(np.intp)
        self.nx = (bounds[:, 2] // self.cell).astype(np.intp) - self.gx0 + 1
        self.ny = (bounds[:, 3] // self.cell).astype(np.intp) - self.gy0 + 1
        self.cell_start = np.cumsum(self.nx * self.ny) - self.nx * self.ny
        """index of each polygon's first cell (its cells row by row)"""
        # The root cells: one square per polygon with edges, all its edges as candidates.
        polygon = np.flatnonzero(count > 0)
        side = 2 ** np.ceil(np.log2(np.maximum(self.nx, self.ny)[polygon])).astype(np.intp)
        ix = iy = np.zeros(len(polygon), dtype=np.intp)
        interior = np.zeros(len(polygon), dtype=bool)
        edge_count, edge = count[polygon], _ranges(first[polygon], count[polygon])[1]
        done: list[tuple[np.ndarray, ...]] = []
        while True:
            final = side == 1
            done.append(_select(final, edge_count, edge, polygon, ix, iy, interior))
            polygon, ix, iy, side, interior, edge_count, edge = _select(
                ~final, edge_count, edge, polygon, ix, iy, side, interior
            )
            if not len(polygon):
                break
            polygon, ix, iy, side, interior, edge_count, edge = self._split_blocks(
                polygons, polygon, ix, iy, side, edge_count, edge
            )
        polygon, ix, iy, interior, edge_count, edge = (
            np.concatenate(column) for column in zip(*done, strict=True)
        )
        key = self.cell_start[polygon] + iy * self.nx[polygon] + ix
        order = np.argsort(key)
        cells = np.zeros(int(np.sum(self.nx * self.ny)), dtype=np.intp)
        cells[key] = edge_count
        self.ptr = np.concatenate(([0], np.cumsum(cells)))
        """candidate edges of cell ``k`` are ``candidates[ptr[k]:ptr[k + 1]]``"""
        start = np.cumsum(edge_count) - edge_count
        # Edge and polygon numbers fit in 32 bits: half the memory of the lists.
        self.candidates = edge[_ranges(start[order], edge_count[order])[1]].astype(np.int32)
        self._owners(self.gx0[polygon] + ix, self.gy0[polygon] + iy, polygon, interior)

    def _owners(
        self, gx: np.ndarray, gy: np.ndarray, polygon: np.ndarray, interior: np.ndarray
    ) -> None:
        """The lattice of owners: the polygon whose interior holds a cell that no other
        polygon keeps, ``-1`` for a cell no polygon keeps, ``UNSETTLED`` for the others
        (given the kept cells of every polygon, by lattice position, and which lie wholly
        inside their polygon)."""
        self.lx0 = int(gx.min()) if len(gx) else 0
        self.ly0 = int(gy.min()) if len(gy) else 0
        self.lnx = int(gx.max()) - self.lx0 + 1 if len(gx) else 0
        self.lny = int(gy.max()) - self.ly0 + 1 if len(gy) else 0
        key = (gy - self.ly0) * self.lnx + (gx - self.lx0)
        kept = np.bincount(key, minlength=self.lnx * self.lny)
        self.owner = np.where(kept > 0, UNSETTLED, -1).astype(np.int32)
        alone = interior & (kept[key] == 1)
        self.owner[key[alone]] = polygon[alone]

    def _split_blocks(
        self,
        polygons: np.ndarray,
        polygon: np.ndarray,
        ix: np.ndarray,
        iy: np.ndarray,
        side: np.ndarray,
        edge_count: np.ndarray,
        edge: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """``_split`` by blocks of cells with about _BUILD_PAIRS candidates in all, which
        bounds the memory its (child, candidate) pairs take."""
        end = np.cumsum(edge_count)
        bounds = np.unique(
            np.concatenate(
                (
                    [0],
                    np.searchsorted(end, np.arange(_BUILD_PAIRS, end[-1], _BUILD_PAIRS)),
                    [len(polygon)],
                )
            )
        )
        blocks = [
            self._split(
                polygons,
                polygon[a:b],
                ix[a:b],
                iy[a:b],
                side[a:b],
                edge_count[a:b],
                edge[end[a] - edge_count[a] : end[b - 1]],
            )
            for a, b in itertools.pairwise(bounds)
        ]
        return tuple(np.concatenate(column) for column in zip(*blocks, strict=True))

    def _split(
        self,
        polygons: np.ndarray,
        polygon: np.ndarray,
        ix: np.ndarray,
        iy: np.ndarray,
        side: np.ndarray,
        edge_count: np.ndarray,
        edge: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """Cut cells into four. Cells are given by their polygon, position (in units of
        their side from the polygon's first cell) and side (in final cells), with their
        candidate edges laid end to end (``edge_count`` per cell). Returns the children
        kept: polygon, position, side, whether wholly inside, and candidate edges."""
        start = np.cumsum(edge_count) - edge_count
        parent = np.tile(np.arange(len(polygon)), 4)
        quadrant = np.repeat(np.arange(4), len(polygon))
        child_ix = ix[parent] * 2 + quadrant % 2
        child_iy = iy[parent] * 2 + quadrant // 2
        child_side = side[parent] // 2
        child_polygon = polygon[parent]
        # Drop the children wholly beyond the polygon's box.
        inside_box = (child_ix * child_side < self.nx[child_polygon]) & (
            child_iy * child_side < self.ny[child_polygon]
        )
        parent, child_ix, child_iy = parent[inside_box], child_ix[inside_box], child_iy[inside_box]
        child_side, child_polygon = child_side[inside_box], child_polygon[inside_box]
        pair, slot = _ranges(start[parent], edge_count[parent])
        child_edge = edge[slot]
        size = child_side * self.cell
        ox = (self.gx0[child_polygon] + child_ix * child_side) * self.cell + 0.5 * size
        oy = (self.gy0[child_polygon] + child_iy * child_side) * self.cell + 0.5 * size
        reach = size * np.sqrt(0.5) + _ZONE_SLACK_M
        distance, _ = segment_distance(
            ox[pair],
            oy[pair],
            self.ax[child_edge],
            self.ay[child_edge],
            self.bx[child_edge],
            self.by[child_edge],
        )
        nearest = np.minimum.reduceat(distance, np.cumsum(edge_count[parent]) - edge_count[parent])
        # A child with no boundary within reach is wholly inside or wholly outside.
        clear = np.flatnonzero(nearest > reach)
        centre_inside = np.zeros(len(parent), dtype=bool)
        centre_inside[clear] = shapely.intersects_xy(
            polygons[child_polygon[clear]], ox[clear], oy[clear]
        )
        interior = np.zeros(len(parent), dtype=bool)
        interior[clear] = centre_inside[clear]
        kept = np.ones(len(parent), dtype=bool)
        kept[clear] = centre_inside[clear]
        keep = (distance <= nearest[pair] + 2 * (reach[pair] + _ZONE_SLACK_M)) & kept[pair]
        child_count = np.bincount(pair[keep], minlength=len(parent))
        return (
            child_polygon[kept],
            child_ix[kept],
            child_iy[kept],
            child_side[kept],
            interior[kept],
            child_count[kept],
            child_edge[keep],
        )

    def owner_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The polygon each point lies in when its cell settles it: inside one polygon and
        near no other, or ``-1`` away from every polygon. ``UNSETTLED`` elsewhere: such
        points need a point-in-polygon test."""
        with np.errstate(invalid="ignore"):  # a point that does not project is inf or NaN
            gx, gy = x // self.cell - self.lx0, y // self.cell - self.ly0
        known = (gx >= 0) & (gx < self.lnx) & (gy >= 0) & (gy < self.lny)
        out = np.full(len(x), -1, dtype=np.intp)
        out[known] = self.owner[(gy[known] * self.lnx + gx[known]).astype(np.intp)]
        return out

    def owner_one(self, x: float, y: float) -> int:
        """``owner_of`` of one point."""
        gx, gy = x // self.cell - self.lx0, y // self.cell - self.ly0
        if not (0 <= gx < self.lnx and 0 <= gy < self.lny):
            return -1
        return int(self.owner[int(gy * self.lnx + gx)])

    def distance_one(self, x: float, y: float, polygon: int) -> float:
        """``distance`` of one point (the same cell, candidates and arithmetic)."""
        nx = int(self.nx[polygon])
        gx0, gy0 = int(self.gx0[polygon]), int(self.gy0[polygon])
        ix = int(min(max(x // self.cell - gx0, 0), nx - 1))
        iy = int(min(max(y // self.cell - gy0, 0), int(self.ny[polygon]) - 1))
        key = int(self.cell_start[polygon]) + iy * nx + ix
        start, end = int(self.ptr[key]), int(self.ptr[key + 1])
        ox, oy = (gx0 + ix + 0.5) * self.cell, (gy0 + iy + 0.5) * self.cell
        if end > start and np.hypot(x - ox, y - oy) <= self.reach:
            edge = self.candidates[start:end]
            distance, _ = segment_distance(
                x, y, self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
            )
            return float(distance.min())
        return float(shapely.distance(shapely.points(x, y), self.boundaries[polygon]))

    def distance(self, x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        """Distance from each point to the boundary of ``polygon`` (one index per point)."""
        out = np.empty(len(x))
        for start in range(0, len(x), _POINT_BLOCK):
            block = slice(start, start + _POINT_BLOCK)
            out[block] = self._distance(x[block], y[block], polygon[block])
        return out

    def _distance(self, x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        nx = self.nx[polygon]
        ix = np.clip(x // self.cell - self.gx0[polygon], 0, nx - 1).astype(np.intp)
        iy = np.clip(y // self.cell - self.gy0[polygon], 0, self.ny[polygon] - 1).astype(np.intp)
        key = self.cell_start[polygon] + iy * nx + ix
        count = self.ptr[key + 1] - self.ptr[key]
        ox = (self.gx0[polygon] + ix + 0.5) * self.cell
        oy = (self.gy0[polygon] + iy + 0.5) * self.cell
        fast = (np.hypot(x - ox, y - oy) <= self.reach) & (count > 0)
        out = np.empty(len(x))
        rows = np.flatnonzero(fast)
        pair, slot = _ranges(self.ptr[key[rows]], count[rows])
        edge = self.candidates[slot]
        distance, _ = segment_distance(
            x[rows][pair], y[rows][pair], self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
        )
        if len(rows):
            out[rows] = np.minimum.reduceat(distance, np.cumsum(count[rows]) - count[rows])
        slow = np.flatnonzero(~fast)
        if len(slow):
            out[slow] = shapely.distance(
                shapely.points(x[slow], y[slow]), self.boundaries[polygon[slow]]
            )
        return out
