"""Which stored open incidents reports may join, read under the deduplication lock, and
the links ``voirie.gis.dedupe`` gives them: for a batch (``attach``) and for one report
(``attach_one``), over the same services, bbox and time bound.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from voirie.city import City
from voirie.gis import dedupe
from voirie.gis.dedupe_policy import DedupePolicy
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import widen
from voirie.store.base import Later, UnitOfWork


class Attacher:
    """One city's attachment of new reports to the incidents stored open near them."""

    def __init__(self, city: City, gis: CityGIS, policy: DedupePolicy) -> None:
        self.city = city
        self.gis = gis
        self.policy = policy

    def batch_candidates(self, uow: UnitOfWork, batch: pd.DataFrame) -> pd.DataFrame:
        """Set the batch's thresholds; return the open stored incidents it may join, with
        metric coordinates, group and match (what ``dedupe.attach`` reads)."""
        self.policy.set_thresholds(batch)
        reach = self.policy.reach_m(
            float(batch["radius_m"].to_numpy(float).max()),
            float(batch["street_radius_m"].to_numpy(float).max()),
        )
        lon, lat = batch["lon"].to_numpy(float), batch["lat"].to_numpy(float)
        bbox = widen(
            (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())), reach
        )
        window = float(batch["window_days"].to_numpy(float).max())
        since = batch["requested_at"].min().to_pydatetime() - timedelta(days=window)
        # An incident that began more than a window after every report takes none of them.
        until = batch["requested_at"].max().to_pydatetime() + timedelta(days=window)
        incidents = uow.incidents.open_in_bbox(
            bbox, self.policy.batch_services(batch), since, until
        )
        incidents["x"], incidents["y"] = self.gis.project(
            incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float)
        )
        incidents["group"], incidents["match"] = self.policy.labels(
            incidents["service_code"].to_numpy()
        )
        return incidents

    def attach(self, uow: UnitOfWork, batch: pd.DataFrame) -> pd.DataFrame:
        """``dedupe.attach`` of an enriched batch (with metric x/y) among the incidents it
        may join; sets the batch's thresholds."""
        incidents = self.batch_candidates(uow, batch)
        return dedupe.attach(batch, incidents, self.city.config.dedupe)

    def candidates(
        self,
        uow: UnitOfWork,
        lon: float,
        lat: float,
        service_code: str,
        requested_at: datetime,
    ) -> dedupe.Candidates:
        """``batch_candidates`` of one report of a catalogued service, as the arrays
        ``dedupe.attach_one`` reads, without a DataFrame."""
        return self.candidates_later(uow, lon, lat, service_code, requested_at)()

    def candidates_later(
        self,
        uow: UnitOfWork,
        lon: float,
        lat: float,
        service_code: str,
        requested_at: datetime,
    ) -> Later[dedupe.Candidates]:
        """``candidates`` sent now, read when called (the per-report path sends it with
        its other reads: one round trip for all)."""
        rule = self.policy.rule(service_code)
        sent = uow.incidents.open_near_later(
            lon,
            lat,
            self.policy.reach_m(rule.radius_m, rule.street_radius_m),
            self.policy.candidate_services(service_code),
            requested_at - timedelta(days=rule.window_days),
            requested_at + timedelta(days=rule.window_days),
        )

        def read() -> dedupe.Candidates:
            found = sent()
            x, y = self.gis.project(found.lon, found.lat)
            group, match = self.policy.labels(found.service_code)
            return dedupe.Candidates(
                incident_id=found.incident_id,
                x=x,
                y=y,
                service_code=found.service_code,
                group=group,
                match=match,
                segment_id=found.segment_id,
                street_name=found.street_name,
                last_reported_at=found.last_reported_at,
                status=found.status,
                first_reported_at=found.first_reported_at,
            )

        return read
