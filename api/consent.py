"""The links of citizens' emails: confirm an address, stop emails, answer "is it fixed?".

A GET shows the question with buttons; only the POST a button sends acts (a mail
scanner that follows links acts on nothing). The path's ``token`` is a confirmation
token (hashed in the store) or an address's link secret, never an email address. See
:mod:`voirie.services.consent`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from voirie.api.deps import IncidentId, PipelineDep
from voirie.api.pages import PAGE_HEADERS, Language, language_urls
from voirie.maps.consent_page import LABELS, Choice, render_consent_page
from voirie.services import consent
from voirie.services.pipeline import Pipeline
from voirie.store.schema import MAX_ID

router = APIRouter(tags=["citizens"])
# Pages whose URL holds a secret: never sent on as a referrer, never cached.
_PRIVATE_HEADERS = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
OptionalIncident = Annotated[
    int | None, Form(ge=1, le=MAX_ID, description="the incident to stop emails about")
]


def _page(
    request: Request, pipeline: Pipeline, lang: str, title: str, message: str, **rest: object
) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = render_consent_page(
        city_name=pipeline.city.config.name,
        lang=lang,
        title=title,
        message=message,
        static_url=f"{root}/static",
        language_urls=language_urls(request),
        **rest,  # type: ignore[arg-type]  # action and choices
    )
    return HTMLResponse(page, headers=_PRIVATE_HEADERS)


@router.get("/courriel/confirmer/{token}", response_class=HTMLResponse, summary="Confirm an email")
def confirm_page(
    request: Request, pipeline: PipelineDep, token: str, lang: Language = "fr"
) -> HTMLResponse:
    """The confirmation link of an address: a button that confirms it."""
    words = LABELS[lang]
    choice = Choice(words["confirm_button"], "confirmer", "1")
    return _page(
        request, pipeline, lang, words["confirm_title"], words["confirm_ask"], choices=[choice]
    )


@router.post("/courriel/confirmer/{token}", response_class=HTMLResponse, summary="Confirm an email")
async def confirm(
    request: Request, pipeline: PipelineDep, token: str, lang: Language = "fr"
) -> HTMLResponse:
    """Confirm the address; the emails held for it leave."""
    await run_in_threadpool(consent.confirm, pipeline, token)
    words = LABELS[lang]
    return _page(request, pipeline, lang, words["confirm_title"], words["confirmed"])


@router.get("/courriel/{token}/desabonner", response_class=HTMLResponse, summary="Stop emails")
def unsubscribe_page(
    request: Request,
    pipeline: PipelineDep,
    token: str,
    lang: Language = "fr",
    incident_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """Stop the emails about one incident, or every email to the address."""
    consent.known_link(pipeline, token)
    words = LABELS[lang]
    choices = [Choice(words["stop_all"], "tout", "1")]
    if incident_id is not None:
        one = Choice(words["stop_one"], "incident_id", str(incident_id))
        choices.insert(0, one)
    return _page(request, pipeline, lang, words["stop_title"], words["stop_ask"], choices=choices)


@router.post("/courriel/{token}/desabonner", response_class=HTMLResponse, summary="Stop emails")
async def unsubscribe(
    request: Request,
    pipeline: PipelineDep,
    token: str,
    incident_id: OptionalIncident = None,
    lang: Language = "fr",
) -> HTMLResponse:
    """One incident (``incident_id``) or everything (no ``incident_id``)."""
    await run_in_threadpool(consent.unsubscribe, pipeline, token, incident_id)
    words = LABELS[lang]
    done = (
        words["stopped_all"]
        if incident_id is None
        else words["stopped_one"].format(incident=incident_id)
    )
    return _page(request, pipeline, lang, words["stop_title"], done)


@router.get(
    "/courriel/{token}/resolu/{incident_id}", response_class=HTMLResponse, summary="Is it fixed?"
)
def answer_page(
    request: Request,
    pipeline: PipelineDep,
    token: str,
    incident_id: IncidentId,
    lang: Language = "fr",
) -> HTMLResponse:
    """The "is it fixed?" question about a resolved incident: Oui / Non buttons."""
    consent.known_link(pipeline, token)
    words = LABELS[lang]
    choices = [Choice(words["yes"], "reponse", "oui"), Choice(words["no"], "reponse", "non")]
    ask = words["answer_ask"].format(incident=incident_id)
    return _page(request, pipeline, lang, words["answer_title"], ask, choices=choices)


@router.post(
    "/courriel/{token}/resolu/{incident_id}", response_class=HTMLResponse, summary="Is it fixed?"
)
async def answer(
    request: Request,
    pipeline: PipelineDep,
    token: str,
    incident_id: IncidentId,
    reponse: Annotated[Literal["oui", "non"], Form(description="oui: fixed; non: reopen")],
    lang: Language = "fr",
) -> HTMLResponse:
    """Record the answer; "non" reopens the incident."""
    given = await run_in_threadpool(consent.answer, pipeline, token, incident_id, reponse == "oui")
    words = LABELS[lang]
    said = words["answered_yes"] if given.fixed else words["answered_no"]
    return _page(request, pipeline, lang, words["answer_title"], said.format(incident=incident_id))
