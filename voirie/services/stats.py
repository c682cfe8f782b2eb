"""The statistics dashboard (issue 16 item 6): backlog, delays and SLA compliance, by team,
zone, service and ISO week.

One set-based read (``Store.incident_timings``, on both backends): the incidents reported
in the period, one row each with the moments kept on it (first acknowledgement, first
resolution: migration 0019), and the older open backlog already counted per team, service
and zone by the database; then one vectorized pass in pandas per table (the medians and
percentiles need the period's rows); nothing loops over incidents and nothing reads the
history.

The measures, for a group of incidents:

- **backlog**: open now, whatever their age; **overdue**: open and past their due date;
- **reported**: first reported in the period (the last ``weeks`` weeks);
- **time to acknowledge**: first report to the first status change (the team's first
  answer), and **time to resolve**: first report to the first move to resolved or closed,
  in hours, median and 90th percentile (linear interpolation) over the incidents reported
  in the period that got there;
- **SLA compliance**: of the incidents reported in the period whose outcome is known
  (resolved, or still open past their due date), the share resolved by their due date;
  open incidents not yet due are not counted either way.

An agent sees the figures of their own teams only (``Principal.visible_teams``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pandas.core.groupby import DataFrameGroupBy

from voirie.model import OPEN_STATUSES
from voirie.services.auth import Principal
from voirie.services.pipeline import Pipeline

Dimension = Literal["team", "zone", "service", "week"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
DEFAULT_WEEKS = 12
MAX_WEEKS = 104
MEASURES = (
    "backlog",
    "overdue",
    "reported",
    "ack_median_h",
    "ack_p90_h",
    "resolve_median_h",
    "resolve_p90_h",
    "sla_met",
    "sla_known",
    "sla_pct",
)
"""The columns of every table after ``key`` and ``label``."""
_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
_HOUR = np.timedelta64(1, "h")
_UNKNOWN_ZONE = "?"


@dataclass(frozen=True)
class Dashboard:
    """The figures of one period: totals and one table per dimension."""

    since: datetime
    now: datetime
    weeks: int
    totals: dict[str, float | None]
    tables: dict[Dimension, pd.DataFrame]


def dashboard(
    pipeline: Pipeline, principal: Principal, now: datetime, weeks: int = DEFAULT_WEEKS
) -> Dashboard:
    """The dashboard of the last ``weeks`` weeks up to ``now``, as ``principal`` may see it."""
    city = pipeline.city
    since = now - timedelta(weeks=weeks)
    visible = principal.visible_teams
    read = pipeline.store.incident_timings(
        city.jurisdiction_id,
        city.config.territory.layer,
        since,
        now,
        _OPEN,
        None if visible is None else sorted(visible),
    )
    facts = pd.concat(
        [_facts(read.period, now, since, city.config.timezone), _backlog_facts(read.backlog)],
        ignore_index=True,
    )
    zones = pd.concat([read.period[["zone", "zone_name"]], read.backlog[["zone", "zone_name"]]])
    names = {
        "team": {code: team.name for code, team in city.teams.items()},
        "service": {code: service.name for code, service in city.services.items()},
        "zone": dict(zip(zones["zone"].fillna(_UNKNOWN_ZONE), zones["zone_name"], strict=True)),
    }
    tables: dict[Dimension, pd.DataFrame] = {}
    for dimension in DIMENSIONS:
        chosen = facts if dimension != "week" else facts[facts["reported"]]
        table = _measures(chosen.groupby(dimension)).sort_index(key=_natural)
        labels = names.get(dimension, {})
        table.insert(0, "label", [str(labels.get(k) or k) for k in table.index])
        tables[dimension] = table.rename_axis("key").reset_index()
    total = _measures(facts.assign(all="all").groupby("all")).iloc[0]
    totals = {name: (None if pd.isna(total[name]) else float(total[name])) for name in MEASURES}
    return Dashboard(since, now, weeks, totals, tables)


def _facts(rows: pd.DataFrame, now: datetime, since: datetime, timezone: str) -> pd.DataFrame:
    """One row per incident of the period: its groups and what each measure counts of it."""
    first = _instants(rows["first_reported_at"])
    due, acknowledged, resolved = (
        _instants(rows[name]) for name in ("due_at", "acknowledged_at", "resolved_at")
    )
    moment, start = np.datetime64(_naive(now)), np.datetime64(_naive(since))
    reported = first >= start
    is_open = rows["status"].isin(_OPEN).to_numpy()
    known_due = ~np.isnat(due)
    on_time = ~np.isnat(resolved) & known_due & (resolved <= due)
    late_open = is_open & known_due & (due < moment)
    iso = pd.Series(first).dt.tz_localize("UTC").dt.tz_convert(timezone).dt.isocalendar()
    return pd.DataFrame(
        {
            "team": rows["team"].astype(str),
            "zone": rows["zone"].fillna(_UNKNOWN_ZONE).astype(str),
            "service": rows["service_code"].astype(str),
            "week": iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2),
            "open": is_open.astype(int),
            "overdue": late_open.astype(int),
            "reported": reported,
            "ack_h": np.where(reported, (acknowledged - first) / _HOUR, np.nan),
            "resolve_h": np.where(reported, (resolved - first) / _HOUR, np.nan),
            "sla_met": reported & on_time,
            "sla_known": reported & known_due & (~np.isnat(resolved) | (due < moment)),
        }
    )


def _backlog_facts(backlog: pd.DataFrame) -> pd.DataFrame:
    """One row per team, service and zone of the open incidents reported before the period:
    they count in the backlog and overdue sums and in no delay (not reported in the period,
    so no week either)."""
    n = len(backlog)
    return pd.DataFrame(
        {
            "team": backlog["team"].astype(str),
            "zone": backlog["zone"].fillna(_UNKNOWN_ZONE).astype(str),
            "service": backlog["service_code"].astype(str),
            "week": np.full(n, "", object),
            "open": backlog["backlog"].astype(int),
            "overdue": backlog["overdue"].astype(int),
            "reported": np.zeros(n, bool),
            "ack_h": np.full(n, np.nan),
            "resolve_h": np.full(n, np.nan),
            "sla_met": np.zeros(n, bool),
            "sla_known": np.zeros(n, bool),
        }
    )


def _measures(groups: DataFrameGroupBy[Any, Any]) -> pd.DataFrame:
    """The measures of each group (one vectorized aggregation per column)."""
    table = pd.DataFrame(
        {
            "backlog": groups["open"].sum(),
            "overdue": groups["overdue"].sum(),
            "reported": groups["reported"].sum(),
            "ack_median_h": groups["ack_h"].median(),
            "ack_p90_h": groups["ack_h"].quantile(0.9),
            "resolve_median_h": groups["resolve_h"].median(),
            "resolve_p90_h": groups["resolve_h"].quantile(0.9),
            "sla_met": groups["sla_met"].sum(),
            "sla_known": groups["sla_known"].sum(),
        }
    )
    known = table["sla_known"].where(table["sla_known"] > 0)
    table["sla_pct"] = 100 * table["sla_met"] / known
    for name in ("ack_median_h", "ack_p90_h", "resolve_median_h", "resolve_p90_h", "sla_pct"):
        table[name] = table[name].astype(float).round(1)
    for name in ("backlog", "overdue", "reported", "sla_met", "sla_known"):
        table[name] = table[name].astype(int)
    return table


def _natural(keys: pd.Index) -> pd.Index:
    """Sort keys with numbers in numeric order (arrondissement 2 before 10)."""
    natural: pd.Index = pd.Index(
        [(0, int(k), "") if k.isdigit() else (1, 0, k) for k in keys.astype(str)]
    )
    return natural


def _instants(values: pd.Series) -> np.ndarray:
    """Stored instants (datetimes or GeoPackage text) as naive UTC ``datetime64[ns]``."""
    return (
        pd.to_datetime(values, utc=True, format="ISO8601")
        .dt.tz_localize(None)
        .to_numpy("datetime64[ns]")
    )


def _naive(moment: datetime) -> pd.Timestamp:
    """An aware instant as a naive UTC timestamp."""
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None)
