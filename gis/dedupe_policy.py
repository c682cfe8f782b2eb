"""Which reports may be one incident, per service: the city's deduplication policy.

``city.yaml`` gives each service a rule: its group, whether it shares incidents with its
group's other services (``match: group``), only with itself (``service``) or never
(``never``), a radius in metres and a time window in days, and for street-scale problems
(``street_scale``) the longer radius along one street. Everything that reads the rule
reads it here, once: the thresholds a report carries into ``dedupe.attach`` /
``attach_one``, the services whose open incidents it may join, the labels of stored
incidents, and the lock keys that serialize writers of reports that may be one incident
(bulk imports, the per-report path and staff merges take the same keys). Pure: no store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from voirie.city import DEFAULT_RADIUS_M, DEFAULT_WINDOW_DAYS, City
from voirie.gis import dedupe

THRESHOLD_COLUMNS = ("group", "match", "radius_m", "window_days", "street_radius_m")
UNGROUPED = {
    "radius_m": DEFAULT_RADIUS_M,
    "window_days": DEFAULT_WINDOW_DAYS,
    "street_radius_m": 0.0,
}
"""The thresholds of a report of a category in no known group: voirie's defaults, within
its own category (``match: service``)."""


@dataclass(frozen=True)
class DedupeRule:
    """What deduplication reads of one service (``THRESHOLD_COLUMNS``); ``street_radius_m``
    is 0 for a service that is not street-scale (the plain reach applies)."""

    group: str
    match: str
    radius_m: float
    window_days: float
    street_radius_m: float = 0.0


class DedupePolicy:
    """One city's deduplication rules, read once from its ``city.yaml``."""

    def __init__(self, city: City) -> None:
        self.city = city

    @cached_property
    def rules(self) -> dict[str, DedupeRule]:
        """The rule of each catalogued service, by service code."""
        return {
            code: DedupeRule(
                service.group,
                rule.match,
                float(rule.radius_m),
                float(rule.window_days),
                float(rule.street_radius_m or 0.0),
            )
            for code, service in self.city.services.items()
            for rule in [self.city.dedupe(code)]
        }

    @cached_property
    def _table(self) -> pd.DataFrame:
        """``rules`` as a table indexed by service code, for batches."""
        return pd.DataFrame.from_dict(
            {code: astuple(rule) for code, rule in self.rules.items()},
            orient="index",
            columns=list(THRESHOLD_COLUMNS),
        )

    @cached_property
    def families(self) -> dict[str, list[str]]:
        """Per group, its services that share incidents with their siblings (match: group)."""
        families: dict[str, list[str]] = {}
        for code, rule in sorted(self.rules.items()):
            if rule.match == "group":
                families.setdefault(rule.group, []).append(code)
        return families

    def rule(self, code: str) -> DedupeRule:
        """The rule of a catalogued service."""
        return self.rules[code]

    def lock_keys(self, service_codes: Iterable[str]) -> list[str]:
        """Keys writers serialize on: the group where sibling services share incidents,
        else the service, so two reports that may be one incident never race."""
        return sorted({self._lock_key(code) for code in set(service_codes)})

    def _lock_key(self, code: str) -> str:
        rule = self.rules.get(code)
        family = rule.group if rule is not None and rule.match == "group" else code
        return f"{self.city.jurisdiction_id}/{family}"

    def candidate_services(self, code: str) -> list[str]:
        """The services whose open incidents a report of ``code`` may join: its own, and
        its group's when the group shares incidents."""
        rule = self.rules[code]
        return self.families[rule.group] if rule.match == "group" else [code]

    def batch_services(self, reports: pd.DataFrame) -> list[str]:
        """``candidate_services`` of every report of a batch with its thresholds set."""
        sharing = set(reports.loc[reports["match"] == "group", "group"])
        siblings = [code for group in sharing for code in self.families[group]]
        return sorted(set(reports["service_code"]) | set(siblings))

    def reach_m(self, radius_m: float, street_radius_m: float = 0.0) -> float:
        """How far a report with these radii may look for incidents: on the same street a
        candidate counts up to ``same_street_factor`` times the radius, or up to the
        street radius of a street-scale service when that is longer."""
        return max(radius_m * self.city.config.dedupe.same_street_factor, street_radius_m)

    def labels(self, service_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group and match of stored incidents' services, as object arrays (None for
        a service the city no longer catalogues)."""
        rules = [self.rules.get(str(code)) for code in service_codes.tolist()]
        group = np.empty(len(rules), dtype=object)
        match = np.empty(len(rules), dtype=object)
        group[:] = [None if rule is None else rule.group for rule in rules]
        match[:] = [None if rule is None else rule.match for rule in rules]
        return group, match

    def set_thresholds(self, reports: pd.DataFrame) -> None:
        """Give reports what deduplication reads of their service, in place:
        ``THRESHOLD_COLUMNS`` (city.yaml)."""
        rules = self._table.reindex(reports["service_code"].to_numpy())
        unknown = rules["group"].isna().to_numpy()
        if unknown.any():
            # A new sub-category of a known group (validation kept the group): its group's
            # thresholds, and only reports of that same new code as candidates; one of no
            # known group, voirie's defaults.
            group = pd.Series(reports["group"].to_numpy(object)[unknown])
            known = group.isin(list(self.city.groups)).to_numpy()
            dedupe = {g: self.city.groups[g].dedupe for g in group[known].unique()}
            rules.loc[unknown, "group"] = group.where(known, None).to_numpy()
            rules.loc[unknown, "match"] = "service"
            for column, fallback in UNGROUPED.items():
                values = {g: float(getattr(d, column) or 0.0) for g, d in dedupe.items()}
                rules.loc[unknown, column] = group.map(values).fillna(fallback).to_numpy()
        for column in THRESHOLD_COLUMNS:
            reports[column] = rules[column].to_numpy()

    def near_scores(
        self, incident: Mapping[str, Any], others: pd.DataFrame, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The score and calibrated likelihood (NaN where none) that each open incident of
        ``others`` is the same problem as ``incident``, by the rule of ``incident``'s
        service, the two compared at their latest reports (their time apart is the gap
        between those); NaN where the rule would never join them.

        ``incident`` and ``others`` hold the stored incidents' fields (service_code,
        segment_id, street_name, last_reported_at, and status for ``others``); ``x``/``y``
        are metric, ``incident``'s first, then ``others``' in their order."""
        rule = self.rules.get(str(incident["service_code"]))
        if rule is None or others.empty:
            nothing = np.full(len(others), np.nan)
            return nothing, nothing.copy()
        mine = pd.Timestamp(incident["last_reported_at"])
        theirs = pd.to_datetime(others["last_reported_at"], utc=True)
        latest = max(mine, theirs.max())
        apart = (theirs - mine).abs()
        group, match = self.labels(others["service_code"].to_numpy(object))
        candidates = dedupe.Candidates(
            incident_id=others["incident_id"].to_numpy(np.int64),
            x=np.asarray(x[1:], float),
            y=np.asarray(y[1:], float),
            service_code=others["service_code"].to_numpy(object),
            group=group,
            match=match,
            segment_id=_objects(others["segment_id"]),
            street_name=_objects(others["street_name"]),
            last_reported_at=(latest - apart).dt.tz_convert(None).to_numpy("datetime64[ns]"),
            status=others["status"].astype(str).to_numpy(object),
        )
        report = dedupe.NewReport(
            x=float(x[0]),
            y=float(y[0]),
            service_code=str(incident["service_code"]),
            group=rule.group,
            match=rule.match,
            radius_m=rule.radius_m,
            window_days=rule.window_days,
            requested_at=latest.to_pydatetime(),
            segment_id=incident.get("segment_id"),
            street_name=incident.get("street_name"),
            street_radius_m=rule.street_radius_m,
        )
        score = dedupe.scores(report, candidates, self.city.config.dedupe)
        return score, dedupe.likelihoods(self.city.config.dedupe, score)


def _objects(column: pd.Series) -> np.ndarray:
    """A text column as an object array, None where missing (as ``Candidates`` holds)."""
    values = column.astype(object).to_numpy(object)
    return np.array([None if pd.isna(v) else v for v in values], dtype=object)
