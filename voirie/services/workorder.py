"""The round sheet (feuille de tournée, issue 16 item 5): a team's incidents for a day,
in the order a crew can visit them.

The round holds the team's incidents open now and reported by the end of that day, the
most urgent ``MAX_STOPS`` of them (priority, then due date, then age): a day's work, not
the whole backlog. They are ordered by ``route_order`` in the city's metric CRS, from the
team's depot (``teams[].depot`` in city.yaml) when it has one, else from the westmost
stop; the sheet says which. Each stop carries what the crew needs on the spot: the
address, the category, the first report's description, the due date and the distance
from the previous stop. An agent may print their own teams' rounds only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd

from voirie.errors import InvalidInput
from voirie.model import OPEN_STATUSES
from voirie.services.auth import Action, Principal
from voirie.services.pipeline import Pipeline
from voirie.services.route_order import order_stops
from voirie.store.selection import Selection

MAX_STOPS = 40
"""The stops of one round: about what a crew visits in a working day."""
_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))


@dataclass(frozen=True)
class Stop:
    """One incident on the round, in visiting order."""

    number: int
    incident_id: int
    service: str
    address: str
    description: str
    status: str
    due_at: datetime | None
    overdue: bool
    report_count: int
    lon: float
    lat: float
    x: float
    y: float
    leg_m: float


@dataclass(frozen=True)
class RoundSheet:
    """A team's round for a day: its stops in order and where it starts."""

    team: str
    team_name: str
    day: date
    from_depot: bool
    start_xy: tuple[float, float]
    stops: list[Stop]
    waiting: int
    length_m: float
    metric_crs: str


def round_sheet(
    pipeline: Pipeline, principal: Principal, team: str, day: date, now: datetime
) -> RoundSheet:
    """The round of ``team`` on ``day`` (city time); ``Forbidden`` for another team's
    agent, ``InvalidInput`` for an unknown team."""
    city = pipeline.city
    if team not in city.teams:
        raise InvalidInput(f"team: unknown team {team!r} in {city.config.name}", field="team")
    principal.check(Action.READ, team)
    zone = ZoneInfo(city.config.timezone)
    day_end = datetime.combine(day + timedelta(days=1), time(), zone)
    incidents = pipeline.reads.incidents(Selection(statuses=_OPEN, teams=(team,), end=day_end))
    due = pd.to_datetime(incidents["due_at"], utc=True)
    urgent = (
        incidents.assign(
            due_ts=due, first_ts=pd.to_datetime(incidents["first_reported_at"], utc=True)
        )
        .sort_values(["priority", "due_ts", "first_ts"], na_position="last")
        .head(MAX_STOPS)
    )
    metric = city.config.metric_crs
    xy = _metric(urgent["lon"].to_numpy(float), urgent["lat"].to_numpy(float), metric)
    depot = city.teams[team].depot
    start = (
        None if depot is None else _metric(np.array([depot[0]]), np.array([depot[1]]), metric)[0]
    )
    order = order_stops(xy, start)
    chosen, points = urgent.iloc[order], xy[order]
    first_xy = start if start is not None else (points[0] if len(points) else np.zeros(2))
    legs = np.hypot(*np.diff(np.vstack([first_xy, points]), axis=0).T)
    texts = _first_reports(pipeline, chosen["origin_report_id"].astype(int).tolist())
    stops = [
        Stop(
            number=n + 1,
            incident_id=int(row.incident_id),
            service=str(row.service_name or row.service_code),
            address=texts.get(int(row.origin_report_id), ("", ""))[0] or str(row.street_name or ""),
            description=texts.get(int(row.origin_report_id), ("", ""))[1],
            status=str(row.status),
            due_at=None if pd.isna(row.due_ts) else row.due_ts.to_pydatetime(),
            overdue=bool(not pd.isna(row.due_ts) and row.due_ts < pd.Timestamp(now)),
            report_count=int(row.report_count),
            lon=float(row.lon),
            lat=float(row.lat),
            x=float(points[n][0]),
            y=float(points[n][1]),
            leg_m=float(legs[n]),
        )
        for n, row in enumerate(chosen.itertuples(index=False))
    ]
    return RoundSheet(
        team=team,
        team_name=city.teams[team].name,
        day=day,
        from_depot=start is not None,
        start_xy=(float(first_xy[0]), float(first_xy[1])),
        stops=stops,
        waiting=len(incidents) - len(stops),
        length_m=float(legs.sum()),
        metric_crs=metric,
    )


def _metric(lon: np.ndarray, lat: np.ndarray, crs: str) -> np.ndarray:
    """WGS84 points as n×2 coordinates in metres in ``crs``."""
    points = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326).to_crs(crs)
    return np.column_stack([points.x.to_numpy(), points.y.to_numpy()])


def _first_reports(pipeline: Pipeline, report_ids: list[int]) -> dict[int, tuple[str, str]]:
    """(address, description) of each incident's first report."""
    if not report_ids:
        return {}
    reports = pipeline.reads.reports(Selection(ids=tuple(report_ids)))
    return {
        int(r.report_id): (str(r.address or ""), str(r.description or ""))
        for r in reports.itertuples(index=False)
    }
