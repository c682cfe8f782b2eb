"""Duplicate detection: each report joins the best-scored open incident it may belong to,
or opens a new one.

A report may join an incident when (1) the services allow it: the same service, or two
services of one group whose ``match`` is ``group`` (a sibling sub-category picked for the
same problem); a ``never`` service never shares an incident; (2) the incident's last report
is at most ``window_days`` old, or the incident is in hand (acknowledged, scheduled, in
progress: staff confirmed the problem and have not fixed it, so it attracts reports for as
long as it stays open; a resolved or closed incident is never a candidate); (3) the two
points are at most the reach apart: ``radius_m``, or ``radius_m x same_street_factor``
when both lie on the same street (same segment, or another segment of the same street
name). Reports placed along a street scatter along it: a strip of street twice the radius
long covers about the area of the radius's disc, so the longer reach along the street
does not raise the chance of a coincidental match. A street-scale service (snow on a
block, a dirty street: ``street_scale`` in city.yaml) reaches ``street_radius_m`` along
the same street when that is longer; on another street, or where no street is known, the
plain radius applies. Without a street layer, a report's
street is the one its address names (``gis/enrich.py``). (4) The incident began at most
``window_days`` after the report (its first report at most ``window_days`` later), in hand
or not: a report arriving out of time order (a history imported after going live, an app's
late upload) never joins an incident first reported long after it.

Among the incidents it may join, the report joins the one with the highest score, a
weighted mean in [0, 1] of proximity (1 - distance / reach), recency (1 - gap / window,
the gap being the report's distance in time to the incident's span from its first to its
last report, 0 inside it: reports in time order only ever see the gap to the last),
kinship (same service 1, sibling service 0.5) and place (same segment 1, same street 0.5,
no street known 0.5, other street 0). The link keeps the score and the reasons. Where the
city has a calibration (``dedupe.calibration``, ``gis/dedupe_score.py``), the reasons add
the likelihood that such a pair is a duplicate, and a candidate whose likelihood is below
the calibration's threshold is not joined.

The rule is the online one (reports taken in time order), so a bulk import, a
re-clustering and the same reports arriving one by one give the same incidents. Candidate
pairs and their static terms come from one vectorized STRtree query; the sequential pass
only walks those pairs, with no geometry work per report. ``attach_one`` decides for one
report over the few stored incidents around it (the per-report path, no DataFrame) with
the same rule helpers, so both give the same link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely

from voirie.city import DedupeScoring
from voirie.gis import dedupe_score
from voirie.model import IN_HAND_STATUSES
from voirie.values import naive_utc

NO_INCIDENT = -1
_NS_PER_DAY = 86_400 * 10**9

# Kinship of a report with what it joined.
KIN_NONE, KIN_SERVICE, KIN_GROUP = 0, 1, 2
# Place relation: no street known on one side, same segment, same street, another street.
PLACE_UNKNOWN, PLACE_SEGMENT, PLACE_STREET, PLACE_OTHER = 0, 1, 2, 3
_KIN_SCORE = np.array([0.0, 1.0, 0.5])
_PLACE_SCORE = np.array([0.5, 1.0, 0.5, 0.0])
_KIN_WORDS = np.array(["", "same service", "same group"], dtype=object)
_PLACE_WORDS = np.array(["", ", same segment", ", same street", ", other street"], dtype=object)
FOUNDER_REASON = "first report: opened the incident"
# Reports per chunk of ``cluster``: bounds the candidate pairs held at once.
CHUNK_SIZE = 20_000
# Wider than any city (metres): families of services this far apart never meet in a query.
_FAMILY_SHIFT_M = 10_000_000.0
# Added to the candidate query's distance: shifted coordinates lose a few micrometres, and
# the query must keep every pair the exact distance (``np.hypot``) then accepts.
_QUERY_SLACK_M = 0.01
_IN_HAND = [status.value for status in IN_HAND_STATUSES]
# Per pair, or one scalar for the one report of ``attach_one``.
_Codes = np.ndarray | int
_Flags = np.ndarray | np.bool_
_Numbers = np.ndarray | np.float64


@dataclass(frozen=True)
class Candidates:
    """The stored open incidents one report may join, as arrays (one entry each): what
    ``attach`` reads of ``incidents``, for ``attach_one``.

    ``x``/``y`` are metric; ``group`` and ``match`` those of the incident's service (None
    for a service the city does not know); ``last_reported_at`` and ``first_reported_at``
    are ``datetime64[ns]`` UTC (without ``first_reported_at``, no incident is taken to
    begin after the report); ``segment_id``/``street_name`` are None where unknown;
    ``status`` is the incident's. The order breaks ties as the order of ``incidents`` does
    in ``attach``.
    """

    incident_id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    service_code: np.ndarray
    group: np.ndarray
    match: np.ndarray
    segment_id: np.ndarray
    street_name: np.ndarray
    last_reported_at: np.ndarray
    status: np.ndarray
    first_reported_at: np.ndarray | None = None


@dataclass(frozen=True)
class NewReport:
    """What ``attach_one`` reads of one new report: its row of the batch ``attach`` reads.

    ``x``/``y`` are metric; the thresholds are those of ``DedupePolicy`` (``street_radius_m``
    0 for a service that is not street-scale); ``requested_at`` is tz-aware;
    ``segment_id``/``street_name`` are None where unknown.
    """

    x: float
    y: float
    service_code: str
    group: str
    match: str
    radius_m: float
    window_days: float
    requested_at: datetime
    segment_id: str | None
    street_name: str | None
    street_radius_m: float = 0.0


@dataclass(frozen=True)
class Link:
    """What one report joined: ``incident_id`` (``NO_INCIDENT`` when it opens one, then
    ``reason`` is ``FOUNDER_REASON`` and the score 1), the distance and time gap to it, the
    score, kinship and place codes, the words of ``reasons``, and the calibrated likelihood
    of the score (None for a founder or a city without calibration)."""

    incident_id: int
    distance_m: float
    gap_days: float
    score: float
    kin: int
    place: int
    reason: str
    likelihood: float | None = None


def _days(times: pd.Series) -> np.ndarray:
    """Tz-aware timestamps as float days since the epoch."""
    return _days_of(times.to_numpy(dtype="datetime64[ns]"))


def _days_of(stamps: np.ndarray) -> np.ndarray:
    """UTC ``datetime64`` values as float days since the epoch."""
    return stamps.astype("datetime64[ns]").astype(np.int64) / _NS_PER_DAY


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A text column as an object array (missing values as they come: None, NaN, NA)."""
    return frame[column].to_numpy(dtype=object)


def _concat(incidents: pd.DataFrame, reports: pd.DataFrame, column: str) -> np.ndarray:
    return np.concatenate([_text(incidents, column), _text(reports, column)])


def _codes(incidents: pd.DataFrame, reports: pd.DataFrame, column: str) -> np.ndarray:
    """A text column of the anchors as integer codes (-1 where missing), cheap to compare."""
    return pd.factorize(_concat(incidents, reports, column), use_na_sentinel=True)[0]


def _place(seg_a: _Codes, seg_b: _Codes, st_a: _Codes, st_b: _Codes) -> np.ndarray:
    """Place relation code of each pair from their segment and street codes (-1: none;
    one side may be a scalar, one report's)."""
    known = (st_a >= 0) & (st_b >= 0)
    same_street = known & (st_a == st_b)
    same_segment = same_street & (seg_a >= 0) & (seg_a == seg_b)
    return np.select(
        [same_segment, same_street, known],
        [PLACE_SEGMENT, PLACE_STREET, PLACE_OTHER],
        PLACE_UNKNOWN,
    ).astype(np.int64)


def _weights(scoring: DedupeScoring) -> np.ndarray:
    """Weights of proximity, recency, kinship and place, normalised to sum to 1."""
    weights = np.array([scoring.distance, scoring.time, scoring.service, scoring.street])
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _kinship(
    same_service: np.ndarray,
    same_group: np.ndarray,
    sharing_a: _Flags,
    sharing_b: np.ndarray,
    never_a: _Flags,
    never_b: np.ndarray,
) -> np.ndarray:
    """Kin code of each pair of services, ``KIN_NONE`` where they may not share an incident.

    Services of one family may: the same service, or services of one group whose match is
    ``group`` on both sides; a ``never`` service shares with nothing."""
    same_family = np.where(sharing_a, sharing_b & same_group, ~sharing_b & same_service)
    may = same_family & ~never_a & ~never_b
    return np.where(may, np.where(same_service, KIN_SERVICE, KIN_GROUP), KIN_NONE)


def _reach(
    radius: _Numbers, street_radius: _Numbers, place: np.ndarray, scoring: DedupeScoring
) -> np.ndarray:
    """How far each pair may lie apart: the radius; on one street, the radius times the
    factor, or the street radius of a street-scale service when that is longer."""
    on_street = (place == PLACE_SEGMENT) | (place == PLACE_STREET)
    along = np.maximum(radius * scoring.same_street_factor, street_radius)
    reach: np.ndarray = np.where(on_street, along, radius)
    return reach


def _street_radius(reports: pd.DataFrame) -> np.ndarray:
    """The reports' street radii (``street_radius_m``; 0 where the column is absent: no
    service of the batch is street-scale)."""
    if "street_radius_m" not in reports:
        return np.zeros(len(reports))
    return reports["street_radius_m"].fillna(0.0).to_numpy(float)


def _static_score(
    weights: np.ndarray,
    dist: np.ndarray,
    reach: np.ndarray,
    kin: np.ndarray,
    place: np.ndarray,
) -> np.ndarray:
    """Every term of the score but recency (which depends on the incident's last report)."""
    static: np.ndarray = (
        weights[0] * (1.0 - dist / reach)
        + weights[2] * _KIN_SCORE[kin]
        + weights[3] * _PLACE_SCORE[place]
    )
    return static


def _cut(scoring: DedupeScoring) -> float:
    """The lowest score a candidate needs to be joined: the score where the calibrated
    likelihood reaches the city's threshold (-inf without calibration)."""
    calibration = scoring.calibration
    if calibration is None:
        return -np.inf
    return dedupe_score.score_cut(
        calibration.scores, calibration.likelihoods, calibration.threshold
    )


def likelihoods(scoring: DedupeScoring, score: np.ndarray | float) -> np.ndarray:
    """The calibrated likelihood of each score (NaN without calibration)."""
    calibration = scoring.calibration
    if calibration is None:
        return np.full(np.shape(score), np.nan)
    return dedupe_score.likelihood(calibration.scores, calibration.likelihoods, score)


def _score(static: float, weights: np.ndarray, gap: float, window: float) -> float:
    """The whole score of a pair once the gap to the incident's span is known (recency 0
    beyond the window, where only an incident in hand may be)."""
    return float(static + weights[1] * max(1.0 - max(gap, 0.0) / window, 0.0))


def _in_hand(status: np.ndarray) -> np.ndarray:
    """Whether each incident is in hand (``model.IN_HAND_STATUSES``): it attracts reports
    beyond the window, for as long as it stays open."""
    return np.isin(status.astype(object), _IN_HAND)


def attach(
    reports: pd.DataFrame,
    incidents: pd.DataFrame,
    scoring: DedupeScoring,
    apart: Mapping[int, frozenset[tuple[int, int]]] | None = None,
) -> pd.DataFrame:
    """Decide the incident of every report.

    ``reports`` needs x, y (metres), service_code, group, match, requested_at, radius_m,
    window_days, segment_id and street_name (and street_radius_m where a service is
    street-scale); ``incidents`` (the open incidents already stored near them) needs
    incident_id, x, y, service_code, group, match, segment_id, street_name and
    last_reported_at (and status: without it, none is in hand; and first_reported_at:
    without it, none began after a report). ``apart`` maps report
    positions to marks ``(pair, side)``: a report never joins an incident holding the
    other side of one of its pairs (incidents staff marked "not duplicates", when
    re-clustering).

    Returns, aligned on ``reports``' index: ``incident_id`` (an existing incident, or
    ``NO_INCIDENT``), ``leader`` (the position of the report that opens the new incident
    this one belongs to, or ``NO_INCIDENT``), ``distance_m``, ``gap_days``, ``score``,
    ``kin`` and ``place`` (codes of this module) of what it joined, and ``likelihood``
    (``likelihoods`` of the score; NaN for a report that opens an incident). Stored
    incidents may carry a ``marks`` column (the marks of their reports).
    """
    n_rep, n_inc = len(reports), len(incidents)
    incident_col = np.full(n_rep, NO_INCIDENT, dtype=np.int64)
    leader_col = np.full(n_rep, NO_INCIDENT, dtype=np.int64)
    dist_col, gap_col, score_col = np.zeros(n_rep), np.zeros(n_rep), np.ones(n_rep)
    kin_col = np.full(n_rep, KIN_NONE, dtype=np.int64)
    place_col = np.full(n_rep, PLACE_UNKNOWN, dtype=np.int64)

    def result() -> pd.DataFrame:
        joined = kin_col != KIN_NONE
        return pd.DataFrame(
            {
                "incident_id": incident_col,
                "leader": leader_col,
                "distance_m": dist_col,
                "gap_days": gap_col,
                "score": score_col,
                "kin": kin_col,
                "place": place_col,
                "likelihood": np.where(joined, likelihoods(scoring, score_col), np.nan),
            },
            index=reports.index,
        )

    if n_rep == 0:
        return result()
    weights, cut = _weights(scoring), _cut(scoring)
    # Anchors are the existing incidents followed by the batch's own reports.
    ax = np.concatenate([incidents["x"].to_numpy(float), reports["x"].to_numpy(float)])
    ay = np.concatenate([incidents["y"].to_numpy(float), reports["y"].to_numpy(float)])
    a_service = _codes(incidents, reports, "service_code")
    a_group = _codes(incidents, reports, "group")
    a_match = _concat(incidents, reports, "match")
    a_sharing, a_never = a_match == "group", a_match == "never"
    a_segment = _codes(incidents, reports, "segment_id")
    a_street = _codes(incidents, reports, "street_name")
    rx, ry = reports["x"].to_numpy(float), reports["y"].to_numpy(float)
    radius = reports["radius_m"].to_numpy(float)
    street_radius = _street_radius(reports)
    window = reports["window_days"].to_numpy(float)
    r_time = _days(reports["requested_at"])
    last_seen = np.concatenate(
        [_days(incidents["last_reported_at"]) if n_inc else np.zeros(0), r_time]
    )
    # When each incident began: the batch's own begin with their opening report, earlier
    # than the reports that may join them.
    first_seen = np.concatenate(
        [
            _days(incidents["first_reported_at"])
            if n_inc and "first_reported_at" in incidents
            else np.full(n_inc, -np.inf),
            r_time,
        ]
    )
    # Stored incidents in hand ignore the window; the batch's own are new.
    in_hand = np.concatenate(
        [
            _in_hand(_text(incidents, "status"))
            if "status" in incidents
            else np.zeros(n_inc, bool),
            np.zeros(n_rep, bool),
        ]
    )
    # Order of arrival: time, then input order, so ties resolve as a stream would.
    order = np.lexsort((np.arange(n_rep), r_time))
    rank = np.empty(n_rep, dtype=np.int64)
    rank[order] = np.arange(n_rep)

    # One tree for every family of services that may share incidents, by moving each
    # family far away from the others: the query never pairs reports that cannot match.
    family = np.where(a_sharing, a_group, a_group.max() + 2 + a_service) * _FAMILY_SHIFT_M
    points = shapely.points(ax + family, ay)
    rep_idx, anchor_idx = shapely.STRtree(points).query(
        points[n_inc:],
        predicate="dwithin",
        distance=np.maximum(radius * scoring.same_street_factor, street_radius) + _QUERY_SLACK_M,
    )
    rep_anchor = n_inc + rep_idx  # each report's own entry among the anchors
    kin = _kinship(
        a_service[anchor_idx] == a_service[rep_anchor],
        a_group[anchor_idx] == a_group[rep_anchor],
        a_sharing[rep_anchor],
        a_sharing[anchor_idx],
        a_never[rep_anchor],
        a_never[anchor_idx],
    )
    batch_anchor = anchor_idx - n_inc
    # A report can only join what arrived before it (stored incidents always did).
    earlier = (batch_anchor < 0) | (rank[np.maximum(batch_anchor, 0)] < rank[rep_idx])
    keep = (kin != KIN_NONE) & earlier
    rep_idx, anchor_idx = rep_idx[keep], anchor_idx[keep]
    rep_anchor, kin = rep_anchor[keep], kin[keep]
    place = _place(
        a_segment[rep_anchor], a_segment[anchor_idx], a_street[rep_anchor], a_street[anchor_idx]
    )
    reach = _reach(radius[rep_idx], street_radius[rep_idx], place, scoring)
    dist = np.hypot(ax[anchor_idx] - rx[rep_idx], ay[anchor_idx] - ry[rep_idx])
    keep = dist <= reach
    rep_idx, anchor_idx, dist = rep_idx[keep], anchor_idx[keep], dist[keep]
    kin, place, reach = kin[keep], place[keep], reach[keep]
    static = _static_score(weights, dist, reach, kin, place)
    # Drop pairs whose incident is surely out of the window: when a report comes, its
    # incident's last report is at most the latest of its own time and the times of the
    # earlier reports paired with it (only those may have joined it).
    by_anchor = np.lexsort((rank[rep_idx], anchor_idx))
    paired_time = r_time[rep_idx[by_anchor]]
    previous = np.concatenate([[-np.inf], paired_time[:-1]])
    previous[np.r_[True, np.diff(anchor_idx[by_anchor]) != 0]] = -np.inf
    bound = np.maximum(last_seen[anchor_idx[by_anchor]], previous)
    keep = np.empty(len(by_anchor), dtype=bool)
    paired_window = window[rep_idx[by_anchor]]
    # An incident's beginning only moves back to a report joining it, earlier in time
    # than the later reports paired with it: the first of its pairs sees the stored one.
    began = first_seen[anchor_idx[by_anchor]]
    keep[by_anchor] = ((paired_time - bound <= paired_window) | in_hand[anchor_idx[by_anchor]]) & (
        (began - paired_time <= paired_window) | (previous > -np.inf)
    )
    rep_idx, anchor_idx, dist = rep_idx[keep], anchor_idx[keep], dist[keep]
    kin, place, static = kin[keep], place[keep], static[keep]
    by_report = np.lexsort((anchor_idx, dist, rep_idx))
    rep_idx, anchor_idx, dist = rep_idx[by_report], anchor_idx[by_report], dist[by_report]
    kin, place, static = kin[by_report], place[by_report], static[by_report]
    bounds = np.searchsorted(rep_idx, np.arange(n_rep + 1))

    # Anchors that stand for an incident: every stored one, and batch reports that opened one.
    is_live = np.concatenate([np.ones(n_inc, bool), np.zeros(n_rep, bool)])
    stored_ids = incidents["incident_id"].to_numpy(np.int64)
    marks = dict(apart or {})
    # Marks gathered by each live anchor (only anchors whose reports carry marks).
    held: dict[int, set[tuple[int, int]]] = {}
    if "marks" in incidents:
        stored_marks = incidents["marks"].to_numpy(object)
        for row in np.flatnonzero([bool(m) for m in stored_marks]).tolist():
            held[row] = set(stored_marks[row])

    # Reports with no candidate left open their own incident; only the others need the
    # sequential pass (an anchor is always earlier than the reports it is paired with).
    alone = np.flatnonzero(bounds[1:] == bounds[:-1])
    is_live[n_inc + alone] = True
    leader_col[alone] = alone
    for i in alone[np.isin(alone, list(marks))]:
        held[n_inc + int(i)] = set(marks[int(i)])
    for i in order[(bounds[1:] > bounds[:-1])[order]]:
        chosen, best = NO_INCIDENT, -1.0
        mine = marks.get(int(i), frozenset())
        for k in range(int(bounds[i]), int(bounds[i + 1])):
            anchor = int(anchor_idx[k])
            if not is_live[anchor]:
                continue
            gap = r_time[i] - last_seen[anchor]
            if gap > window[i] and not in_hand[anchor]:
                continue
            ahead = first_seen[anchor] - r_time[i]
            if ahead > window[i]:
                continue
            gap = max(gap, ahead)
            if mine and any((pair, 1 - side) in held.get(anchor, ()) for pair, side in mine):
                continue
            total = _score(static[k], weights, gap, window[i])
            if total > best and total >= cut:
                chosen, best = k, total
        if chosen == NO_INCIDENT:
            is_live[n_inc + i] = True
            leader_col[i] = i
            if mine:
                held[n_inc + i] = set(mine)
            continue
        anchor = int(anchor_idx[chosen])
        gap_col[i] = max(r_time[i] - last_seen[anchor], first_seen[anchor] - r_time[i], 0.0)
        dist_col[i], score_col[i] = dist[chosen], best
        kin_col[i], place_col[i] = kin[chosen], place[chosen]
        last_seen[anchor] = max(last_seen[anchor], r_time[i])
        first_seen[anchor] = min(first_seen[anchor], r_time[i])
        if mine:
            held.setdefault(anchor, set()).update(mine)
        if anchor < n_inc:
            incident_col[i] = stored_ids[anchor]
        else:
            leader_col[i] = anchor - n_inc
    return result()


def cluster(
    reports: pd.DataFrame,
    scoring: DedupeScoring,
    apart: Mapping[int, frozenset[tuple[int, int]]] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> pd.DataFrame:
    """``attach`` of reports among themselves, taken in time-ordered chunks that carry the
    live incidents forward, as an import does batch by batch: the same incidents as one
    ``attach`` of everything, with candidate pairs bounded by a chunk's time span.

    ``reports`` as for ``attach``; returns ``attach``'s columns where ``leader`` is the
    position of the first report of each report's incident (``incident_id`` unused).
    """
    n = len(reports)
    times = reports["requested_at"].reset_index(drop=True)
    order = np.lexsort((np.arange(n), _days(times)))
    out = {
        "incident_id": np.full(n, NO_INCIDENT, dtype=np.int64),
        "leader": np.zeros(n, dtype=np.int64),
        "distance_m": np.zeros(n),
        "gap_days": np.zeros(n),
        "score": np.ones(n),
        "kin": np.full(n, KIN_NONE, dtype=np.int64),
        "place": np.full(n, PLACE_UNKNOWN, dtype=np.int64),
        "likelihood": np.full(n, np.nan),
    }
    longest = float(reports["window_days"].max()) if n else 0.0
    columns = ["x", "y", "service_code", "group", "match", "segment_id", "street_name"]
    carried = pd.DataFrame(columns=[*columns, "first_reported_at", "last_reported_at", "marks"])
    position = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, chunk_size):
        rows = order[start : start + chunk_size]
        position[rows] = np.arange(len(rows))
        part = reports.iloc[rows].reset_index(drop=True)
        mine = {int(position[g]): m for g, m in (apart or {}).items() if position[g] >= 0}
        position[rows] = -1
        # Incidents last reported before this are out of every window of the chunk.
        since = times.iloc[rows[0]] - pd.Timedelta(days=longest)
        live = carried[carried["last_reported_at"] >= since]
        links = attach(part, live.rename_axis("incident_id").reset_index(), scoring, mine)
        joined, local = links["incident_id"].to_numpy(), links["leader"].to_numpy()
        first = np.where(joined != NO_INCIDENT, joined, rows[np.maximum(local, 0)])
        for name, values in out.items():
            values[rows] = first if name == "leader" else links[name].to_numpy()
        out["incident_id"][rows] = NO_INCIDENT
        opened = np.flatnonzero(local == np.arange(len(rows)))
        fresh = part.loc[opened, columns].set_axis(rows[opened])
        fresh["first_reported_at"] = part.loc[opened, "requested_at"].set_axis(rows[opened])
        fresh["last_reported_at"] = fresh["first_reported_at"]
        fresh["marks"] = None
        carried = pd.concat([live, fresh]) if len(live) else fresh
        # Chunks come in time order: a chunk's reports are the latest of their incidents.
        latest = part["requested_at"].groupby(first).max()
        carried.loc[latest.index, "last_reported_at"] = latest
        for k, held in mine.items():
            incident = int(first[k])
            before = frozenset(carried.at[incident, "marks"] or ())  # type: ignore[arg-type]
            carried.at[incident, "marks"] = before | held  # type: ignore[assignment]
    return pd.DataFrame(out, index=reports.index)


def reasons(links: pd.DataFrame) -> np.ndarray:
    """Words for each link: "same service, 12 m, same segment, 2 days" (with ", 83 %
    likely a duplicate" where the link has a likelihood), or the founder's."""
    kin = links["kin"].to_numpy(np.int64)
    metres = links["distance_m"].round().astype(int).astype(str).to_numpy(object)
    days = links["gap_days"].round().astype(int).astype(str).to_numpy(object)
    text = _sentence(
        _KIN_WORDS[kin],
        metres,
        _PLACE_WORDS[links["place"].to_numpy(np.int64)],
        days,
        np.where(days == "1", " day", " days").astype(object),
    )
    if "likelihood" in links:
        text = text + np.array([_likely(v) for v in links["likelihood"].tolist()], dtype=object)
    return np.where(kin == KIN_NONE, FOUNDER_REASON, text)


def reason(
    kin: int, distance_m: float, place: int, gap_days: float, likelihood: float | None = None
) -> str:
    """``reasons`` of one link (Python's ``round`` halves to even, as numpy's does)."""
    if kin == KIN_NONE:
        return FOUNDER_REASON
    days = str(round(gap_days))
    words = _sentence(
        _KIN_WORDS[kin],
        str(round(distance_m)),
        _PLACE_WORDS[place],
        days,
        " day" if days == "1" else " days",
    )
    return str(words + _likely(likelihood))


def _likely(likelihood: float | None) -> str:
    """The words of a calibrated likelihood ("" where there is none)."""
    if likelihood is None or likelihood != likelihood:
        return ""
    return f", {round(100 * likelihood)} % likely a duplicate"


def _sentence(kin: Any, metres: Any, place: Any, days: Any, unit: Any) -> Any:
    """The words of links: strings, or object arrays of them (joined elementwise)."""
    return kin + ", " + metres + " m" + place + ", " + days + unit


FOUNDER = Link(NO_INCIDENT, 0.0, 0.0, 1.0, KIN_NONE, PLACE_UNKNOWN, FOUNDER_REASON)
"""The link of a report that opens its incident."""


def attach_one(report: NewReport, candidates: Candidates, scoring: DedupeScoring) -> Link:
    """``attach`` of one report among stored incidents, on the few candidates' arrays.

    The same eligibility rules, score and tie-breaking as ``attach`` (its helpers), so the
    link is the one ``attach`` gives a one-report batch over the same incidents. Without
    candidates (nothing open of its kind nearby) it opens its incident at once: scoring
    no one took ~40 NumPy calls, a tenth of a POST's CPU (issue 20).
    """
    if not len(candidates.incident_id):
        return FOUNDER
    kin, place, dist, gap, total = _terms(report, candidates, scoring)
    ok = np.flatnonzero(~np.isnan(total) & (total >= _cut(scoring)))
    chosen, best = NO_INCIDENT, -1.0
    # Nearest first, then in the candidates' order: ties go to the first, as in attach.
    for k in np.lexsort((ok, dist[ok])).tolist():
        if total[ok[k]] > best:
            chosen, best = k, float(total[ok[k]])
    if chosen == NO_INCIDENT:
        return FOUNDER
    row = int(ok[chosen])
    distance, days = float(dist[row]), float(gap[row])
    kin_of, place_of = int(kin[row]), int(place[row])
    likely = None if scoring.calibration is None else float(likelihoods(scoring, best))
    return Link(
        int(candidates.incident_id[row]),
        distance,
        days,
        best,
        kin_of,
        place_of,
        reason(kin_of, distance, place_of, days, likely),
        likely,
    )


def scores(report: NewReport, candidates: Candidates, scoring: DedupeScoring) -> np.ndarray:
    """The score ``attach_one`` gives each candidate (ignoring the calibration's
    threshold), NaN where the rule refuses the pair: what staff see of the open incidents
    near one, whichever the report and whichever joined."""
    return _terms(report, candidates, scoring)[4]


def _terms(
    report: NewReport, candidates: Candidates, scoring: DedupeScoring
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate of one report: kin and place codes, distance, gap to its span (from
    its first to its last report, 0 inside it) and score, NaN where the rule refuses the
    pair."""
    radius, window = np.float64(report.radius_m), np.float64(report.window_days)
    kin, place, in_hand = _relations(report, candidates)
    reach = _reach(radius, np.float64(report.street_radius_m), place, scoring)
    dist = np.hypot(candidates.x - np.float64(report.x), candidates.y - np.float64(report.y))
    r_time = _days_of(np.array([naive_utc(report.requested_at)], dtype="datetime64[ns]"))[0]
    after = r_time - _days_of(candidates.last_reported_at)
    began = candidates.first_reported_at
    ahead = np.full(len(after), -np.inf) if began is None else _days_of(began) - r_time
    gap = np.maximum(np.maximum(after, ahead), 0.0)
    ok = (kin != KIN_NONE) & (dist <= reach) & ((after <= window) | in_hand) & (ahead <= window)
    weights = _weights(scoring)
    total = _static_score(weights, dist, reach, kin, place) + weights[1] * np.maximum(
        1.0 - gap / window, 0.0
    )
    return kin, place, dist, gap, np.where(ok, total, np.nan)


def _missing(value: object) -> bool:
    """None or NaN: what ``pd.factorize`` codes as missing here."""
    return value is None or (isinstance(value, float) and value != value)


def _relations(
    report: NewReport, candidates: Candidates
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate of one report: its kin and place codes and whether it is in hand,
    as ``_kinship``, ``_place`` and ``_in_hand`` give them over ``_codes``, in a loop over
    the few candidates (on their object arrays, NumPy's calls cost more than the loop:
    they were most of ``attach_one``, issue 20)."""
    service, group = _code(report.service_code), _code(report.group)
    segment, street = _code(report.segment_id), _code(report.street_name)
    sharing, never = report.match == "group", report.match == "never"
    kins, places, in_hand = [], [], []
    for code, their_group, match, their_segment, their_street, status in zip(
        candidates.service_code.tolist(),
        candidates.group.tolist(),
        candidates.match.tolist(),
        candidates.segment_id.tolist(),
        candidates.street_name.tolist(),
        candidates.status.tolist(),
        strict=True,
    ):
        same_service = _coded(report.service_code, code) == service
        same_group = _coded(report.group, their_group) == group
        shares = match == "group"
        family = (shares and same_group) if sharing else (not shares and same_service)
        if family and not never and match != "never":
            kins.append(KIN_SERVICE if same_service else KIN_GROUP)
        else:
            kins.append(KIN_NONE)
        on_street = _coded(report.street_name, their_street)
        known = street >= 0 and on_street >= 0
        if known and street == on_street:
            on_segment = segment >= 0 and segment == _coded(report.segment_id, their_segment)
            places.append(PLACE_SEGMENT if on_segment else PLACE_STREET)
        else:
            places.append(PLACE_OTHER if known else PLACE_UNKNOWN)
        in_hand.append(status in _IN_HAND)
    return (
        np.array(kins, dtype=np.int64),
        np.array(places, dtype=np.int64),
        np.array(in_hand, dtype=bool),
    )


def _code(value: object) -> int:
    """The report's own code for a text value: 0, or -1 when missing."""
    return -1 if _missing(value) else 0


def _coded(value: object, other: object) -> int:
    """The code of a candidate's value against the report's, as ``_codes`` would compare
    them: 0 for the report's value, 1 for another, -1 when missing."""
    if _missing(other):
        return -1
    return 0 if not _missing(value) and other == value else 1


def pairs(reports: pd.DataFrame, scoring: DedupeScoring) -> pd.DataFrame:
    """Every candidate pair of a batch: a report and an earlier one of it that the rule
    would let it join were that one an incident (services, reach, window), with the score.

    What a calibration is learned and measured on (``gis/dedupe_score.py``): ``reports`` as
    for ``attach``; returns positions ``report`` and ``earlier`` with ``distance_m``,
    ``gap_days``, ``kin``, ``place`` and ``score``. The incident a report meets holds its
    first report's place and its last report's time; a pair of reports holds both."""
    weights = _weights(scoring)
    empty = reports.iloc[:0]
    service = _codes(empty, reports, "service_code")
    group = _codes(empty, reports, "group")
    match = _text(reports, "match")
    sharing, never = match == "group", match == "never"
    segment, street = _codes(empty, reports, "segment_id"), _codes(empty, reports, "street_name")
    x, y = reports["x"].to_numpy(float), reports["y"].to_numpy(float)
    radius, street_radius = reports["radius_m"].to_numpy(float), _street_radius(reports)
    window, when = reports["window_days"].to_numpy(float), _days(reports["requested_at"])
    rank = np.empty(len(reports), dtype=np.int64)
    rank[np.lexsort((np.arange(len(reports)), when))] = np.arange(len(reports))
    family = np.where(sharing, group, group.max(initial=0) + 2 + service) * _FAMILY_SHIFT_M
    points = shapely.points(x + family, y)
    i, j = shapely.STRtree(points).query(
        points,
        predicate="dwithin",
        distance=np.maximum(radius * scoring.same_street_factor, street_radius) + _QUERY_SLACK_M,
    )
    kin = _kinship(
        service[j] == service[i], group[j] == group[i], sharing[i], sharing[j], never[i], never[j]
    )
    gap = when[i] - when[j]
    keep = (kin != KIN_NONE) & (rank[j] < rank[i]) & (gap <= window[i])
    i, j, kin, gap = i[keep], j[keep], kin[keep], gap[keep]
    place = _place(segment[i], segment[j], street[i], street[j])
    reach = _reach(radius[i], street_radius[i], place, scoring)
    dist = np.hypot(x[j] - x[i], y[j] - y[i])
    keep = dist <= reach
    i, j, kin, gap, place, dist, reach = (a[keep] for a in (i, j, kin, gap, place, dist, reach))
    static = _static_score(weights, dist, reach, kin, place)
    score = static + weights[1] * np.maximum(1.0 - gap / window[i], 0.0)
    frame = pd.DataFrame(
        {
            "report": i,
            "earlier": j,
            "distance_m": dist,
            "gap_days": gap,
            "kin": kin,
            "place": place,
            "score": score,
        }
    )
    return frame.sort_values(["report", "earlier"], ignore_index=True)
