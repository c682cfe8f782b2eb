"""The pipeline: the only place where ingest, GIS, deduplication, routing and storage meet.

Bulk imports and single reports take the same path: validate, enrich (vectorized), check
the territory, then per batch and in one transaction: skip what is already stored, attach
each report to an open incident or open one, route new incidents, and write everything.
Reports are processed in time order so that a bulk import gives the incidents the online
path would have given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd

from voirie.city import City
from voirie.gis import dedupe
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import RawTable
from voirie.ingest.validate import CHANGED_CONTENT, QUARANTINE_COLUMNS, validate
from voirie.model import EventKind, Flag, Report, Status
from voirie.notify.outbox import record_routing
from voirie.routing.table import RoutingTable, route
from voirie.services.events import SYSTEM_ACTOR
from voirie.services.intake import Intake, Submission
from voirie.store.base import Store, UnitOfWork
from voirie.store.candidates import margin_deg
from voirie.store.selection import EVERYTHING, Layer, Selection

DEFAULT_BATCH_SIZE = 5_000


@dataclass
class ImportSummary:
    """What an import did, for the person who ran it."""

    read: int = 0
    imported: int = 0
    new_incidents: int = 0
    attached_existing: int = 0
    attached_in_batch: int = 0
    already_imported: int = 0
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    opened_ids: set[int] = field(default_factory=set, repr=False)
    stored: list[pd.DataFrame] = field(default_factory=list, repr=False)

    @property
    def quarantined(self) -> int:
        """Number of rows set aside with a reason."""
        return len(self.quarantine)

    def reasons(self) -> pd.Series:
        """Quarantined rows counted by field and kind of problem (values stripped)."""
        kinds = self.quarantine["field"] + ": " + self.quarantine["reason"].str.split(":").str[0]
        return kinds.value_counts()


class Pipeline:
    """One city's pipeline over one store; GIS indexes are built once and reused."""

    def __init__(self, city: City, store: Store, gis: CityGIS | None = None) -> None:
        self.city = city
        self.store = store
        self.gis = gis or CityGIS(city)
        self.routing = RoutingTable(city)

    def import_table(
        self,
        table: RawTable,
        mapping: ColumnMapping,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> ImportSummary:
        """Run every row of a source through the whole pipeline.

        ``attributes`` (external_id, code, value) are the answers to a service's questions;
        each is written in the transaction that stores its report.
        """
        summary = ImportSummary(read=len(table.rows))
        valid = validate(table, mapping, self.city)
        reports = valid.reports
        enriched = self.gis.enrich(
            reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
        )
        reports = pd.concat([reports, enriched], axis=1)
        outside = self._outside_territory(reports, mapping)
        quarantine = [valid.quarantine, outside]
        reports = reports[~reports["row"].isin(outside["row"])]
        reports = reports.sort_values(["requested_at", "row"], kind="stable")
        if progress:
            progress(summary.read - len(reports))
        for start in range(0, len(reports), batch_size):
            batch = reports.iloc[start : start + batch_size].reset_index(drop=True)
            quarantine.append(self._store_batch(batch, summary, attributes))
            if progress:
                progress(len(batch))
        summary.quarantine = pd.concat(
            [q for q in quarantine if len(q)] or [summary.quarantine], ignore_index=True
        ).sort_values("row", kind="stable", ignore_index=True)
        if summary.imported >= batch_size:
            # A bulk load changes the tables' sizes by orders of magnitude: without fresh
            # statistics the next queries may plan as if the tables were empty.
            self.store.analyze()
        return summary

    def submit(self, report: Report) -> Submission:
        """Store one report and say where it went (the API's entry point): the per-report
        path of ``voirie.services.intake``, with the decisions of a bulk import.

        Raises ``InvalidInput`` naming the field when the report is refused; a report whose
        external id is already stored with the same content answers with the stored ids.
        """
        return self.intake.submit(report)

    @cached_property
    def intake(self) -> Intake:
        """The per-report path over this pipeline's store, GIS and routing table."""
        return Intake(self)

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Reports of a source already stored under these external ids (a keyed lookup):
        external_id, content_hash, report_id, incident_id, received_at."""
        with self.store.transaction(self.city.jurisdiction_id) as uow:
            return uow.known_reports(source, external_ids)

    def _outside_territory(self, reports: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
        """Quarantine rows outside the city, saying when swapping lat/lon would put them in."""
        out = reports[reports["outside_territory"]]
        if out.empty:  # the usual case: skip an enrichment of nothing
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        swapped = self.gis.enrich(out["lat"].to_numpy(), out["lon"].to_numpy())
        inside_if_swapped = ~swapped["outside_territory"].to_numpy()
        reason = [
            self._outside_words(swap, lon, lat)
            for swap, lon, lat in zip(inside_if_swapped, out["lon"], out["lat"], strict=True)
        ]
        return pd.DataFrame(
            {
                "row": out["row"].to_numpy(),
                "external_id": out["external_id"].to_numpy(),
                "field": f"{mapping.lat}/{mapping.lon}",
                "reason": reason,
            }
        )

    def outside_reason(self, lon: float, lat: float) -> str:
        """Why a point outside the city is refused (the reason an import quarantines it)."""
        swapped = self.gis.enrich_one(lat, lon, None)
        return self._outside_words(not swapped[Flag.OUTSIDE_TERRITORY], lon, lat)

    def _outside_words(self, swapped_inside: bool, lon: float, lat: float) -> str:
        name = self.city.config.name
        if swapped_inside:
            return f"latitude and longitude look swapped (swapped, the point falls in {name})"
        return f"outside the territory of {name} ({lon:.6f}, {lat:.6f})"

    def _store_batch(
        self, batch: pd.DataFrame, summary: ImportSummary, attributes: pd.DataFrame | None
    ) -> pd.DataFrame:
        """Write one batch in one transaction; return the rows it had to quarantine."""
        jurisdiction = self.city.jurisdiction_id
        with self.store.transaction(jurisdiction) as uow:
            uow.lock(self.dedupe_lock_keys(batch["service_code"]))
            batch, rejected = self._skip_known(uow, batch, summary)
            if len(batch):
                self._write(uow, batch, summary)
                if attributes is not None and len(attributes):
                    rows = attributes.merge(
                        batch[["external_id", "id"]].rename(columns={"id": "report_id"}),
                        on="external_id",
                    )
                    rows["jurisdiction_id"] = jurisdiction
                    uow.insert("report_attributes", rows)
        return rejected

    def _skip_known(
        self, uow: UnitOfWork, batch: pd.DataFrame, summary: ImportSummary
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Drop reports already stored; quarantine those stored with other content."""
        source = str(batch["source"].iloc[0])
        known = uow.known_reports(source, batch["external_id"].tolist())
        stored_hash = batch["external_id"].map(known.set_index("external_id")["content_hash"])
        same = stored_hash.notna() & (stored_hash == batch["content_hash"])
        changed = stored_hash.notna() & ~same
        summary.already_imported += int(same.sum())
        rejected = pd.DataFrame(
            {
                "row": batch.loc[changed, "row"],
                "external_id": batch.loc[changed, "external_id"],
                "field": "external_id",
                "reason": CHANGED_CONTENT,
            }
        )
        return batch[stored_hash.isna()].reset_index(drop=True), rejected

    @cached_property
    def _dedupe_rules(self) -> dict[str, tuple[str, str, float, float]]:
        """Per service code: group, match, radius_m and window_days (city.yaml, read once)."""
        return {
            code: (service.group, rule.match, float(rule.radius_m), float(rule.window_days))
            for code, service in self.city.services.items()
            for rule in [self.city.dedupe(code)]
        }

    @cached_property
    def _dedupe_table(self) -> pd.DataFrame:
        """``_dedupe_rules`` as a table indexed by service code, for batches."""
        return pd.DataFrame.from_dict(
            self._dedupe_rules,
            orient="index",
            columns=["group", "match", "radius_m", "window_days"],
        )

    @cached_property
    def _sharing_families(self) -> dict[str, list[str]]:
        """Per group, its services that share incidents with their siblings (match: group)."""
        families: dict[str, list[str]] = {}
        for code, (group, match, _, _) in sorted(self._dedupe_rules.items()):
            if match == "group":
                families.setdefault(group, []).append(code)
        return families

    def dedupe_lock_keys(self, service_codes: Iterable[str]) -> list[str]:
        """Keys writers serialize on: the group where sibling services share incidents,
        else the service, so two reports that may be one incident never race."""
        return sorted({self._lock_key(code) for code in set(service_codes)})

    def _lock_key(self, code: str) -> str:
        rule = self._dedupe_rules.get(code)
        family = rule[0] if rule is not None and rule[1] == "group" else code
        return f"{self.city.jurisdiction_id}/{family}"

    def thresholds(self, code: str) -> dict[str, object]:
        """What deduplication reads of a catalogued service: group, match, radius_m and
        window_days (the columns ``set_thresholds`` gives a batch)."""
        group, match, radius_m, window_days = self._dedupe_rules[code]
        return {"group": group, "match": match, "radius_m": radius_m, "window_days": window_days}

    def candidate_services(self, code: str) -> list[str]:
        """The services whose open incidents a report of ``code`` may join: its own, and
        its group's when the group shares incidents (as ``_dedupe_inputs`` asks)."""
        group, match, _, _ = self._dedupe_rules[code]
        return self._sharing_families[group] if match == "group" else [code]

    def set_thresholds(self, reports: pd.DataFrame) -> None:
        """Give reports what deduplication reads of their service, in place: group, match,
        radius_m, window_days (city.yaml), and metric x/y when missing."""
        rules = self._dedupe_table.reindex(reports["service_code"].to_numpy())
        unknown = rules["group"].isna().to_numpy()
        if unknown.any():
            # A new sub-category of a known group (validation kept the group): its group's
            # thresholds, and only reports of that same new code as candidates.
            group = pd.Series(reports["group"].to_numpy(object)[unknown])
            dedupe = {g: self.city.groups[g].dedupe for g in group.unique()}
            rules.loc[unknown, "group"] = group.to_numpy()
            rules.loc[unknown, "match"] = "service"
            for column in ("radius_m", "window_days"):
                values = {g: getattr(d, column) for g, d in dedupe.items()}
                rules.loc[unknown, column] = group.map(values).to_numpy()
        for column in ("group", "match", "radius_m", "window_days"):
            reports[column] = rules[column].to_numpy()
        if "x" not in reports:
            reports["x"], reports["y"] = self.gis.project(
                reports["lon"].to_numpy(float), reports["lat"].to_numpy(float)
            )

    def _dedupe_inputs(self, uow: UnitOfWork, batch: pd.DataFrame) -> pd.DataFrame:
        """Set the batch's thresholds; return the open stored incidents it may join, with
        metric coordinates, group and match."""
        table = self._dedupe_table
        self.set_thresholds(batch)
        radius = batch["radius_m"].to_numpy(float)
        window = batch["window_days"].to_numpy(float)
        reach = float(radius.max()) * self.city.config.dedupe.same_street_factor
        margin = margin_deg(reach)
        bbox = (
            float(batch["lon"].min()) - margin,
            float(batch["lat"].min()) - margin,
            float(batch["lon"].max()) + margin,
            float(batch["lat"].max()) + margin,
        )
        since = batch["requested_at"].min().to_pydatetime() - timedelta(days=float(window.max()))
        sharing = set(batch.loc[batch["match"] == "group", "group"])
        siblings = [code for group in sharing for code in self._sharing_families[group]]
        codes = sorted(set(batch["service_code"]) | set(siblings))
        incidents = uow.open_incidents(bbox, codes, since)
        incidents["x"], incidents["y"] = self.gis.project(
            incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float)
        )
        stored = table.reindex(incidents["service_code"].to_numpy())
        incidents["group"] = stored["group"].to_numpy()
        incidents["match"] = stored["match"].to_numpy()
        return incidents

    def dedupe_candidates(self, uow: UnitOfWork, report: Mapping[str, object]) -> dedupe.Candidates:
        """``_dedupe_inputs`` of a one-report batch, as the arrays ``dedupe.attach_one``
        reads: the same services, bbox and time bound, without a DataFrame.

        ``report`` holds lon, lat, service_code, requested_at (tz-aware) and what
        ``thresholds`` gives."""
        radius, window = report["radius_m"], report["window_days"]
        requested, lon, lat = report["requested_at"], report["lon"], report["lat"]
        if not (
            isinstance(radius, float | int)
            and isinstance(window, float | int)
            and isinstance(lon, float | int)
            and isinstance(lat, float | int)
            and isinstance(requested, datetime)
        ):
            raise TypeError(
                "a report needs numeric lon, lat, radius_m, window_days and a datetime requested_at"
            )
        found = uow.open_incidents_near(
            float(lon),
            float(lat),
            float(radius) * self.city.config.dedupe.same_street_factor,
            self.candidate_services(str(report["service_code"])),
            requested - timedelta(days=float(window)),
        )
        x, y = self.gis.project(found.lon, found.lat)
        rules = [self._dedupe_rules.get(str(code)) for code in found.service_code.tolist()]
        group, match = np.empty(len(found), dtype=object), np.empty(len(found), dtype=object)
        group[:] = [None if rule is None else rule[0] for rule in rules]
        match[:] = [None if rule is None else rule[1] for rule in rules]
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
        )

    def _write(self, uow: UnitOfWork, batch: pd.DataFrame, summary: ImportSummary) -> None:
        """Attach, route and write a batch of new reports."""
        now = pd.Timestamp(datetime.now(UTC))
        jurisdiction = self.city.jurisdiction_id
        incidents = self._dedupe_inputs(uow, batch)
        links = dedupe.attach(batch, incidents, self.city.config.dedupe)
        n = len(batch)
        batch["id"] = uow.reserve_ids("reports", n)
        batch["jurisdiction_id"] = jurisdiction
        batch["received_at"] = now

        leaders = np.flatnonzero(links["leader"].to_numpy() == np.arange(n))
        new_ids = uow.reserve_ids("incidents", len(leaders))
        incident_of_leader = pd.Series(new_ids, index=leaders)
        attached_stored = links["incident_id"].to_numpy() != dedupe.NO_INCIDENT
        incident_id = np.where(
            attached_stored,
            links["incident_id"].to_numpy(),
            incident_of_leader.reindex(links["leader"].to_numpy()).to_numpy(),
        ).astype(np.int64)
        founder = np.zeros(n, dtype=bool)
        founder[leaders] = True
        summary.imported += n
        summary.stored.append(
            pd.DataFrame(
                {
                    "external_id": batch["external_id"],
                    "report_id": batch["id"],
                    "incident_id": incident_id,
                    "opened": founder,
                }
            )
        )
        summary.new_incidents += len(leaders)
        # "Existing" means stored before this import, not merely by an earlier batch of it.
        before = attached_stored & ~np.isin(incident_id, list(summary.opened_ids))
        summary.attached_existing += int(before.sum())
        summary.attached_in_batch += int((~before & ~founder).sum())
        summary.opened_ids.update(new_ids.tolist())

        uow.insert("reports", batch)
        uow.insert(
            "report_contacts",
            batch[
                batch[["contact_name", "contact_email", "contact_phone", "device_id"]]
                .notna()
                .any(axis=1)
            ].rename(
                columns={
                    "id": "report_id",
                    "contact_name": "name",
                    "contact_email": "email",
                    "contact_phone": "phone",
                }
            ),
        )
        uow.insert("enrichments", batch.rename(columns={"id": "report_id"}))
        uow.insert("report_zones", self._zone_rows(batch))

        counts = pd.Series(incident_id).value_counts()
        last = pd.Series(batch["requested_at"].to_numpy()).groupby(incident_id).max()
        routed = self.write_new_incidents(
            uow,
            batch.iloc[leaders].reset_index(drop=True),
            new_ids,
            counts.reindex(new_ids).to_numpy(),
            last.reindex(new_ids).to_numpy(),
            now,
        )
        existing = incident_id[attached_stored]
        if len(existing):
            uow.add_to_incidents(
                pd.DataFrame(
                    {
                        "incident_id": counts.reindex(np.unique(existing)).index,
                        "added": counts.reindex(np.unique(existing)).to_numpy(),
                        "last_reported_at": last.reindex(np.unique(existing)).to_numpy(),
                        "updated_at": now,
                    }
                )
            )
        reason = dedupe.reasons(links)
        uow.insert(
            "incident_reports",
            pd.DataFrame(
                {
                    "report_id": batch["id"],
                    "jurisdiction_id": jurisdiction,
                    "incident_id": incident_id,
                    "score": links["score"].to_numpy(float),
                    "reason": reason,
                    "linked_at": now,
                }
            ),
        )
        self._write_events(uow, batch, incident_id, founder, reason, routed, new_ids, now)

    def write_new_incidents(
        self,
        uow: UnitOfWork,
        new: pd.DataFrame,
        new_ids: np.ndarray,
        report_count: np.ndarray,
        last_reported_at: np.ndarray,
        now: pd.Timestamp,
    ) -> pd.DataFrame:
        """Route and write new incidents, each opened by one enriched report of ``new``
        (same order as ``new_ids``), with their assignments; return their routing."""
        jurisdiction = self.city.jurisdiction_id
        routed = route(self.city, new, self.routing)
        due = routed["due_at"]
        incident_rows = pd.DataFrame(
            {
                "id": new_ids,
                "jurisdiction_id": jurisdiction,
                "service_code": new["service_code"].to_numpy(),
                "origin_report_id": new["id"].to_numpy(),
                "lon": new["lon"].to_numpy(),
                "lat": new["lat"].to_numpy(),
                "segment_id": new["segment_id"].to_numpy(),
                "street_name": new["street_name"].to_numpy(),
                "status": Status.NEW.value,
                "team": routed["team"].to_numpy(),
                "priority": routed["priority"].to_numpy(),
                "due_at": due.to_numpy(),
                "report_count": report_count,
                "first_reported_at": new["requested_at"].to_numpy(),
                "last_reported_at": last_reported_at,
                "updated_at": now,
            }
        )
        uow.insert("incidents", incident_rows)
        record_routing(uow, self.city, incident_rows, routed, now)
        uow.insert(
            "assignments",
            pd.DataFrame(
                {
                    "id": uow.reserve_ids("assignments", len(new_ids)),
                    "jurisdiction_id": jurisdiction,
                    "incident_id": new_ids,
                    "team": routed["team"].to_numpy(),
                    "rule_id": routed["rule_id"].to_numpy(),
                    "rule_version": routed["rule_version"].to_numpy(),
                    "reason": routed["routing_reason"].to_numpy(),
                    "priority": routed["priority"].to_numpy(),
                    "due_at": due.to_numpy(),
                    "assigned_at": now,
                    "actor": SYSTEM_ACTOR,
                }
            ),
        )
        return routed

    def _zone_rows(self, batch: pd.DataFrame) -> pd.DataFrame:
        """One row per report and zone layer (long form, any number of layers)."""
        names = list(self.gis.zones)

        def stacked(column: str) -> np.ndarray:
            return np.concatenate([batch[column.format(name)].to_numpy() for name in names])

        # Built from stacked arrays in one frame (not a frame per layer then a concat): the
        # same rows, without pandas' fixed costs that dominate a one-report batch.
        zones = pd.DataFrame(
            {
                "report_id": np.tile(batch["id"].to_numpy(), len(names)),
                "jurisdiction_id": np.tile(batch["jurisdiction_id"].to_numpy(object), len(names)),
                "layer": np.repeat(np.array(names, dtype=object), len(batch)),
                "code": stacked("zone_{}"),
                "name": stacked("zone_{}_name"),
                "boundary_m": stacked("zone_{}_boundary_m"),
            }
        )
        return zones[zones["code"].notna()]

    def _write_events(
        self,
        uow: UnitOfWork,
        batch: pd.DataFrame,
        incident_id: np.ndarray,
        founder: np.ndarray,
        reason: np.ndarray,
        routed: pd.DataFrame,
        new_ids: np.ndarray,
        now: pd.Timestamp,
    ) -> None:
        """The history: each report received then attached, each new incident opened and routed."""
        received = pd.DataFrame(
            {
                "entity": "report",
                "entity_id": batch["id"],
                "kind": EventKind.RECEIVED.value,
                "reason": "imported from " + batch["source"] + " row " + batch["row"].astype(str),
            }
        )
        linked = pd.DataFrame(
            {
                "entity": "report",
                "entity_id": batch["id"],
                "kind": np.where(founder, EventKind.OPENED.value, EventKind.ATTACHED.value),
                "reason": "incident " + pd.Series(incident_id).astype(str) + ": " + reason,
            }
        )
        routed_events = pd.DataFrame(
            {
                "entity": "incident",
                "entity_id": new_ids,
                "kind": EventKind.ROUTED.value,
                "reason": routed["routing_reason"].to_numpy(),
            }
        )
        events = pd.concat([received, linked, routed_events], ignore_index=True)
        events["id"] = uow.reserve_ids("events", len(events))
        events["jurisdiction_id"] = self.city.jurisdiction_id
        events["actor"] = SYSTEM_ACTOR
        events["at"] = now
        uow.insert("events", events)

    def _layer(self, layer: Layer, selection: Selection) -> gpd.GeoDataFrame:
        """One page of a layer with one ``zone_<layer>`` column per zone layer and a point."""
        j = self.city.jurisdiction_id
        frame = self.store.select(layer, j, selection)
        key = "report_id" if layer == "reports" else "incident_id"
        zones = self.store.select_zones(layer, j, selection)
        wide = zones.pivot(index="row_id", columns="layer", values="code")
        for name in self.gis.zones:
            frame[f"zone_{name}"] = frame[key].map(
                wide[name] if name in wide else pd.Series(dtype=object)
            )
        if layer == "incidents":
            services = self.city.services
            frame["service_name"] = frame["service_code"].map(
                lambda c: s.name if (s := services.get(c)) else c
            )
        return gpd.GeoDataFrame(
            frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326
        )

    def reports(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Reports with their enrichment, zones, incident and team (public fields only)."""
        return self._layer("reports", selection)

    def incidents(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Incidents with their service name, routing and the zones of their first report."""
        return self._layer("incidents", selection)

    def count(self, layer: Layer, selection: Selection = EVERYTHING) -> int:
        """How many rows of a layer a selection keeps, whatever its page."""
        return self.store.count_selected(layer, self.city.jurisdiction_id, selection)

    def iter_layer(
        self, layer: Layer, selection: Selection = EVERYTHING, chunk_size: int = 50_000
    ) -> Iterator[gpd.GeoDataFrame]:
        """A layer in chunks, walked by id, so a download's memory does not grow with it.

        The selection's ``limit`` caps the total; its ``offset`` skips rows first.
        """
        key = "report_id" if layer == "reports" else "incident_id"
        remaining = selection.limit
        page = selection.page(
            chunk_size if remaining is None else min(chunk_size, remaining), selection.offset
        )
        while page.limit:
            chunk = self._layer(layer, page)
            if chunk.empty:
                return
            yield chunk
            if remaining is not None:
                remaining -= len(chunk)
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            page = replace(page, after_id=int(chunk[key].iloc[-1]), limit=size, offset=0)

    def nearby(
        self, lon: float, lat: float, radius_m: float, selection: Selection = EVERYTHING
    ) -> gpd.GeoDataFrame:
        """Incidents within ``radius_m`` metres of a point, nearest first, with ``distance_m``.

        The store filters a bbox that contains the circle; distances are then measured in
        the city's metric CRS.
        """
        x, y = self.gis.project(np.array([lon], float), np.array([lat], float))
        # A square a little larger than the circle: the projection bends straight lines.
        half = radius_m * 1.01
        corners_x = x[0] + np.array([-half, half, half, -half])
        corners_y = y[0] + np.array([-half, -half, half, half])
        lons, lats = self.gis.to_wgs84.transform(corners_x, corners_y)
        bbox = (float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max()))
        found = self.incidents(replace(selection, bbox=bbox, limit=None, offset=0))
        fx, fy = self.gis.project(found["lon"].to_numpy(float), found["lat"].to_numpy(float))
        found["distance_m"] = np.hypot(fx - x[0], fy - y[0])
        found = found[found["distance_m"] <= radius_m].sort_values(
            ["distance_m", "incident_id"], kind="stable"
        )
        start = selection.offset
        stop = None if selection.limit is None else start + selection.limit
        return found.iloc[start:stop]
