"""The batch in flight of an overlapped bulk import: what it changes in the open incidents,
seen by the next batch's deduplication before it commits.

An overlapped import (``imports.Importer``, on a store whose transactions run on distinct
connections) reads the next batch's stored candidates while the current batch's
transaction is still open, so those reads do not see the current batch's incidents: the
ones it opened and the ones it joined (whose last report moved). ``InFlight`` holds those
incidents as they will be once the batch commits, in the columns ``Attacher`` gives
``dedupe.attach``; ``overlay`` puts them into the next batch's candidates under the same
conditions as the store's query (``Incidents.open_in_bbox``), so the next batch is attached
to exactly what a read made after the commit would have returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from voirie.gis.metric import widen
from voirie.model import IN_HAND_STATUSES, Status
from voirie.services.attach import Attacher
from voirie.services.writer import Written

_IN_HAND = [status.value for status in IN_HAND_STATUSES]


@dataclass(frozen=True)
class InFlight:
    """The incidents a written, uncommitted batch opened or joined, as candidate rows
    (``candidates.OPEN_INCIDENT_COLUMNS`` with x, y, group and match), by id."""

    incidents: pd.DataFrame

    @classmethod
    def of(
        cls, attacher: Attacher, batch: pd.DataFrame, candidates: pd.DataFrame, written: Written
    ) -> InFlight:
        """The incidents of a batch written with ``written`` after being attached among
        ``candidates``: those it opened (their opening report's place, status new), those
        it joined (their candidate row, the first and last reports moved as ``add_reports``
        moves them)."""
        # The store keeps microseconds: the last report as a later read would give it.
        requested = pd.Series(pd.to_datetime(batch["requested_at"], utc=True).dt.floor("us"))
        last = requested.groupby(written.incident_id).max()
        first = requested.groupby(written.incident_id).min()
        openers = batch.iloc[np.flatnonzero(written.opened)]
        opened_ids = written.incident_id[written.opened]
        opened = pd.DataFrame(
            {
                "incident_id": opened_ids,
                "lon": openers["lon"].to_numpy(float),
                "lat": openers["lat"].to_numpy(float),
                "service_code": openers["service_code"].to_numpy(object),
                "last_reported_at": last.reindex(opened_ids).array,
                "segment_id": openers["segment_id"].to_numpy(object),
                "street_name": openers["street_name"].to_numpy(object),
                "status": Status.NEW.value,
                "first_reported_at": first.reindex(opened_ids).array,
            }
        )
        opened["x"], opened["y"] = attacher.gis.project(
            opened["lon"].to_numpy(float), opened["lat"].to_numpy(float)
        )
        opened["group"], opened["match"] = attacher.policy.labels(opened["service_code"].to_numpy())
        joined = candidates[candidates["incident_id"].isin(written.incident_id)].copy()
        moved = pd.Series(last.reindex(joined["incident_id"]).to_numpy(), index=joined.index)
        stored = joined["last_reported_at"]
        joined["last_reported_at"] = stored.where(stored >= moved, moved)
        began = pd.Series(first.reindex(joined["incident_id"]).to_numpy(), index=joined.index)
        stored = joined["first_reported_at"]
        joined["first_reported_at"] = stored.where(stored <= began, began)
        parts = [part for part in (joined, opened) if len(part)]
        incidents = pd.concat(parts, ignore_index=True) if parts else opened
        return cls(incidents[list(candidates.columns)].astype(candidates.dtypes.to_dict()))


def overlay(
    attacher: Attacher, batch: pd.DataFrame, candidates: pd.DataFrame, flight: InFlight
) -> pd.DataFrame:
    """A batch's stored candidates (``Attacher.batch_candidates``, read before the batch
    in flight committed) with the incidents of that batch in their state after it: those
    the store's query would have returned (the batch's bbox widened by its reach, its
    services, last reported since its window or in hand, first reported at most a window
    after its latest report), replacing their stale rows."""
    rows = flight.incidents
    policy = attacher.policy
    reach = policy.reach_m(
        float(batch["radius_m"].to_numpy(float).max()),
        float(batch["street_radius_m"].to_numpy(float).max()),
    )
    lon, lat = batch["lon"].to_numpy(float), batch["lat"].to_numpy(float)
    west, south, east, north = widen(
        (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())), reach
    )
    window = timedelta(days=float(batch["window_days"].max()))
    since = batch["requested_at"].min() - window
    until = batch["requested_at"].max() + window
    inside = (
        rows["lon"].between(west, east)
        & rows["lat"].between(south, north)
        & rows["service_code"].isin(policy.batch_services(batch))
        & ((rows["last_reported_at"] >= since) | rows["status"].isin(_IN_HAND))
        & (rows["first_reported_at"] <= until)
    )
    kept = candidates[~candidates["incident_id"].isin(rows["incident_id"])]
    parts = [part for part in (kept, rows[inside]) if len(part)]
    if not parts:
        return candidates.iloc[:0]
    merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return merged.sort_values("incident_id", ignore_index=True)
