"""A streamed export whose database fails mid-way ends in an error the client sees, never
a clean 200 with a truncated file (issue 13, "fail fast").

A real ``voirie serve`` streams an incidents layer larger than one export chunk from a
real PostGIS database; once the client holds the first bytes, the database refuses
connections and its open ones are terminated (``pg_terminate_backend``), so the server's
read of the next chunk fails. The client reads on slowly enough that the server cannot
have read every chunk before (the socket's flow control holds it back): the chunked body
must never end cleanly. Before the first byte, the same outage is a 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import psycopg
import pytest
from databases import allow_connections, scratch_database
from liveserver import LiveServer, load_reports, serving
from psycopg import sql

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.maps.export import CHUNK_SIZE

pytestmark = [pytest.mark.postgis, pytest.mark.slow]
COPIES = 110
"""Each of the 200 sample reports' incidents copied this many times: several chunks."""


def _copy_incidents(url: str, copies: int) -> int:
    """Copy every incident ``copies`` times (new ids, same public fields); the count."""
    with psycopg.connect(url, autocommit=True) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'incidents' AND column_name <> 'id' "
                "AND is_generated = 'NEVER' ORDER BY ordinal_position"
            )
        ]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        db.execute(
            sql.SQL(
                "INSERT INTO incidents ({columns}) SELECT {columns} FROM incidents "
                "CROSS JOIN generate_series(1, %s)"
            ).format(columns=columns),
            (copies,),
        )
        row = db.execute("SELECT count(*) FROM incidents").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture(scope="module")
def large(
    postgis_server: str, tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[tuple[LiveServer, str]]:
    """A live server on a PostGIS database holding more incidents than one export chunk,
    and the database's name."""
    folder: Path = tmp_path_factory.mktemp("export-abort")
    databases = scratch_database(postgis_server)
    url = next(databases)
    try:
        load_reports(url, paris, paris_gis)
        assert _copy_incidents(url, COPIES) > CHUNK_SIZE
        with serving(url, folder) as live:
            yield live, urlsplit(url).path.lstrip("/")
    finally:
        allow_connections(postgis_server, urlsplit(url).path.lstrip("/"), allowed=True)
        databases.close()


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_a_database_lost_mid_stream_aborts_the_download(
    large: tuple[LiveServer, str], postgis_server: str, fmt: str
) -> None:
    live, database = large
    received = 0
    with (
        httpx2.Client(base_url=live.base, timeout=60) as client,
        client.stream("GET", f"/exports/incidents.{fmt}") as answer,
    ):
        assert answer.status_code == 200
        chunks = answer.iter_raw(64 * 1024)
        received += len(next(chunks))
        allow_connections(postgis_server, database, allowed=False)
        try:
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                received += sum(len(chunk) for chunk in chunks)
        finally:
            allow_connections(postgis_server, database, allowed=True)
    assert received > 0
    # The server went on serving: the next download is whole.
    whole = httpx2.get(f"{live.base}/exports/incidents.csv?status=closed", timeout=60)
    assert whole.status_code == 200


@pytest.mark.parametrize("fmt", ["csv", "geojson", "gpkg"])
def test_a_database_down_before_the_first_byte_is_a_503(
    large: tuple[LiveServer, str], postgis_server: str, fmt: str
) -> None:
    live, database = large
    allow_connections(postgis_server, database, allowed=False)
    try:
        answer = httpx2.get(f"{live.base}/exports/incidents.{fmt}", timeout=60)
    finally:
        allow_connections(postgis_server, database, allowed=True)
    assert answer.status_code == 503, answer.text[:300]
    assert answer.headers["content-type"] == "application/problem+json"
    assert "retry-after" in answer.headers
