"""The review list of learned routing rules for signed-in staff (``/staff/regles``,
issue 18 item 2): the page, and its accept / reject / revert forms (anti-forgery token in
the form; who may decide is the services' ``Action.RULES``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from voirie.api.deps import PipelineDep
from voirie.api.pages import PAGE_HEADERS
from voirie.api.staff_pages import page_context
from voirie.api.staff_session import CsrfChecked, StaffPage
from voirie.maps.staff_rules import render_rules_page
from voirie.services import learned_routing
from voirie.services.auth import Action

router = APIRouter(tags=["staff pages"], include_in_schema=False)

Language = Annotated[Literal["fr", "en"], Query(description="page language")]
# Path word of each decision -> the status it gives the version.
DECIDED = {
    "accept": learned_routing.ACTIVE,
    "reject": learned_routing.REJECTED,
    "revert": learned_routing.REVERTED,
}


@router.get("/staff/regles", response_class=HTMLResponse)
def rules_page(
    request: Request, pipeline: PipelineDep, principal: StaffPage, lang: Language = "fr"
) -> HTMLResponse:
    """Every learned rule version, with the decisions this staff member may take."""
    versions = learned_routing.versions(pipeline.store, pipeline.city)
    page = render_rules_page(
        page_context(request, principal, lang, "rules"),
        city=pipeline.city,
        versions=versions,
        explain={(r.service_code, r.version): learned_routing.explain(r) for r in versions},
        rule_ids={r.service_code: learned_routing.rule_id(r.service_code) for r in versions},
        may_review=principal.may(Action.RULES),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.post("/staff/regles/{service}/{decision}", dependencies=[CsrfChecked])
def decide(
    request: Request,
    pipeline: PipelineDep,
    principal: StaffPage,
    service: Annotated[str, Path(max_length=100)],
    decision: Literal["accept", "reject", "revert"],
    lang: Language = "fr",
) -> RedirectResponse:
    """Take a decision on a sub-category's learned rule, then back to the list (303). The
    other processes of the server follow within ``routing.learning.refresh_s``."""
    learned_routing.decide(pipeline.store, pipeline.city, service, DECIDED[decision], principal)
    pipeline.live_routing.invalidate()
    root = request.scope.get("root_path", "")
    suffix = "" if lang == "fr" else f"?lang={lang}"
    return RedirectResponse(f"{root}/staff/regles{suffix}", status_code=303)
