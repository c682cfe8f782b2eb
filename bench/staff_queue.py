"""The staff queue's JSON (``/staff/api/queue``) against the raw SQL of the same question.

One store (sqlite or PostGIS), filled by ``bench/export.py``'s ``synthesize`` (the bundled
Paris reports imported, their incidents copied with a jitter up to ``--incidents``). The
app runs in this process (``create_app`` + Starlette's TestClient, a signed-in
dispatcher); the floor is the same question asked of the database in one statement per
part: the page of open incidents in the sort order, their total, and the count per
status. Rounds alternate (voirie, floor, voirie, floor...) so that the machine's load
hits both alike. Prints the median and p90 of each and the ratio voirie / floor, per
question, and the load average.

On PostgreSQL the incidents table is vacuumed before timing (a table just filled by
COPY has no visibility map yet; autovacuum would make one on a live server), and the
page's weight is printed: the queue page (``/staff/``), every file it loads and one
answer of its JSON, raw and gzipped.

Usage::

    python bench/staff_queue.py sqlite:////tmp/h3_bench/voirie.gpkg [--incidents 3893]
        [--rounds 15]
    python bench/staff_queue.py postgresql://postgres@127.0.0.1:5432/voirie_bench_h16_1m \
        --incidents 1000000   # the store bench/staff_stats.py fills, or filled here
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg
from export import JURISDICTION, synthesize
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.model import OPEN_STATUSES
from voirie.services.staff_users import add_user, list_users
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store

PASSWORD = "bench password long enough"
OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
# (label, queue parameters, statuses kept (None: all), ORDER BY of the floor's page, offset)
QUESTIONS = (
    ("open, oldest first", {"status": "open", "sort": "age"}, OPEN,
     "first_reported_at, id", 0),
    ("open, most reports", {"status": "open", "sort": "reports", "order": "desc"}, OPEN,
     "report_count DESC, id", 0),
    ("open, soonest due", {"status": "open", "sort": "due"}, OPEN,
     "due_at NULLS LAST, id", 0),
    ("all, latest due, p11", {"status": "all", "sort": "due", "order": "desc", "offset": "500"},
     None, "due_at DESC NULLS LAST, id", 500),
)  # fmt: skip


def _floor(
    url: str, statuses: tuple[str, ...] | None, order: str, offset: int
) -> Callable[[], object]:
    """The same question in plain SQL: one page of bare incident columns, and the counts
    per status (the total is the sum of the kept statuses' counts, as voirie takes it)."""
    store = open_store(StoreSettings(database_url=url))
    mark = "%s" if url.startswith("postgresql") else "?"
    kept = "" if statuses is None else f" AND status IN ({', '.join([mark] * len(statuses))})"
    page = (
        "SELECT id, service_code, status, team, priority, due_at, report_count, "
        f"first_reported_at, last_reported_at, lon, lat, street_name FROM incidents "
        f"WHERE jurisdiction_id = {mark}{kept} ORDER BY {order} LIMIT 50 OFFSET {offset}"
    )
    counts = (
        f"SELECT status, count(*) FROM incidents WHERE jurisdiction_id = {mark} GROUP BY status"
    )

    def ask() -> object:
        grouped = store.rows(counts, (JURISDICTION,))
        total = sum(int(str(n)) for s, n in grouped if statuses is None or s in statuses)
        return store.rows(page, (JURISDICTION, *(statuses or ()))), grouped, total

    return ask


def _weight(client: TestClient) -> tuple[int, int]:
    """Bytes of the queue page, every file it loads and its first JSON answer: raw and
    gzipped (what a dispatcher's browser downloads on a first visit)."""
    page = client.get("/staff/").text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    bodies = [page.encode(), client.get("/staff/api/queue").content]
    bodies += [client.get(url).content for url in urls]
    return sum(map(len, bodies)), sum(len(gzip.compress(b)) for b in bodies)


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> int:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--incidents", type=int, default=0, help="fill the store up to this")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="staff_queue_"))
    n = synthesize(args.url, args.incidents, workdir) if args.incidents else None
    store = open_store(StoreSettings(database_url=args.url))
    store.upgrade()
    if not any(u.name == "bench" for u in list_users(store, JURISDICTION)):
        add_user(store, JURISDICTION, "bench", "dispatcher", (), PASSWORD)
    n = n or store.count("incidents", JURISDICTION)
    store.close()
    if args.url.startswith("postgresql"):
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE incidents")
    app = create_app(StoreSettings(database_url=args.url), CitySettings(city="paris"))
    with TestClient(app) as client:
        form = client.get("/staff/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signed = client.post(
            "/staff/login",
            data={"name": "bench", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        print(f"{n:,} incidents, {args.url.split(':', 1)[0]}, {args.rounds} rounds")
        for label, params, statuses, order, offset in QUESTIONS:
            floor = _floor(args.url, statuses, order, offset)

            def voirie(params: dict[str, str] = params) -> object:
                answer = client.get("/staff/api/queue", params=params)
                assert answer.status_code == 200, answer.text
                return answer.content

            voirie()
            floor()  # warm both
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(_timed(voirie))
                theirs.append(_timed(floor))
            med_o, med_f = statistics.median(ours), statistics.median(theirs)
            p90_o = statistics.quantiles(ours, n=10)[-1]
            p90_f = statistics.quantiles(theirs, n=10)[-1]
            print(
                f"{label:22} voirie median {med_o * 1000:8.1f} ms  p90 {p90_o * 1000:8.1f} ms | "
                f"SQL median {med_f * 1000:7.1f} ms  p90 {p90_f * 1000:7.1f} ms | "
                f"ratio {med_o / med_f:6.2f}"
            )
        raw, packed = _weight(client)
        print(f"page weight (/staff/, its files, one JSON page): {raw / 1024:.0f} KiB, "
              f"gzipped {packed / 1024:.0f} KiB")  # fmt: skip
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
