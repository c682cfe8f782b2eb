"""What staff read: the incidents a principal may see, and an incident's case file.

A case file is the incident, its reports, its routing decisions and its history (events of
the incident and of its reports). Reporters' contact data is added only for principals
allowed to see it on that incident's team; no other read in voirie touches it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import geopandas as gpd
import pandas as pd

from voirie.errors import Forbidden, NotFound
from voirie.services.auth import Action, Principal
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection


@dataclass(frozen=True)
class CaseFile:
    """Everything staff see about one incident."""

    incident: pd.Series
    """One row of ``Reads.incidents``."""
    reports: gpd.GeoDataFrame
    """Its reports (``Reads.reports`` rows), oldest first."""
    contacts: pd.DataFrame | None
    """``report_contacts`` rows of its reports; None when the principal may not see them."""
    assignments: pd.DataFrame
    """Every routing decision and reassignment (``assignments`` rows), oldest first."""
    history: pd.DataFrame
    """Events of the incident and of its reports, in time order."""


def scoped(principal: Principal, selection: Selection) -> Selection:
    """The selection narrowed to the teams the principal may see.

    Asking explicitly for a team outside their scope is refused rather than answered with
    an empty list, so that a wrong filter is not mistaken for "nothing to do".
    """
    visible = principal.visible_teams
    if visible is None:
        return selection
    if not visible:
        raise Forbidden(f"{principal.role} {principal.name!r} may not see incidents")
    if selection.teams is None:
        return replace(selection, teams=tuple(sorted(visible)))
    outside = sorted(set(selection.teams) - visible)
    if outside:
        raise Forbidden(
            f"{principal.role} {principal.name!r} may not see incidents of team(s) "
            f"{', '.join(map(repr, outside))}"
        )
    return selection


def case_file(pipeline: Pipeline, principal: Principal, incident_id: int) -> CaseFile:
    """An incident's case file as ``principal`` may see it, or ``NotFound``/``Forbidden``."""
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    if found.empty:
        raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
    incident = found.iloc[0]
    team = str(incident["team"])
    principal.check(Action.READ, team)
    reports = pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
    report_ids = [int(r) for r in reports["report_id"]]
    store, j = pipeline.store, pipeline.city.jurisdiction_id
    contacts = (
        store.lookup("report_contacts", j, "report_id", report_ids)
        if principal.may(Action.CONTACTS, team)
        else None
    )
    events = store.lookup("events", j, "entity_id", [incident_id, *report_ids])
    mine = ((events["entity"] == "incident") & (events["entity_id"] == incident_id)) | (
        (events["entity"] == "report") & events["entity_id"].isin(report_ids)
    )
    history = events[mine].sort_values(["at", "id"], kind="stable", ignore_index=True)
    assignments = store.lookup("assignments", j, "incident_id", [incident_id])
    return CaseFile(incident, reports, contacts, assignments, history)


def marked_not_duplicates(pipeline: Pipeline, incident_id: int) -> frozenset[int]:
    """The incidents staff have marked "not a duplicate" of this one (or that a split took
    apart from it): the case page lists them as decided, without a duplicate score."""
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        pairs = uow.links.not_duplicates([incident_id])
    ids = {int(i) for i in pairs["incident_a"]} | {int(i) for i in pairs["incident_b"]}
    return frozenset(ids - {incident_id})
