"""Read replicas: public reads on PostgreSQL streaming replicas, the rest on the primary.

``ReplicatedStore`` is the PostGIS store of the primary (every unit of work, every write,
migrations) whose one-statement reads go to a replica **only inside ``public_reads()``**:
the API opens that scope for the public's GET requests (``voirie.api.read_routing``);
staff requests, writes, the outbox worker and the CLI never do, so they read the primary
and see their own writes at once.

A request reads one node from its first statement to its last (its ``Pin``): the change
counter behind its ``ETag`` and its rows come from the same replica, whose counter is
replicated with the rows it counts, so an ETag never labels rows older than itself. When
the replica fails mid-request the rest is read on the primary, which is never older.

A monitor thread measures each replica every ``read_check_interval_s``: the primary's WAL
position is sampled first, then the position the replica has replayed. Its lag is how long
ago the primary first held WAL the replica has not replayed (zero once it has replayed
every sample): unlike ``now() - pg_last_xact_replay_timestamp()``, it does not grow while
the primary is idle, and it grows by the second while replay is paused or the link is cut.
A replica that does not answer, is not in recovery, or lags more than ``read_max_lag_s``
gets no public read until a later check finds it well; with none left, public reads go to
the primary.

A check waits at most ``check_timeout_s`` for a replica's answer (its connection timeout,
at least 2 s): the monitor's query runs in a thread of its own, and a replica that has not
answered by then is marked down while the query goes on waiting; the next check waits for
that same query rather than opening another. A replica whose server is stopped (SIGSTOP,
a frozen VM) never enforces its own ``statement_timeout`` and its kernel still
acknowledges every packet, so no server or TCP timeout would end the wait; the monitor
connection still has a ``statement_timeout`` for a server that answers but is stuck.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as Late
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from voirie.errors import StoreError
from voirie.settings import StoreSettings
from voirie.store.postgis import (
    KEEPALIVES,
    Connection,
    IdleCheck,
    PostgisStore,
    describe,
    serve_waiters,
)

T = TypeVar("T")
State = Literal["starting", "ok", "lagging", "down", "not_a_replica"]
STATES: tuple[State, ...] = ("starting", "ok", "lagging", "down", "not_a_replica")
PRIMARY = "primary"
# A replica's read waits at most this long for a connection before the primary answers it.
REPLICA_POOL_TIMEOUT_S = 1.0
# Samples of the primary's WAL position kept to date a replica's replay position.
HISTORY_S = 600.0
_LSN = "pg_wal_lsn_diff({}, '0/0')::bigint"
_PRIMARY_LSN = f"SELECT {_LSN.format('pg_current_wal_lsn()')}"
_REPLICA_LSN = (
    f"SELECT pg_is_in_recovery(), {_LSN.format('pg_last_wal_replay_lsn()')}, "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END"
)

log = logging.getLogger(__name__)

# What a replica's monitor query finds: in recovery, replayed WAL position, replay paused.
Position = tuple[bool, int | None, bool | None]


@dataclass(frozen=True)
class ReplicaStatus:
    """What the last check found: state, lag in seconds and in WAL bytes (None when not
    measured), whether replay is paused, and why it is not used (None when it is)."""

    name: str
    state: State
    lag_s: float | None = None
    lag_bytes: int | None = None
    replay_paused: bool | None = None
    detail: str | None = None


class Replica:
    """One replica: its pool for reads, its monitor connection and its last status."""

    def __init__(self, url: str, max_size: int, connect_timeout_s: int, options: str) -> None:
        self.url = url
        self.name = describe(url)
        self.connect_timeout_s = max(2, connect_timeout_s)
        checked = IdleCheck()
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            name=f"voirie-read-{self.name}",
            kwargs={
                "application_name": "voirie-read",
                "connect_timeout": self.connect_timeout_s,
                "options": options,
                "autocommit": True,
                **KEEPALIVES,
            },
            configure=checked.stamp,
            check=checked,
            timeout=REPLICA_POOL_TIMEOUT_S,
            reconnect_timeout=REPLICA_POOL_TIMEOUT_S,
            reconnect_failed=serve_waiters,
        )
        checked.pool = self.pool
        self.pool.open(wait=False)  # a replica down at start must not stop the server
        self.status = ReplicaStatus(self.name, "starting")
        self.check_timeout_s = float(self.connect_timeout_s)
        self._monitor: Connection | None = None
        self._asking: Future[Position] | None = None

    def check(self, history: Sequence[tuple[float, int]], max_lag_s: float) -> ReplicaStatus:
        """Measure the replica against the primary's WAL samples (oldest first) and keep
        the answer as its status; down when it does not answer within ``check_timeout_s``."""
        try:
            in_recovery, replayed, paused = self._ask().result(timeout=self.check_timeout_s)
        except Late:
            self.status = ReplicaStatus(
                self.name, "down", detail=f"no answer within {self.check_timeout_s:g} s"
            )
            return self.status
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.status = ReplicaStatus(self.name, "down", detail=reason)
            return self.status
        if not in_recovery:
            self.status = ReplicaStatus(
                self.name,
                "not_a_replica",
                detail="not in recovery (a primary, or a promoted replica): not used for reads",
            )
            return self.status
        lag_s, lag_bytes = lag(history, replayed, time.monotonic())
        state: State = "ok" if lag_s is not None and lag_s <= max_lag_s else "lagging"
        detail = None
        if lag_s is None:
            detail = "lag unknown (no WAL position of the primary yet)"
        elif state == "lagging":
            detail = f"{lag_s:.1f} s behind the primary (over {max_lag_s:g} s)"
        self.status = ReplicaStatus(self.name, state, lag_s, lag_bytes, paused, detail)
        return self.status

    def _ask(self) -> Future[Position]:
        """The monitor query in flight (one that has not answered yet), else a new one,
        each in a daemon thread of its own: a query that never returns holds no other
        check and no process exit."""
        if self._asking is not None and not self._asking.done():
            return self._asking
        asking: Future[Position] = Future()

        def run() -> None:
            try:
                asking.set_result(self._position())
            except BaseException as exc:  # handed to the check waiting for it
                asking.set_exception(exc)

        self._asking = asking
        threading.Thread(target=run, name=f"voirie-check-{self.name}", daemon=True).start()
        return asking

    def _position(self) -> Position:
        """The monitor query on the monitor connection (opened, or opened again after an
        error, here), within the server's statement timeout."""
        try:
            return self._query()
        except psycopg.Error:
            self._drop_monitor()
            raise

    def _query(self) -> Position:
        if self._monitor is None or self._monitor.closed:
            timeout_ms = round(self.check_timeout_s * 1000)
            self._monitor = psycopg.connect(
                self.url,
                autocommit=True,
                application_name="voirie-read-monitor",
                connect_timeout=self.connect_timeout_s,
                options=f"-c statement_timeout={timeout_ms}",
                **KEEPALIVES,  # type: ignore[arg-type]
            )
        row = self._monitor.execute(_REPLICA_LSN).fetchone()
        assert row is not None
        in_recovery, replayed, paused = row
        return (
            bool(in_recovery),
            None if replayed is None else int(cast(int, replayed)),
            None if paused is None else bool(paused),
        )

    def failed(self, exc: Exception) -> None:
        """A read met the replica down: no more public reads until a check finds it well."""
        self.status = ReplicaStatus(self.name, "down", detail=f"a read failed: {exc}")

    def _drop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None

    def close(self) -> None:
        """Close the replica's pool, and its monitor connection unless a query still
        waits on it (its daemon thread ends with the process)."""
        if self._asking is None or self._asking.done():
            self._drop_monitor()
        self.pool.close()


def lag(
    history: Sequence[tuple[float, int]], replayed: int | None, now: float
) -> tuple[float | None, int | None]:
    """(seconds, bytes) a replica that replayed the WAL up to ``replayed`` is behind a
    primary sampled at ``history`` ((monotonic instant, WAL position), oldest first).

    The seconds are how long ago the primary first held a position beyond ``replayed``
    (a lower bound, short by at most one check interval); zero when the replica replayed
    the newest sample. None when there is nothing to compare (no sample, no position)."""
    if not history or replayed is None:
        return None, None
    newest = history[-1][1]
    if replayed >= newest:
        return 0.0, 0
    ahead = next(at for at, position in history if position > replayed)
    return max(0.0, now - ahead), newest - replayed


class Pin:
    """The node one public request reads from: chosen at its first read, kept to its
    last, the primary from the moment its replica fails."""

    __slots__ = ("chosen", "replica")

    def __init__(self) -> None:
        self.chosen = False
        self.replica: Replica | None = None

    @property
    def on_replica(self) -> bool:
        """Whether the request has read (or will read) a replica."""
        return self.replica is not None

    def to_primary(self) -> None:
        """Read the rest of the request on the primary."""
        self.chosen, self.replica = True, None


_PIN: ContextVar[Pin | None] = ContextVar("voirie_read_pin", default=None)


@contextmanager
def public_reads() -> Iterator[Pin]:
    """Within this scope (one public request), reads may go to a replica, all to the
    same one. Outside it, every read is on the primary."""
    pin = Pin()
    token = _PIN.set(pin)
    try:
        yield pin
    finally:
        _PIN.reset(token)


class ReplicatedStore(PostgisStore):
    """The primary's PostGIS store, with public reads served by replicas that keep up."""

    def __init__(
        self,
        url: str,
        read_urls: Sequence[str],
        *,
        min_size: int = 1,
        max_size: int = 8,
        pool_timeout_s: float = 3.0,
        connect_timeout_s: int = 2,
        statement_timeout_ms: int = 60_000,
        max_lag_s: float = 5.0,
        check_interval_s: float = 1.0,
    ) -> None:
        super().__init__(
            url,
            min_size=min_size,
            max_size=max_size,
            pool_timeout_s=pool_timeout_s,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
        )
        options = f"-c statement_timeout={statement_timeout_ms} -c jit=off"
        self.replicas = tuple(
            Replica(read_url, max_size, connect_timeout_s, options) for read_url in read_urls
        )
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        # Public requests read by each node (the primary counts those no replica took).
        self.requests_by_node: dict[str, int] = {PRIMARY: 0} | {r.name: 0 for r in self.replicas}
        self._counting = threading.Lock()
        self._turn = itertools.count()
        self._history: deque[tuple[float, int]] = deque()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="voirie-replicas", daemon=True)
        self._monitor.start()

    def statuses(self) -> tuple[ReplicaStatus, ...]:
        """Each replica's status from its last check."""
        return tuple(r.status for r in self.replicas)

    def check_replicas(self) -> tuple[ReplicaStatus, ...]:
        """Sample the primary's WAL position, then measure every replica against it."""
        try:
            with self.pool.connection() as conn:
                found = conn.execute(_PRIMARY_LSN).fetchone()
            now = time.monotonic()
            if found is not None:
                self._history.append((now, int(cast(int, found[0]))))
            while self._history and now - self._history[0][0] > HISTORY_S:
                self._history.popleft()
        except (PoolTimeout, psycopg.Error) as exc:
            # The primary is down: the replicas are measured against what it last wrote.
            log.debug("read replicas: the primary's WAL position is unknown: %s", exc)
        history = tuple(self._history)
        before = self.statuses()
        after = tuple(r.check(history, self.max_lag_s) for r in self.replicas)
        for old, new in zip(before, after, strict=True):
            if old.state != new.state:  # once per change, not once per check
                level = logging.INFO if new.state == "ok" else logging.WARNING
                log.log(
                    level, "read replica %s: %s (%s)", new.name, new.state, new.detail or "in use"
                )
        return after

    def _watch(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.check_replicas()
            except Exception:  # the monitor must outlive any one bad check
                log.exception("read replicas: check failed")
            self._stop.wait(max(0.0, self.check_interval_s - (time.monotonic() - started)))

    def _choose(self) -> Replica | None:
        """A replica that keeps up, in turn; None (the primary) when none does."""
        usable = [r for r in self.replicas if r.status.state == "ok"]
        chosen = usable[next(self._turn) % len(usable)] if usable else None
        self._count(chosen.name if chosen else PRIMARY)
        return chosen

    def _count(self, node: str) -> None:
        with self._counting:
            self.requests_by_node[node] += 1

    def _retrying(self, work: Callable[[Connection], T]) -> T:
        """A read on the request's pinned replica inside ``public_reads()``, else (or when
        that replica fails) on the primary with the primary's retries."""
        pin = _PIN.get()
        if pin is None:
            return super()._retrying(work)
        if not pin.chosen:
            pin.chosen, pin.replica = True, self._choose()
        replica = pin.replica
        if replica is None:
            return super()._retrying(work)
        try:
            with replica.pool.connection() as conn:
                return work(conn)
        except psycopg.errors.QueryCanceled as exc:
            raise self.unavailable(exc) from exc  # over the statement timeout: not a failover
        except psycopg.errors.SerializationFailure:
            pass  # cancelled by a conflict with replay: the primary answers this request
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("read replica %s failed, reading the primary: %s", replica.name, exc)
            replica.failed(exc)
        pin.to_primary()
        self._count(PRIMARY)
        return super()._retrying(work)

    def close(self) -> None:
        """Stop the monitor, close the replicas' pools, then the primary's."""
        self._stop.set()
        self._monitor.join(timeout=10)
        for replica in self.replicas:
            replica.close()
        super().close()


def replicated_store(settings: StoreSettings) -> ReplicatedStore:
    """The primary of ``VOIRIE_DATABASE_URL`` with the replicas of
    ``VOIRIE_READ_DATABASE_URL`` (replicas need a PostGIS primary)."""
    url = settings.database_url
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            "VOIRIE_READ_DATABASE_URL: read replicas need a PostgreSQL primary in "
            f"VOIRIE_DATABASE_URL, not {url!r}"
        )
    return ReplicatedStore(
        url,
        settings.read_urls(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        pool_timeout_s=settings.pool_timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
        statement_timeout_ms=settings.statement_timeout_ms,
        max_lag_s=settings.read_max_lag_s,
        check_interval_s=settings.read_check_interval_s,
    )
