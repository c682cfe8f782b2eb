"""Moderation (staff): hide or edit the public text of a report, hide a photo.

``/api/v1/moderation/reports/{id}`` reads (GET) or changes (POST) a report's public
content; the answer also gives what the citizen sent, which only staff see. A hidden
photo's files move from the public media folder to its ``hidden`` subfolder, so the
Open311 media route answers 404 for it, and staff still see it at
``/api/v1/moderation/photos/{name}`` (dispatchers and admins: ``Action.MODERATE``) and, on
the case page, at ``/staff/photos/{name}`` (any signed-in staff member). A photo is one
file per picture (its name is its hash): its file stays public while another report
still shows it. See :mod:`voirie.services.moderation`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from voirie.api.auth import require
from voirie.api.deps import PipelineDep, ReportId
from voirie.api.open311.deps import SettingsDep
from voirie.api.open311.media import MEDIA_NAME
from voirie.api.staff_session import StaffUser
from voirie.api.validation import StoredText
from voirie.errors import NotFound
from voirie.services import moderation
from voirie.services.auth import PERMISSIONS, Action, Principal
from voirie.services.moderation import TextAction
from voirie.services.workflow import MAX_TEXT_LENGTH

api = APIRouter(prefix="/api/v1/moderation", tags=["staff"])
pages = APIRouter(prefix="/staff", tags=["staff pages"], include_in_schema=False)
Moderator = Annotated[Principal, Depends(require(*PERMISSIONS[Action.MODERATE]))]
HIDDEN = "hidden"
"""Subfolder of the media folder where hidden photos are kept (not served publicly)."""


class ModerationIn(BaseModel):
    """What to change of a report's public content, and why (kept in its history)."""

    reason: StoredText = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    text: TextAction | None = Field(
        default=None, description="hide, edit (with description) or show again the text"
    )
    description: StoredText | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    hide_photos: list[str] = Field(default_factory=list, max_length=10)


class ModerationOut(BaseModel):
    """A report's public content and what the citizen sent (staff only)."""

    report_id: int
    description: str | None
    media_url: str | None
    original_description: str | None
    original_media_url: str | None
    description_state: str
    hidden_photos: list[str]
    photos: list[str]


def _out(done: moderation.Moderated) -> ModerationOut:
    return ModerationOut(
        report_id=done.report_id,
        description=done.description,
        media_url=done.media_url,
        original_description=done.original_description,
        original_media_url=done.original_media_url,
        description_state=done.description_state,
        hidden_photos=list(done.hidden_photos),
        photos=list(done.photos),
    )


def hide_files(folder: Path, names: list[str]) -> None:
    """Move photos (and their thumbnails) out of the public media folder."""
    hidden = folder / HIDDEN
    hidden.mkdir(parents=True, exist_ok=True)
    for name in names:
        for file in (name, name.replace(".jpg", ".thumb.jpg")):
            if (folder / file).is_file():
                os.replace(folder / file, hidden / file)


@api.get("/reports/{report_id}", summary="A report's public content and its original")
def get_moderation(
    pipeline: PipelineDep, principal: Moderator, report_id: ReportId
) -> ModerationOut:
    """What the public sees of a report, what the citizen sent, what is hidden."""
    return _out(moderation.moderation(pipeline, principal, report_id))


@api.post("/reports/{report_id}", summary="Hide or edit a report's text, hide photos")
async def moderate(
    pipeline: PipelineDep,
    principal: Moderator,
    settings: SettingsDep,
    report_id: ReportId,
    body: ModerationIn,
) -> ModerationOut:
    """Change the public content of a report; the report's history records who and why."""
    done = await run_in_threadpool(
        lambda: moderation.moderate(
            pipeline,
            principal,
            report_id,
            body.reason,
            text=body.text,
            description=body.description,
            hide_photos=tuple(body.hide_photos),
        )
    )
    # Only the files no other report shows (one file per picture: see shown_elsewhere).
    await run_in_threadpool(hide_files, settings.media_dir, list(done.unpublished))
    return _out(done)


@api.get(
    "/photos/{name}",
    summary="A photo, hidden or not (staff)",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The photo."}},
)
def photo(principal: Moderator, settings: SettingsDep, name: str) -> FileResponse:
    """A report's photo by name, from the public folder or the hidden one."""
    return _photo(settings.media_dir, name)


@pages.get("/photos/{name}", response_class=FileResponse)
def page_photo(principal: StaffUser, settings: SettingsDep, name: str) -> FileResponse:
    """A photo, hidden or not, for the case page (the session's staff member): staff see
    what the citizen sent, the hidden photos with a "masked to the public" mark."""
    return _photo(settings.media_dir, name)


def _photo(media_dir: Path, name: str) -> FileResponse:
    for folder in (media_dir / HIDDEN, media_dir):
        path = folder / name
        if MEDIA_NAME.fullmatch(name) and path.is_file():
            return FileResponse(path, media_type="image/jpeg")
    raise NotFound(f"name: no photo {name[:80]!r}", field="name")


router = APIRouter()
"""The moderation API and the staff pages' photo route, as the app includes them."""
router.include_router(api)
router.include_router(pages)
