"""Prometheus metrics at ``/metrics``: requests by route, the store's backlog, the pool,
the read replicas.

Request counts and latencies are labelled by route template (``/api/v1/incidents/{id}``,
never the raw path, so that a scan of made-up URLs cannot grow the series). The store's
figures (reports stored, notifications waiting in the outbox) are read when scraped;
the pool's are this process's.

With several workers (``voirie serve --workers N``) each is its own process: the server
sets ``PROMETHEUS_MULTIPROC_DIR`` before they start, every worker writes its counters
there and whichever worker answers a scrape sums them all (``prometheus_client``'s
multiprocess mode). The pool figures are then the answering worker's only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from voirie.notify.outbox import PENDING
from voirie.services.pipeline import Pipeline
from voirie.store.replicas import STATES, ReplicatedStore

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"

REQUESTS = Counter(
    "voirie_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "voirie_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

router = APIRouter(tags=["operations"])


class _Pool(Protocol):
    def get_stats(self) -> dict[str, int]: ...


class StoreCollector(Collector):
    """The store's figures, read at each scrape: reports stored, outbox backlog, and the
    connection pool of this process (PostGIS only)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store, j = self.pipeline.store, self.pipeline.city.jurisdiction_id
        yield GaugeMetricFamily(
            "voirie_reports_stored",
            "Reports stored (ingested through the API or imported)",
            value=store.count("reports", j),
        )
        yield GaugeMetricFamily(
            "voirie_outbox_backlog",
            "Notifications waiting in the outbox (pending delivery or retry)",
            value=len(store.lookup("outbox", j, "status", [PENDING])),
        )
        pool: _Pool | None = getattr(store, "pool", None)
        if pool is not None:
            stats = pool.get_stats()
            family = GaugeMetricFamily(
                "voirie_pool_connections",
                "Database connections of this process's pool, by state",
                labels=["state", "pid"],
            )
            opened = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            for state, value in (
                ("open", opened),
                ("idle", idle),
                ("in_use", opened - idle),
                ("max", stats.get("pool_max", 0)),
                ("waiting_requests", stats.get("requests_waiting", 0)),
            ):
                family.add_metric([state, str(os.getpid())], value)
            yield family
        if isinstance(store, ReplicatedStore):
            yield from replica_families(store)


def replica_families(store: ReplicatedStore) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each read replica's state and lag from its last check, and where this process's
    public requests were read (``voirie.store.replicas``)."""
    up = GaugeMetricFamily(
        "voirie_replica_up", "1 when the read replica answered its last check", labels=["replica"]
    )
    used = GaugeMetricFamily(
        "voirie_replica_in_use",
        "1 when public reads go to the replica (answering, in recovery, within the maximum lag)",
        labels=["replica"],
    )
    state = GaugeMetricFamily(
        "voirie_replica_state", "The replica's state at its last check", labels=["replica", "state"]
    )
    lag_s = GaugeMetricFamily(
        "voirie_replica_lag_seconds",
        "How long ago the primary first held WAL the replica has not replayed",
        labels=["replica"],
    )
    lag_bytes = GaugeMetricFamily(
        "voirie_replica_lag_bytes",
        "WAL the replica has not replayed, from the primary's position",
        labels=["replica"],
    )
    paused = GaugeMetricFamily(
        "voirie_replica_replay_paused",
        "1 when the replica's WAL replay is paused",
        labels=["replica"],
    )
    for status in store.statuses():
        name = [status.name]
        up.add_metric(name, status.state not in ("down", "starting"))
        used.add_metric(name, status.state == "ok")
        for each in STATES:
            state.add_metric([status.name, each], status.state == each)
        if status.lag_s is not None:
            lag_s.add_metric(name, status.lag_s)
        if status.lag_bytes is not None:
            lag_bytes.add_metric(name, status.lag_bytes)
        if status.replay_paused is not None:
            paused.add_metric(name, status.replay_paused)
    yield from (up, used, state, lag_s, lag_bytes, paused)
    maximum = GaugeMetricFamily(
        "voirie_replica_max_lag_seconds",
        "VOIRIE_READ_MAX_LAG_S: a replica further behind gets no public read",
        value=store.max_lag_s,
    )
    requests = CounterMetricFamily(
        "voirie_public_reads",
        "Public requests of this process by the node that read them (primary: no replica "
        "kept up, or the replica failed during the request)",
        labels=["node", "pid"],
    )
    for node, count in store.requests_by_node.copy().items():
        requests.add_metric([node, str(os.getpid())], count)
    yield from (maximum, requests)


_Series = tuple[Counter, Histogram]
# Each (method, route, status) series, found once: ``labels`` takes a lock and builds its
# key on every call. Routes are templates, so the series are few.
_SERIES: dict[tuple[str, str, int], _Series] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    key = (method, route, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    series[0].inc()
    series[1].observe(seconds)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Requests by route, reports stored, outbox backlog and pool usage, in Prometheus'
    text format (every worker's counters summed in multiprocess mode)."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Everything())
    registry.register(StoreCollector(request.app.state.pipeline))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Everything(Collector):
    """The process's default registry (request metrics, process and Python figures)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from REGISTRY.collect()  # type: ignore[misc]
