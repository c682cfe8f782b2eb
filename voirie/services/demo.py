"""The living demo (issue 16 item 7): the bundled history placed relative to today, and a
few months of a working city simulated over it.

The bundled DansMaRue extract is months old and every incident of it is ``new``: on a
fresh demo nothing would be overdue, no chart of delays would have data, and the default
windows would show history frozen in the past. ``relive`` moves the reports' dates so that
the newest day is today (each report at a time of day drawn from working hours, none in
the future); ``simulate_work`` then plays the teams' side: each incident is acknowledged,
sometimes started, and resolved after a delay drawn around its SLA (about one in four
late, a few forgotten), one in three closed two days later; what falls after now has not
happened yet, so recent incidents are still open and some are already overdue. The draws
are seeded: the same day gives the same demo.

The simulated history is written as the workflow writes it (``StatusChange`` words, one
``status_changed`` event per step, the incident's status and ``updated_at``, its
acknowledged and resolved moments refreshed from those events), in one
transaction, without notifications: replayed history must not mail the teams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.model import EventKind, Status
from voirie.services.reads import Reads
from voirie.services.workflow import StatusChange
from voirie.store.base import RESHAPE_COLUMNS, Store

DEMO_ACTOR = "démo"
DEMO_SEED = 16
# Reports are made between 07:00 and 21:00, local time.
_FIRST_MINUTE, _LAST_MINUTE = 7 * 60, 21 * 60
# Acknowledging takes hours (mean 18 h); resolving takes a share of the SLA drawn from a
# log-normal of median 0.6 and spread 0.7: about 23 % of incidents are resolved late.
_ACK_SHAPE, _ACK_SCALE_H = 1.5, 12.0
_RESOLVE_MEDIAN, _RESOLVE_SPREAD = 0.6, 0.7
# Incidents without SLA get this many hours; half go through in_progress; a resolved
# incident is closed this many hours later, one in three.
_NO_SLA_H = 120.0
_STARTED_SHARE, _CLOSED_SHARE, _CLOSE_AFTER_H = 0.5, 1 / 3, 48.0
# Some incidents are forgotten (never resolved): the old backlog every city has.
_FORGOTTEN_SHARE = 0.04


@dataclass(frozen=True)
class WorkDone:
    """What the simulation wrote: the number of events and incidents per status now."""

    events: int
    statuses: dict[str, int]


def relive(
    table: pd.DataFrame, now: datetime, timezone: str, seed: int = DEMO_SEED
) -> pd.DataFrame:
    """DansMaRue rows (``datedecl`` a date) with their dates moved by whole days so that the
    newest is today in ``timezone``, each at a drawn local time of day, none after ``now``."""
    days = pd.to_datetime(table["datedecl"], format="ISO8601").dt.normalize()
    today = pd.Timestamp(now).tz_convert(timezone).tz_localize(None).normalize()
    minutes = np.random.default_rng(seed).integers(_FIRST_MINUTE, _LAST_MINUTE, len(table))
    wall = days + (today - days.max()) + pd.to_timedelta(minutes, unit="m")
    local = wall.dt.tz_localize(
        timezone, ambiguous=np.zeros(len(wall), bool), nonexistent="shift_forward"
    )
    cap = pd.Timestamp(now).tz_convert("UTC")
    moment = local.dt.tz_convert("UTC")
    moment = moment.mask(moment > cap, cap)
    moved = table.copy()
    moved["datedecl"] = moment.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    local_day = moment.dt.tz_convert(timezone)
    for column, values in (
        ("anneedecl", local_day.dt.year.astype(str)),
        ("moisdecl", local_day.dt.month.astype(str)),
        ("mois_annee_decla", local_day.dt.strftime("%Y-%m")),
    ):
        if column in moved:
            moved[column] = values
    return moved


def simulate_work(
    store: Store, city: City, reads: Reads, now: datetime, seed: int = DEMO_SEED
) -> WorkDone:
    """Play the teams' work on every ``new`` incident up to ``now``, in one transaction."""
    incidents = reads.incidents()
    incidents = incidents[incidents["status"] == Status.NEW.value]
    n = len(incidents)
    rng = np.random.default_rng(seed)
    first, due = (_utc_naive(incidents[name]) for name in ("first_reported_at", "due_at"))
    sla_h = np.where(np.isnat(due), _NO_SLA_H, (due - first) / np.timedelta64(1, "h"))
    ack_h = rng.gamma(_ACK_SHAPE, _ACK_SCALE_H, n)
    factor = rng.lognormal(math.log(_RESOLVE_MEDIAN), _RESOLVE_SPREAD, n)
    resolve_h = np.maximum(sla_h * factor, ack_h + 1.0)
    ack_at = first + _hours(ack_h)
    start_at = ack_at + _hours((resolve_h - ack_h) / 2)
    resolve_at = first + _hours(resolve_h)
    resolve_at[rng.random(n) < _FORGOTTEN_SHARE] = np.datetime64("NaT")
    close_at = resolve_at + _hours(np.full(n, _CLOSE_AFTER_H))
    started = rng.random(n) < _STARTED_SHARE
    closes = rng.random(n) < _CLOSED_SHARE
    moment = np.datetime64(pd.Timestamp(now).tz_convert("UTC").tz_localize(None))
    ids = incidents["incident_id"].to_numpy()
    ack, res = Status.ACKNOWLEDGED, Status.RESOLVED
    steps = [
        (ack_at <= moment, ack_at, Status.NEW, ack),
        (started & (start_at <= moment), start_at, ack, Status.IN_PROGRESS),
        (started & (resolve_at <= moment), resolve_at, Status.IN_PROGRESS, res),
        (~started & (resolve_at <= moment), resolve_at, ack, res),
        (closes & (close_at <= moment), close_at, res, Status.CLOSED),
    ]
    status = np.full(n, Status.NEW.value, object)
    updated = _utc_naive(incidents["updated_at"])
    events = []
    for done, at, previous, target in steps:
        status[done], updated[done] = target.value, at[done]
        events.append(
            pd.DataFrame(
                {
                    "entity_id": ids[done],
                    "reason": StatusChange(previous, target).words(),
                    "at": at[done],
                }
            )
        )
    rows = pd.concat(events, ignore_index=True)
    rows["at"] = pd.to_datetime(rows["at"]).dt.tz_localize("UTC")
    changed = pd.DataFrame({name: pd.Series([None] * n, dtype=object) for name in RESHAPE_COLUMNS})
    changed["id"], changed["status"] = ids, status
    changed["updated_at"] = pd.to_datetime(updated).tz_localize("UTC")
    with store.transaction(city.jurisdiction_id) as uow:
        rows.insert(0, "id", uow.tables.reserve_ids("events", len(rows)))
        rows["jurisdiction_id"] = city.jurisdiction_id
        rows["entity"], rows["kind"], rows["actor"] = (
            "incident",
            EventKind.STATUS_CHANGED.value,
            DEMO_ACTOR,
        )
        uow.tables.insert("events", rows)
        uow.incidents.reshape(changed)
        uow.incidents.refresh_timings(ids)
    counts = pd.Series(status).value_counts()
    return WorkDone(len(rows), {str(k): int(v) for k, v in counts.items()})


def _utc_naive(instants: pd.Series) -> np.ndarray:
    """Stored instants as naive UTC ``datetime64[ns]`` (NaT where missing)."""
    return pd.to_datetime(instants, utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]")


def _hours(hours: np.ndarray) -> np.ndarray:
    """Durations in hours as ``timedelta64[ns]``."""
    return (hours * 3_600e9).astype("timedelta64[ns]")
