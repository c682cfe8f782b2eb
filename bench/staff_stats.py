"""The statistics dashboard at scale on PostGIS: ``/staff/stats`` against the raw SQL of the
same question, and the page's weight (issue 16 item 6).

The store is the living demo (``voirie.services.demo``: the bundled Paris reports moved up
to today, imported, the teams' work simulated over them), then its incidents, their zones
and their status events copied with new ids until it holds ``--incidents`` (default
100,000; each copy's first acknowledgement and resolution are then set from its copied
history, as a status change sets them). The database is kept between runs and filled
once; a database filled before migrations 0018-0019 gets zones and moments from their
backfills.

Each round times, one after the other so that the machine's load hits both alike:

- voirie: ``GET /staff/stats`` through the whole app (session cookie, ``create_app``,
  in-process client): the two reads (the period's incidents, the older backlog counted),
  the aggregation in pandas, the page rendered;
- the floor: PostgreSQL alone answering the same question from the same columns (the
  moments kept on each incident, its zone in ``incident_zones``), the four tables (team,
  zone, service, ISO week) with ``percentile_cont`` for medians and 90th percentiles, one
  statement each over the same rows, fetched by psycopg and nothing rendered.

Prints the medians of each and their ratio, the load average, and the page's weight (its
HTML and every file it loads, raw and gzipped).

Usage::

    python bench/staff_stats.py postgresql://postgres@127.0.0.1:5432/voirie_bench_h2_stats \
        [--incidents 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

REPORTS = Path(__file__).parent.parent / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
JURISDICTION = "paris.fr"
ID_STRIDE = 10_000_000
WEEKS = 12
PASSWORD = "un mot de passe de banc d'essai"

# The floor: the dashboard's question in SQL alone, one statement per table. Same rows as
# voirie's read (open now, or first reported in the period), same measures.
RAW = """
WITH f AS (
  SELECT {key} AS key,
         i.status IN ('new', 'acknowledged', 'scheduled', 'in_progress') AS is_open,
         i.first_reported_at >= %(since)s AS reported, i.due_at,
         extract(epoch FROM i.acknowledged_at - i.first_reported_at) / 3600 AS ack_h,
         extract(epoch FROM i.resolved_at - i.first_reported_at) / 3600 AS res_h,
         i.resolved_at AS res
  FROM incidents i
  LEFT JOIN incident_zones z ON z.jurisdiction_id = i.jurisdiction_id
    AND z.incident_id = i.id AND z.layer = 'arrondissement'
  WHERE i.jurisdiction_id = %(j)s AND i.status <> 'duplicate'
    AND (i.first_reported_at >= %(since)s
         OR i.status IN ('new', 'acknowledged', 'scheduled', 'in_progress'))
)
SELECT key, count(*) FILTER (WHERE is_open) AS backlog,
       count(*) FILTER (WHERE is_open AND due_at < %(now)s) AS overdue,
       count(*) FILTER (WHERE reported) AS reported,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ack_h) FILTER (WHERE reported),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY ack_h) FILTER (WHERE reported),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY res_h) FILTER (WHERE reported),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY res_h) FILTER (WHERE reported),
       count(*) FILTER (WHERE reported AND res <= due_at),
       count(*) FILTER (WHERE reported AND due_at IS NOT NULL
                          AND (res IS NOT NULL OR due_at < %(now)s))
FROM f {where} GROUP BY key ORDER BY key
"""
KEYS = {
    "team": ("i.team", ""),
    "zone": ("z.code", ""),
    "service": ("i.service_code", ""),
    "week": (
        "to_char(i.first_reported_at AT TIME ZONE 'Europe/Paris', 'IYYY-\"W\"IW')",
        "WHERE reported",
    ),
}


def fill(url: str, incidents: int) -> int:
    """The living demo in the store at ``url``, copied up to ``incidents`` incidents."""
    from voirie.city import load_city
    from voirie.ingest.mapping import DANSMARUE
    from voirie.ingest.sources import RawTable, read_csv
    from voirie.services.demo import relive, simulate_work
    from voirie.services.pipeline import Pipeline
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    store = open_store(StoreSettings(database_url=url))
    try:
        store.upgrade()
        have = store.count("incidents", JURISDICTION)
        if have >= incidents:
            return have
        city = load_city("paris")
        if have == 0:
            now = datetime.now(UTC)
            pipeline = Pipeline(city, store)
            raw = read_csv(REPORTS)
            moved = relive(raw.rows[raw.columns], now, city.config.timezone)
            print("  importing the living demo...", file=sys.stderr)
            pipeline.imports.import_table(
                RawTable(raw.rows.assign(**moved), raw.columns), DANSMARUE
            )
            simulate_work(store, city, pipeline.reads, now)
        with psycopg.connect(url) as conn:
            base = _frame(conn, f"SELECT * FROM incidents WHERE id < {ID_STRIDE}")
            events = _frame(
                conn,
                "SELECT * FROM events WHERE entity = 'incident' AND kind = 'status_changed' "
                f"AND entity_id < {ID_STRIDE}",
            )
            zones = _frame(
                conn,
                "SELECT jurisdiction_id, incident_id, layer, code, name FROM incident_zones "
                f"WHERE incident_id < {ID_STRIDE}",
            )
        base = base.drop(columns=["geom"])
        rng = np.random.default_rng(2154)
        copy, have = 1, store.count("incidents", JURISDICTION)
        while have < incidents:
            frame = base.iloc[: incidents - have].copy()
            frame["id"] = frame["id"] + copy * ID_STRIDE
            frame["lon"] = frame["lon"] + rng.normal(0, 0.0004, len(frame))
            frame["lat"] = frame["lat"] + rng.normal(0, 0.00027, len(frame))
            history = events[events["entity_id"].isin(base["id"].iloc[: incidents - have])]
            history = history.assign(entity_id=history["entity_id"] + copy * ID_STRIDE)
            placed = zones[zones["incident_id"].isin(base["id"].iloc[: incidents - have])]
            placed = placed.assign(incident_id=placed["incident_id"] + copy * ID_STRIDE)
            with store.transaction(JURISDICTION) as uow:
                uow.tables.insert("incidents", frame)
                history = history.assign(id=uow.tables.reserve_ids("events", len(history)))
                uow.tables.insert("events", history)
                uow.tables.insert("incident_zones", placed)
                # The moments the dashboard reads, as a status change keeps them.
                uow.incidents.refresh_timings(frame["id"].tolist())
            have += len(frame)
            copy += 1
            print(f"  {have:,} incidents", file=sys.stderr)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        return have
    finally:
        store.close()


def _frame(conn: psycopg.Connection[Any], query: str) -> pd.DataFrame:
    """The rows of a query as a DataFrame, named by its columns."""
    cursor = conn.execute(query)
    return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description or ()])


def _app_client(url: str) -> Any:
    """A client of the whole app on ``url``, signed in as a dispatcher."""
    from fastapi.testclient import TestClient

    from voirie.api.app import create_app
    from voirie.api.staff_session import SESSION_COOKIE
    from voirie.errors import InvalidInput
    from voirie.services.staff_users import StaffSettings, add_user, sign_in
    from voirie.settings import CitySettings, StoreSettings
    from voirie.store import open_store

    store = open_store(StoreSettings(database_url=url))
    try:
        with contextlib.suppress(InvalidInput):  # the account is kept from an earlier run
            add_user(store, JURISDICTION, "banc", "dispatcher", (), PASSWORD)
        signed = sign_in(store, JURISDICTION, "banc", PASSWORD, StaffSettings())
    finally:
        store.close()
    app = create_app(StoreSettings(database_url=url), CitySettings(city="paris"))
    client = TestClient(app)
    client.__enter__()
    client.cookies.set(SESSION_COOKIE, signed.session_id)
    return client


def _raw_round(conn: psycopg.Connection[Any]) -> int:
    now = datetime.now(UTC)
    params = {"j": JURISDICTION, "now": now, "since": now - timedelta(weeks=WEEKS)}
    rows = 0
    for key, where in KEYS.values():
        rows += len(conn.execute(RAW.format(key=key, where=where), params).fetchall())
    return rows


def _weight(client: Any, page: str) -> tuple[int, int]:
    """Bytes of the page and every file it loads: raw and gzipped."""
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    bodies = [page.encode()] + [client.get(u).content for u in urls]
    return sum(map(len, bodies)), sum(len(gzip.compress(b)) for b in bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="postgresql://... (created and filled when empty)")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the import's quarantine file, if any, goes here
        count = fill(args.url, args.incidents)
    client = _app_client(args.url)
    voirie, floor = [], []
    with psycopg.connect(args.url, autocommit=True) as conn:
        _raw_round(conn)
        page = client.get("/staff/stats").text  # warm: city, pools, templates
        for _ in range(args.rounds):
            start = time.perf_counter()
            answer = client.get("/staff/stats")
            voirie.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.status_code
            start = time.perf_counter()
            _raw_round(conn)
            floor.append(time.perf_counter() - start)
    raw_bytes, gz_bytes = _weight(client, page)
    v, f = statistics.median(voirie), statistics.median(floor)
    print(f"incidents: {count:,}; rounds: {args.rounds}; load average: {os.getloadavg()}")
    print(f"voirie GET /staff/stats  median {v * 1000:8.1f} ms")
    print(f"raw SQL (4 statements)  median {f * 1000:8.1f} ms")
    print(f"ratio voirie / raw SQL  {v / f:.2f}")
    print(f"page weight: {raw_bytes / 1024:.0f} KiB, gzipped {gz_bytes / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
