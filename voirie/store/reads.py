"""Store-level reads and the token writes, written once for both backends.

The layers (through a ``Selection``), the named queries, events in a time window, counts,
keyed lookups and API tokens: the same SQL on sqlite and PostgreSQL, spelled with the
backend's ``Dialect``. A backend says only how it runs one read (``_frame``: sqlite on the
thread's connection, PostGIS on a pooled one with retries) and one write in its own
transaction (``_write``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import ClassVar, cast

import numpy as np
import pandas as pd

from voirie.store import public_points, stats
from voirie.store.base import MetricCRS, TokenRecord
from voirie.store.dialect import Dialect
from voirie.store.knn import LocalMetric, knn_sql, nearest_ids
from voirie.store.public_points import Placement, point_columns
from voirie.store.queries import QUERIES
from voirie.store.schema import COLUMNS
from voirie.store.selection import (
    EVERYTHING,
    LAYERS,
    Layer,
    Selection,
    count_sql,
    points_sql,
    request_changes_sql,
    requests_sql,
    select_sql,
    status_counts_sql,
    zones_sql,
)
from voirie.store.statements.session import missing
from voirie.store.statements.tables import known_table
from voirie.store.statements.unit import SqlUnitOfWork

NEARBY_COLUMNS = (
    "i.id",
    "i.service_code",
    "i.status",
    "i.street_name",
    "o.description",
    "i.lon",
    "i.lat",
    "i.first_reported_at",
    "i.last_reported_at",
    "i.report_count",
    "i.supporters",
)
"""What a nearby search reads of each incident (``description``: its first report's)."""


class StoreReads:
    """The reads of a store, and its tokens, over its dialect."""

    dialect: ClassVar[Dialect]
    placements: dict[str, Placement]
    """Each city's ``Placement`` (``place_publicly``), which its writes use."""

    def transaction(self, jurisdiction_id: str) -> AbstractContextManager[SqlUnitOfWork]:
        """A unit of work for one jurisdiction (each backend's)."""
        raise NotImplementedError

    def place_publicly(self, jurisdiction_id: str, placement: Placement) -> bool:
        """Write this city's rows with their public points from now on, and bring the
        stored ones up to date with its blurring (``voirie.store.public_points``) unless
        the stored fingerprint says they are (one read); True when they were recomputed.

        Only the rows that are blurred or were are read (the rest keep NULL). Writers of
        the city's points are serialized on one lock and look again once they hold it, so
        of processes starting together one recomputes; a row written meanwhile by a
        pipeline of this blurring is placed by its writer."""
        self.placements[jurisdiction_id] = placement
        d = self.dialect
        found = self.rows(
            d.text("SELECT fingerprint FROM public_points WHERE jurisdiction_id = ?"),
            (jurisdiction_id,),
        )
        if (found[0][0] if found else None) == placement.fingerprint:
            return False
        with self.transaction(jurisdiction_id) as uow:
            uow.lock([f"public_points:{jurisdiction_id}"])
            session = uow.session
            stored = session.run(
                "SELECT fingerprint FROM public_points WHERE jurisdiction_id = ?",
                (jurisdiction_id,),
            ).fetchall()
            if (stored[0][0] if stored else None) == placement.fingerprint:
                return False  # another process recomputed them while this one waited
            codes = sorted(placement.services)
            for table in public_points.PUBLIC_TABLES:
                rows = session.run(
                    f"SELECT id, service_code, lon, lat, public_lon FROM {table} "
                    "WHERE jurisdiction_id = ? AND (public_lon IS NOT NULL OR "
                    f"{d.in_array('service_code', 'text')})",
                    (jurisdiction_id, d.array(codes)),
                ).fetchall()
                public_points.place_all(session, table, placement, rows)
            session.run("DELETE FROM public_points WHERE jurisdiction_id = ?", (jurisdiction_id,))
            if placement.fingerprint is not None:
                session.run(
                    "INSERT INTO public_points (jurisdiction_id, fingerprint, placed_at) "
                    "VALUES (?, ?, ?)",
                    (jurisdiction_id, placement.fingerprint, d.instant(datetime.now(UTC))),
                )
        return True

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        """Rows of one read query (in the backend's placeholders) as a typed DataFrame."""
        raise NotImplementedError

    def _write(self, text: str, params: Sequence[object]) -> None:
        """Run one write statement (in the backend's placeholders) in its own transaction."""
        raise NotImplementedError

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """A whole layer, or a named read query, as a DataFrame."""
        if query in LAYERS:
            return self.select(query, jurisdiction_id, EVERYTHING)
        # Only the placeholder is formatted in; the jurisdiction itself is bound.
        return self._frame(QUERIES[query].format(j=self.dialect.placeholder), (jurisdiction_id,))

    def select(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> pd.DataFrame:
        """One page of a layer's selected rows."""
        return self._frame(*select_sql(layer, jurisdiction_id, selection, self.dialect))

    def page_rows(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        zone_layers: Sequence[str] = (),
    ) -> list[tuple[object, ...]]:
        """``select`` as tuples of ``selection.layer_columns(layer)`` then the row's code
        in each of ``zone_layers`` (None where it has none), values as the backend
        returns them: the lean read path's page and its zones in one statement (one
        round trip without PostgreSQL's pipeline mode, whose second statement cost a
        one-feature read a third of its client CPU)."""
        return self.rows(*select_sql(layer, jurisdiction_id, selection, self.dialect, zone_layers))

    def request_rows(
        self, jurisdiction_id: str, selection: Selection, kind: str
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """The page of reports a selection keeps as tuples of ``REQUEST_COLUMNS``
        (``requests_sql``) and ``(incident_id, reason)`` of the events of one ``kind``
        of their incidents, oldest first (``request_changes_sql``): both statements sent
        together on one connection, the whole of an Open311 GET's reading."""
        found = self.rows_batch(
            [
                requests_sql(jurisdiction_id, selection, self.dialect),
                request_changes_sql(jurisdiction_id, selection, self.dialect, kind),
            ]
        )
        return found[0], found[1]

    def count_selected(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> int:
        """Rows a selection keeps, whatever its page."""
        frame = self._frame(*count_sql(layer, jurisdiction_id, selection, self.dialect))
        return int(cast(int, frame.iloc[0, 0]))

    def status_counts(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> dict[str, int]:
        """Rows a selection keeps per status, whatever its page (statuses with none absent)."""
        rows = self.rows(*status_counts_sql(layer, jurisdiction_id, selection, self.dialect))
        return {str(status): int(cast(int, n)) for status, n in rows}

    def nearest(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> pd.DataFrame:
        """The page of the rows a selection keeps within ``radius_m`` metres of a point,
        nearest first then by id: ``row_id``, ``distance_m``.

        Only the page's candidates and the rows on the circle's edge are projected
        (``voirie.store.knn``): by the database where it projects (PostGIS, one
        statement), here with ``metric.project`` elsewhere (sqlite, the box's points read
        through the R*Tree); either way the caller reads the page's rows alone.
        """
        ids, distance, _ = self._nearest(layer, jurisdiction_id, selection, point, radius_m, metric)
        return pd.DataFrame({"row_id": ids, "distance_m": distance})

    def _nearest(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The page's ids and distances, nearest first then by id, and how many rows the
        selection keeps within ``radius_m`` in all (``knn_sql`` or ``nearest_ids``)."""
        local = LocalMetric.around(point, radius_m, metric.project)
        d = self.dialect
        if d.metric_distance is not None and metric.srid is not None:
            found = self.rows(
                *knn_sql(layer, jurisdiction_id, selection, d, local, radius_m, metric.srid)
            )
            page = [row for row in found if row[0] is not None]
            return (
                np.array([row[0] for row in page], dtype=np.int64),
                np.array([row[1] for row in page], dtype=float),
                int(cast(int, found[0][2])) if found else 0,
            )
        rows = self.rows(*points_sql(layer, jurisdiction_id, selection, self.dialect))
        points = np.array(rows, dtype=float).reshape(-1, 3)  # id, lon, lat
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        return nearest_ids(
            ids, points[:, 1], points[:, 2], local, radius_m, selection, metric.project
        )

    def nearby_rows(
        self,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> tuple[list[tuple[object, ...]], int]:
        """The page of incidents a selection keeps within ``radius_m`` metres of a point,
        nearest first then by id, as tuples of ``NEARBY_COLUMNS`` then ``distance_m``,
        and how many there are within the radius in all: what the citizens' nearby
        search shows, read without a DataFrame. With ``selection.public_points`` the
        rows are found, measured and shown at their public points.

        On PostGIS one statement finds the page and the total (``knn_sql``) and reads
        the page's rows; on sqlite the ids are found as ``nearest`` finds them, then the
        page's rows are read.
        """
        d = self.dialect
        lon, lat = point_columns("i", public=selection.public_points)
        shown = {"i.lon": lon, "i.lat": lat}
        columns = ", ".join(shown.get(column, column) for column in NEARBY_COLUMNS)
        joins = (
            "LEFT JOIN reports o ON o.id = i.origin_report_id "
            "AND o.jurisdiction_id = i.jurisdiction_id"
        )
        if d.metric_distance is not None and metric.srid is not None:
            local = LocalMetric.around(point, radius_m, metric.project)
            near, params = knn_sql(
                "incidents", jurisdiction_id, selection, d, local, radius_m, metric.srid
            )
            # ``knn_sql`` gives one row with a NULL id when the page is empty: the total.
            text = (
                f"SELECT {columns}, n.distance_m, n.total FROM ({near}) AS n "
                f"LEFT JOIN incidents i ON i.id = n.row_id "
                f"AND i.jurisdiction_id = {d.placeholder} {joins} "
                "ORDER BY n.distance_m, n.row_id"
            )
            found = self.rows(text, [*params, jurisdiction_id])
            total = int(cast(int, found[0][-1])) if found else 0
            return [row[:-1] for row in found if row[0] is not None], total
        measured, meters, total = self._nearest(
            "incidents", jurisdiction_id, selection, point, radius_m, metric
        )
        ids = [int(v) for v in measured]
        if not ids:
            return [], total
        rows = self.rows(
            d.text(
                f"SELECT {columns} FROM incidents i {joins} WHERE i.jurisdiction_id = ? "
                f"AND {d.in_array('i.id', 'bigint')}"
            ),
            (jurisdiction_id, d.array(ids)),
        )
        by_id = {int(cast(int, row[0])): row for row in rows}
        distances = meters.tolist()
        page = [(*by_id[i], m) for i, m in zip(ids, distances, strict=True) if i in by_id]
        return page, total

    def newest_request_before(self, jurisdiction_id: str, before: datetime) -> datetime | None:
        """When the newest request made before ``before`` was made: one entry of the
        index reports_requested, read backwards (None when there is none)."""
        d = self.dialect
        rows = self.rows(
            d.text(
                "SELECT r.requested_at FROM reports r WHERE r.jurisdiction_id = ? "
                "AND r.requested_at < ? ORDER BY r.requested_at DESC LIMIT 1"
            ),
            (jurisdiction_id, d.instant(before)),
        )
        return _moment(rows[0][0]) if rows else None

    def incident_timings(
        self,
        jurisdiction_id: str,
        zone_layer: str,
        since: datetime,
        now: datetime,
        open_statuses: Sequence[str],
        teams: Sequence[str] | None = None,
    ) -> stats.Timings:
        """The incidents first reported since ``since`` and the older open backlog counted
        (of ``teams`` when given), with their zone in ``zone_layer`` and the moments their
        delays are measured to (``voirie.store.stats``)."""
        d = self.dialect
        team_condition = "" if teams is None else f"AND {d.in_array('i.team', 'text')}"
        team_params: list[object] = [] if teams is None else [d.array(list(teams))]
        period = self.rows(
            d.text(stats.PERIOD.format(team_condition=team_condition)),
            [zone_layer, jurisdiction_id, d.instant(since), *team_params],
        )
        backlog = self.rows(
            d.text(
                stats.BACKLOG.format(
                    open_condition=d.in_array("i.status", "text"), team_condition=team_condition
                )
            ),
            [
                d.instant(now),
                zone_layer,
                jurisdiction_id,
                d.array(open_statuses),
                d.instant(since),
                *team_params,
            ],
        )
        return stats.Timings(
            pd.DataFrame(period, columns=list(stats.PERIOD_COLUMNS)),
            pd.DataFrame(backlog, columns=list(stats.BACKLOG_COLUMNS)),
        )

    def rows(self, text: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows of one read query (in the backend's placeholders) as tuples."""
        raise NotImplementedError

    def rows_batch(
        self, statements: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[tuple[object, ...]]]:
        """The rows of several read queries, on one connection."""
        raise NotImplementedError

    def events_between(
        self, jurisdiction_id: str, kind: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Events of one kind at ``start`` ≤ at ≤ ``end``, oldest first (schema columns)."""
        d = self.dialect
        return self._frame(
            d.text(
                f"SELECT {', '.join(COLUMNS['events'])} FROM events WHERE jurisdiction_id = ? "
                "AND kind = ? AND at >= ? AND at <= ? ORDER BY at, id"
            ),
            (jurisdiction_id, kind, d.instant(start), d.instant(end)),
        )

    def select_zones(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> pd.DataFrame:
        """Zone codes of one page of selected rows."""
        return self._frame(*zones_sql(layer, jurisdiction_id, selection, self.dialect))

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Rows of a schema table for one jurisdiction."""
        known_table(table)  # the name is composed into the text: a schema table only
        frame = self._frame(
            self.dialect.text(f"SELECT count(*) FROM {table} WHERE jurisdiction_id = ?"),
            (jurisdiction_id,),
        )
        return int(cast(int, frame.iloc[0, 0]))

    def lookup(
        self, table: str, jurisdiction_id: str, column: str, values: Sequence[object]
    ) -> pd.DataFrame:
        """Rows of a schema table whose ``column`` is one of ``values``, ordered by that
        column then the table's first column."""
        known_table(table)
        names = COLUMNS[table]
        if column not in names:  # composed into the text too: one of the table's columns
            raise KeyError(f"{table}.{column}")
        if not values:
            return pd.DataFrame(columns=list(names))
        d = self.dialect
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        kind = "bigint" if all(isinstance(v, int) for v in values) else "text"
        return self._frame(
            d.text(
                f"SELECT {', '.join(names)} FROM {table} WHERE jurisdiction_id = ? "
                f"AND {d.in_array(column, kind)} ORDER BY {column}, {names[0]}"
            ),
            (jurisdiction_id, d.array(list(values))),
        )

    def add_token(self, jurisdiction_id: str, token_hash: str, token: TokenRecord) -> None:
        """Store an API token's hash with its holder, role, teams and expiry."""
        d = self.dialect
        expires = None if token.expires_at is None else d.instant(token.expires_at)
        self._write(
            d.text(
                "INSERT INTO api_tokens (jurisdiction_id, token_hash, name, role, teams, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                jurisdiction_id,
                token_hash,
                token.name,
                token.role,
                d.array(list(token.teams)),
                d.instant(datetime.now(UTC)),
                expires,
            ),
        )

    def _tokens(self, condition: str, params: Sequence[object]) -> list[TokenRecord]:
        # Plain rows, not a DataFrame: every authenticated request reads its token here.
        rows = self.rows(
            self.dialect.text(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE {condition}"),
            params,
        )
        return [
            TokenRecord(
                str(name),
                str(role),
                self.dialect.from_array(teams),
                expires_at=_moment(expires),
                id=int(cast(int, token_id)),
                created_at=_moment(created),
                last_used_at=_moment(used),
                revoked_at=_moment(revoked),
            )
            for token_id, name, role, teams, created, expires, used, revoked in rows
        ]

    def find_token(self, jurisdiction_id: str, token_hash: str) -> TokenRecord | None:
        """The token stored under this hash in this jurisdiction, if any (also when
        revoked or expired: the caller says which)."""
        found = self._tokens(
            "jurisdiction_id = ? AND token_hash = ?", (jurisdiction_id, token_hash)
        )
        return found[0] if found else None

    def list_tokens(self, jurisdiction_id: str) -> list[TokenRecord]:
        """Every token of a jurisdiction, revoked and expired ones included, oldest first."""
        return self._tokens("jurisdiction_id = ? ORDER BY id", (jurisdiction_id,))

    def revoke_token(self, jurisdiction_id: str, token_id: int, at: datetime) -> None:
        """Mark a token revoked at ``at`` (kept for the record; refused from then on)."""
        self._write(
            self.dialect.text(
                "UPDATE api_tokens SET revoked_at = ? "
                "WHERE jurisdiction_id = ? AND id = ? AND revoked_at IS NULL"
            ),
            (self.dialect.instant(at), jurisdiction_id, token_id),
        )

    def expire_token(self, jurisdiction_id: str, token_id: int, at: datetime) -> None:
        """Set a token's expiry to ``at``."""
        self._write(
            self.dialect.text(
                "UPDATE api_tokens SET expires_at = ? WHERE jurisdiction_id = ? AND id = ?"
            ),
            (self.dialect.instant(at), jurisdiction_id, token_id),
        )

    def touch_token(
        self, jurisdiction_id: str, token_id: int, at: datetime, since: datetime
    ) -> None:
        """Record ``at`` as a token's last use, unless it was already used after ``since``
        (so workers racing on one token write once, not once each)."""
        d = self.dialect
        self._write(
            d.text(
                "UPDATE api_tokens SET last_used_at = ? WHERE jurisdiction_id = ? AND id = ? "
                "AND (last_used_at IS NULL OR last_used_at < ?)"
            ),
            (d.instant(at), jurisdiction_id, token_id, d.instant(since)),
        )


_TOKEN_COLUMNS = "id, name, role, teams, created_at, expires_at, last_used_at, revoked_at"


def _moment(value: object) -> datetime | None:
    """A stored instant (psycopg's datetime or GeoPackage text) as an aware UTC datetime."""
    if missing(value):  # None, or NaT (a datetime too) from a typed frame
        return None
    if isinstance(value, datetime):  # psycopg's: no pandas on a per-request read
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    stamp = pd.Timestamp(cast(str, value))
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()
