"""The citizens' report form (``/signaler``) and the private tracking page (``/suivi/{token}``).

The form posts JSON to ``/api/v1/reports``, which goes through the same pipeline as an
Open311 POST (``Intake.submit``: stored, snapped, deduplicated, routed), without an API key
since the form is the city's own, but with the same field rules and body limits. Photos
are sent first, one per request, to ``/api/v1/photos``: they get the Open311 photo rules
(``clean_image``: formats, bytes, pixels, metadata stripped) and are served by the Open311
media route. The answer names the incident the report joined or opened, and the private
tracking link (only its hash is stored, see :mod:`voirie.services.tracking`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.open311.deps import SettingsDep
from voirie.api.open311.media import MEDIA_NAME, clean_image, store_files
from voirie.api.open311.media_form import MediaForm
from voirie.api.open311.settings import Open311Settings
from voirie.api.open311.submit import MAX_DESCRIPTION, MAX_IDEMPOTENCY_KEY
from voirie.api.pages import PAGE_HEADERS, Language, language_urls, outlines
from voirie.errors import InvalidInput
from voirie.ingest.attributes import MAX_FIELD, check_attributes
from voirie.maps.report_form import PhotoRules, render_signaler_page, render_tracking_page
from voirie.model import Contact, Report
from voirie.services import tracking
from voirie.services.citizens import MAX_EMAIL_LENGTH
from voirie.services.intake import Retry
from voirie.services.pipeline import Pipeline
from voirie.settings import LimitSettings

router = APIRouter(tags=["citizens"])
log = logging.getLogger(__name__)

FORM_SOURCE = "signaler"
"""Source (and Open311 channel) of the reports sent with the city's own form."""
MAX_PHOTOS = 3
MAX_SIDE_PX = 2048
"""Longest side the form resizes a photo to before sending it (a phone photo is 4000+)."""
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The tracking page holds a secret in its URL: never sent on as a referrer, never cached.
PHOTO_FIELD = "photo"
PHOTO_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [PHOTO_FIELD],
                "additionalProperties": False,
                "properties": {
                    PHOTO_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "a JPEG, PNG or WebP photo",
                    }
                },
            },
            "encoding": {PHOTO_FIELD: {"contentType": "image/jpeg, image/png, image/webp"}},
        }
    },
}
_PRIVATE_HEADERS = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class FormReport(BaseModel):
    """A report as the form sends it (contact fields are private: never published)."""

    service_code: str = Field(min_length=1, max_length=MAX_FIELD)
    lat: float = Field(ge=-90, le=90, description="WGS84 latitude of the pin")
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude of the pin")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    address: str | None = Field(default=None, max_length=MAX_FIELD)
    attributes: dict[str, list[str]] = Field(
        default_factory=dict, description="answers to the service's questions: code -> values"
    )
    photos: list[str] = Field(
        default_factory=list, max_length=MAX_PHOTOS, description="names /api/v1/photos gave"
    )
    name: str | None = Field(default=None, max_length=MAX_FIELD)
    email: str | None = Field(default=None, max_length=MAX_EMAIL_LENGTH)
    phone: str | None = Field(default=None, max_length=40)
    website: str | None = Field(
        default=None,
        max_length=MAX_FIELD,
        description="leave empty: a field people never see, which robots fill in",
    )
    lang: Literal["fr", "en"] | None = Field(
        default=None, description="language of the emails to the sender (city's default)"
    )


class FormAnswer(BaseModel):
    """Where the report went, and the sender's private tracking link."""

    report_id: int
    incident_id: int
    attached: bool = Field(description="true when it joined an incident already open")
    tracking_url: str = Field(description="private link to follow the report: keep it")


class PhotoStored(BaseModel):
    """A photo stored for a report to come: send its ``name`` with the report."""

    name: str
    url: str
    thumbnail_url: str
    width: int
    height: int
    size_bytes: int


def photo_rules(request: Request, settings: Open311Settings) -> PhotoRules:
    """What the form must respect when it resizes photos: the Open311 photo rules and
    the body limit of ``/api/v1/photos`` (one photo per request)."""
    limits: LimitSettings = getattr(request.app.state, "limit_settings", None) or LimitSettings()
    room = limits.body_max_bytes - limits.multipart_overhead_bytes
    return PhotoRules(
        max_photos=MAX_PHOTOS,
        max_bytes=max(1, min(settings.media_max_bytes, room)),
        max_pixels=settings.media_max_pixels,
        max_side_px=MAX_SIDE_PX,
    )


@router.get("/signaler", response_class=HTMLResponse, summary="Report a problem (citizens)")
def signaler_page(
    request: Request, pipeline: PipelineDep, settings: SettingsDep, lang: Language = "fr"
) -> HTMLResponse:
    """The report form: pin, category, questions, description, photos, contact."""
    root = request.scope.get("root_path", "")
    page = render_signaler_page(
        city=pipeline.city,
        lang=lang,
        static_url=f"{root}/static",
        api_url=f"{root}/api/v1",
        open311_url=f"{root}/open311/v2",
        nearby_url=f"{root}/maps/nearby",
        background=outlines(pipeline),
        language_urls=language_urls(request),
        photos=photo_rules(request, settings),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/suivi/{token}", response_class=HTMLResponse, summary="Follow my report (private)")
def tracking_page(
    request: Request, pipeline: PipelineDep, token: str, lang: Language = "fr"
) -> HTMLResponse:
    """The sender's private page: status, public notes, dates and photos of the report."""
    mine = tracking.find(pipeline, token)
    root = request.scope.get("root_path", "")
    page = render_tracking_page(
        mine,
        city_name=pipeline.city.config.name,
        lang=lang,
        timezone=pipeline.city.config.timezone,
        static_url=f"{root}/static",
        api_url=f"{root}/api/v1",
        media_url=f"{root}/open311/v2/media",
        report_url=f"{root}/signaler",
        nearby_url=f"{root}/maps/nearby",
        language_urls=language_urls(request),
    )
    return HTMLResponse(page, headers=_PRIVATE_HEADERS)


@router.post(
    "/api/v1/photos",
    status_code=201,
    summary="Store a photo for the report form",
    responses={413: {"description": "Too large."}, 415: {"description": "Not a photo."}},
    openapi_extra={"requestBody": PHOTO_BODY},
)
async def upload_photo(request: Request, settings: SettingsDep) -> PhotoStored:
    """Store one photo without its metadata (the Open311 photo rules); answer its name.

    The body is read as it arrives, in memory, refused as soon as it passes the photo
    limit: nothing reaches the disk before the image is clean (``MediaForm``)."""
    form = MediaForm(request.headers.get("content-type"), settings.media_max_bytes, PHOTO_FIELD)
    async for chunk in request.stream():
        form.feed(chunk)
    data = form.finish()
    if form.fields:  # as the schema says (additionalProperties: false)
        extra = next(iter(form.fields))[:40]
        raise InvalidInput(
            f"{extra}: unknown form field; send only the field {PHOTO_FIELD!r}", field=extra
        )
    image, thumbnail, (width, height) = await run_in_threadpool(clean_image, data, settings)
    digest = hashlib.sha256(image).hexdigest()
    names = (f"{digest}.jpg", f"{digest}.thumb.jpg")
    await run_in_threadpool(store_files, settings.media_dir, {names[0]: image, names[1]: thumbnail})
    return PhotoStored(
        name=names[0],
        url=str(request.url_for("get_media", name=names[0])),
        thumbnail_url=str(request.url_for("get_media", name=names[1])),
        width=width,
        height=height,
        size_bytes=len(image),
    )


@router.post("/api/v1/reports", status_code=201, summary="Send a report (citizens' form)")
async def send_report(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    body: FormReport,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_IDEMPOTENCY_KEY,
            description="the form's key for this report: a resend stores it once",
        ),
    ] = None,
) -> FormAnswer:
    """Submit the report through the Open311 pipeline; answer its incident and tracking link.

    A filled trap field (``website``) is a robot's: it gets the usual answer, with a link
    that opens nothing, and nothing is stored or sent (it learns nothing to adapt to)."""
    base = public_base(request)
    if body.website:
        log.info("report form: trap field filled, report dropped")
        return FormAnswer(
            report_id=0,
            incident_id=0,
            attached=False,
            tracking_url=f"{base}/suivi/{secrets.token_urlsafe(tracking.TOKEN_BYTES)}",
        )
    report, photos = _report(request, pipeline, settings, body)
    retry = Retry(FORM_SOURCE, idempotency_key, settings.resubmit_window_s)

    def link(token: str) -> str:
        return f"{base}/suivi/{token}"

    sent = await run_in_threadpool(
        lambda: tracking.send(pipeline, report, retry, photos, link, language=body.lang)
    )
    return FormAnswer(
        report_id=sent.submission.report_id,
        incident_id=sent.submission.incident_id,
        attached=sent.submission.attached,
        tracking_url=link(sent.token),
    )


def _report(
    request: Request, pipeline: Pipeline, settings: Open311Settings, body: FormReport
) -> tuple[Report, list[str]]:
    """The form's fields checked as an Open311 POST's are, as a ``Report``, and the names
    of its photos."""
    service = pipeline.city.services.get(body.service_code)
    if service is None:
        raise InvalidInput(
            f"service_code: no service {body.service_code[:80]!r} in {pipeline.city.config.name}",
            field="service_code",
        )
    answers = check_attributes(service, body.attributes)
    for name in body.photos:
        if not MEDIA_NAME.fullmatch(name) or ".thumb." in name:
            raise InvalidInput(
                f"photos: {name[:80]!r} is not a stored photo's name", field="photos"
            )
        if not (settings.media_dir / name).is_file():
            raise InvalidInput(f"photos: no stored photo {name!r}; send it first", field="photos")
    email = _text(body.email)
    if email is not None and not _EMAIL.fullmatch(email):
        raise InvalidInput("email: not an email address", field="email")
    photos = list(dict.fromkeys(body.photos))
    media_url = str(request.url_for("get_media", name=photos[0])) if photos else None
    report = Report(
        external_id="",  # derived by intake from the form's Idempotency-Key
        source=FORM_SOURCE,
        service_code=service.code,
        lon=body.lon,
        lat=body.lat,
        requested_at=datetime.now(UTC),
        description=_text(body.description),
        address=_text(body.address),
        channel=FORM_SOURCE,
        media_url=media_url,
        contact=Contact(name=_text(body.name), email=email, phone=_text(body.phone)),
        attributes=tuple(answers),
    )
    return report, photos


def _text(value: str | None) -> str | None:
    """A field stripped; None when blank."""
    value = value.strip() if value is not None else None
    return value or None
