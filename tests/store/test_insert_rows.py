"""``insert_rows`` (the per-report path's writes) stores what ``insert`` stores.

The same rows go through both methods under different ids, on each backend; read back,
every column (the point included) is equal. Values cover what the pipeline writes: aware
and naive datetimes, flags, NaN and None, numpy scalars, text with quotes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from voirie.store import Store
from voirie.store.postgis import PostgisStore
from voirie.store.schema import COLUMNS

JURISDICTION = "paris.fr"
PARIS_SUMMER = timezone(timedelta(hours=2))

REPORT = {
    "jurisdiction_id": JURISDICTION,
    "source": "app",
    "service_code": "S1",
    "description": "l'encombrant « devant » le 3",
    "address": None,
    "channel": "app",
    "media_url": None,
    "lon": 2.3522219,
    "lat": 48.856614,
    "requested_at": datetime(2024, 3, 31, 2, 30, 15, 123456, tzinfo=PARIS_SUMMER),
    "received_at": datetime(2024, 3, 31, 0, 31, tzinfo=UTC),
    "content_hash": "abc",
}
ENRICHMENT = {
    "jurisdiction_id": JURISDICTION,
    "segment_id": "w1-0",
    "street_name": "Rue de Rivoli",
    "snap_distance_m": np.float64(3.25),
    "position_m": float("nan"),
    "side": "left",
    "snap_lon": 2.35,
    "snap_lat": 48.85,
    "snap_method": "nearest",
    "boundary_distance_m": None,
    "off_network": np.bool_(False),
    "outside_territory": False,
    "near_boundary": True,
}
EVENT = {
    "jurisdiction_id": JURISDICTION,
    "entity": "report",
    "entity_id": np.int64(7),
    "kind": "received",
    "actor": "voirie",
    "reason": None,
    "at": datetime(2024, 1, 1, 12),
}


def _stored(store: Store, table: str, key: str, value: int) -> tuple[object, ...]:
    """One stored row, its columns in schema order without the keys, then its point."""
    names = [n for n in COLUMNS[table] if n not in (key, "external_id")]
    point = ""
    if table == "reports":
        point = ", ST_AsEWKT(geom)" if isinstance(store, PostgisStore) else ", hex(geom)"
    mark = "%s" if isinstance(store, PostgisStore) else "?"
    with store.transaction(JURISDICTION) as uow:
        conn = uow.session.conn  # type: ignore[attr-defined]
        row = conn.execute(
            f"SELECT {', '.join(names)}{point} FROM {table} WHERE {key} = {mark}", (value,)
        ).fetchone()
    return tuple(row)


@pytest.mark.parametrize(
    ("table", "key", "row"),
    [("reports", "id", REPORT), ("enrichments", "report_id", ENRICHMENT), ("events", "id", EVENT)],
)
def test_insert_rows_stores_what_insert_stores(
    store: Store, table: str, key: str, row: dict[str, object]
) -> None:
    with store.transaction(JURISDICTION) as uow:
        if table != "reports":  # the rows of other tables belong to a report
            uow.tables.insert_rows(
                "reports", [{**REPORT, "id": n, "external_id": f"r-{n}"} for n in (1, 2)]
            )
        # Distinct external ids: (source, external_id) is unique.
        uow.tables.insert(table, pd.DataFrame([{**row, key: 1, "external_id": "e-1"}]))
        uow.tables.insert_rows(table, [{**row, key: 2, "external_id": "e-2"}])
    by_frame, by_rows = _stored(store, table, key, 1), _stored(store, table, key, 2)
    assert by_rows == by_frame
    assert None in by_rows  # missing values stay NULL on both paths


def test_insert_rows_refuses_an_unknown_table(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow, pytest.raises(KeyError):
        uow.tables.insert_rows("nonexistent", [{"id": 1}])
