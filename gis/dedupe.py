"""Duplicate detection: each report joins an open incident of the same service nearby in
space and time, or opens a new one.

The rule is the online one (reports taken in time order, each attached to the nearest live
incident), so a bulk import and the same reports arriving one by one give the same
incidents. Candidate pairs come from one vectorized STRtree query; the sequential pass only
walks those pairs, with no geometry work per report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

NO_INCIDENT = -1
_NS_PER_DAY = 86_400 * 10**9


def _days(times: pd.Series) -> np.ndarray:
    """Tz-aware timestamps as float days since the epoch."""
    return times.to_numpy(dtype="datetime64[ns]").astype(np.int64) / _NS_PER_DAY


def attach(reports: pd.DataFrame, incidents: pd.DataFrame) -> pd.DataFrame:
    """Decide the incident of every report.

    ``reports`` needs x, y (metres), service_code, requested_at, radius_m and window_days;
    ``incidents`` (the open incidents already stored near them) needs incident_id, x, y,
    service_code and last_reported_at. Returns, aligned on ``reports``' index: ``incident_id``
    (an existing incident, or ``NO_INCIDENT``), ``leader`` (the position of the report that
    opens the new incident this one belongs to, or ``NO_INCIDENT``), ``distance_m`` and
    ``gap_days`` to what it joined.
    """
    n_rep, n_inc = len(reports), len(incidents)
    incident_col = np.full(n_rep, NO_INCIDENT, dtype=np.int64)
    leader_col = np.full(n_rep, NO_INCIDENT, dtype=np.int64)
    dist_col = np.zeros(n_rep)
    gap_col = np.zeros(n_rep)
    result = pd.DataFrame(
        {"incident_id": incident_col, "leader": leader_col, "distance_m": dist_col,
         "gap_days": gap_col},
        index=reports.index,
    )
    if n_rep == 0:
        return result
    # Anchors are the existing incidents followed by the batch's own reports.
    ax = np.concatenate([incidents["x"].to_numpy(float), reports["x"].to_numpy(float)])
    ay = np.concatenate([incidents["y"].to_numpy(float), reports["y"].to_numpy(float)])
    a_service = np.concatenate(
        [incidents["service_code"].to_numpy(object), reports["service_code"].to_numpy(object)]
    )
    rx, ry = reports["x"].to_numpy(float), reports["y"].to_numpy(float)
    radius = reports["radius_m"].to_numpy(float)
    window = reports["window_days"].to_numpy(float)
    r_time = _days(reports["requested_at"])
    last_seen = np.concatenate(
        [_days(incidents["last_reported_at"]) if n_inc else np.zeros(0), r_time]
    )

    tree = shapely.STRtree(shapely.points(ax, ay))
    rep_idx, anchor_idx = tree.query(
        shapely.points(rx, ry), predicate="dwithin", distance=float(radius.max())
    )
    dist = np.hypot(ax[anchor_idx] - rx[rep_idx], ay[anchor_idx] - ry[rep_idx])
    batch_anchor = anchor_idx - n_inc
    keep = (
        (a_service[anchor_idx] == reports["service_code"].to_numpy(object)[rep_idx])
        & (dist <= radius[rep_idx])
        & (batch_anchor != rep_idx)
    )
    rep_idx, anchor_idx, dist = rep_idx[keep], anchor_idx[keep], dist[keep]
    by_report = np.lexsort((anchor_idx, dist, rep_idx))
    rep_idx, anchor_idx, dist = rep_idx[by_report], anchor_idx[by_report], dist[by_report]
    bounds = np.searchsorted(rep_idx, np.arange(n_rep + 1))

    # Order of arrival: time, then input order, so ties resolve as a stream would.
    order = np.lexsort((np.arange(n_rep), r_time))
    rank = np.empty(n_rep, dtype=np.int64)
    rank[order] = np.arange(n_rep)
    # Anchors that stand for an incident: every stored one, and batch reports that opened one.
    is_live = np.concatenate([np.ones(n_inc, bool), np.zeros(n_rep, bool)])
    stored_ids = incidents["incident_id"].to_numpy(np.int64)

    for i in order:
        chosen = NO_INCIDENT
        for k in range(bounds[i], bounds[i + 1]):
            anchor = anchor_idx[k]
            if not is_live[anchor] or (anchor >= n_inc and rank[anchor - n_inc] > rank[i]):
                continue
            if r_time[i] - last_seen[anchor] > window[i]:
                continue
            chosen = anchor
            gap_col[i] = max(r_time[i] - last_seen[anchor], 0.0)
            dist_col[i] = dist[k]
            break
        if chosen == NO_INCIDENT:
            is_live[n_inc + i] = True
            leader_col[i] = i
            continue
        last_seen[chosen] = max(last_seen[chosen], r_time[i])
        if chosen < n_inc:
            incident_col[i] = stored_ids[chosen]
        else:
            leader_col[i] = chosen - n_inc
    return pd.DataFrame(
        {"incident_id": incident_col, "leader": leader_col, "distance_m": dist_col,
         "gap_days": gap_col},
        index=reports.index,
    )
