"""A PostgreSQL transaction pipelined from its BEGIN to its COMMIT (psycopg's pipeline mode).

psycopg's ``Connection.transaction()`` in pipeline mode syncs after its BEGIN and again
before its COMMIT: two round trips of their own around the statements, each paying the
client's send, wait and result processing. Sent as plain statements on an autocommit
connection (the pool's), BEGIN leaves with the first statements and COMMIT with the last:
a per-report unit of work (its reads, then its writes) then costs two round trips instead
of four, and its locks are released one round trip sooner (issue 20).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

# The states in which the server holds a transaction block the client must end.
_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


@contextmanager
def pipelined_transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """BEGIN, the block's statements and COMMIT in one pipeline; rolled back if the block
    or a statement fails.

    A read in the block waits for its own results only (and those sent before it); an
    error is raised at the latest when the pipeline ends, with COMMIT, so nothing is
    committed unless every statement succeeded. The commit is known done when the block
    ends: an answer given after it is an answer about stored rows."""
    if not conn.autocommit:
        raise ValueError("a pipelined transaction needs an autocommit connection")
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield
            conn.execute("COMMIT")
    except BaseException:
        # The pipeline has ended (synced): a statement that failed left the transaction
        # aborted, an error raised in the block left it open. A connection that broke has
        # no transaction to end (the pool discards it): keep the block's own error.
        if conn.info.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise
