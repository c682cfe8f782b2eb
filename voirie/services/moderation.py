"""Moderation of what citizens publish: staff hide or edit a report's text, hide a photo.

The public columns of a report (``description``, ``media_url``) take the moderated
version, so every public surface (Open311, OGC items, exports, tiles, nearby, the tracking
page) shows it without knowing moderation exists; what the citizen sent stays in the
store for staff (``report_moderation``) and each act is a ``moderated`` event of the
report naming who and why. A hidden photo's files move out of the public media folder
(the API does that, it owns the folder). Dispatchers and admins moderate
(``Action.MODERATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from voirie.errors import InvalidInput, NotFound
from voirie.model import EventKind
from voirie.services.auth import Action, Principal
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import MAX_TEXT_LENGTH
from voirie.store.base import ModerationRecord

TextAction = Literal["hide", "edit", "show"]


@dataclass(frozen=True)
class Moderated:
    """A report's public content after moderation, and what the citizen sent (staff)."""

    report_id: int
    description: str | None
    media_url: str | None
    original_description: str | None
    original_media_url: str | None
    description_state: str
    hidden_photos: tuple[str, ...]
    photos: tuple[str, ...]
    unpublished: tuple[str, ...] = ()
    """Hidden photos no other report shows: their files may leave the public folder."""


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidInput("reason: say why (it is kept in the report's history)", field="reason")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"reason: at most {MAX_TEXT_LENGTH} characters", field="reason")
    return text


def _name(url: str | None) -> str | None:
    """The stored photo name a media URL ends with."""
    return None if url is None else url.rstrip("/").rsplit("/", 1)[-1]


def moderate(
    pipeline: Pipeline,
    principal: Principal,
    report_id: int,
    reason: str,
    *,
    text: TextAction | None = None,
    description: str | None = None,
    hide_photos: tuple[str, ...] = (),
    at: datetime | None = None,
) -> Moderated:
    """Hide (``text="hide"``), replace (``"edit"`` with ``description``) or show again
    (``"show"``) a report's public text, and hide photos by name; one event says who and why.
    """
    principal.check(Action.MODERATE, "")
    why = _reason(reason)
    if text == "edit" and not (description or "").strip():
        raise InvalidInput("description: the public text to show instead", field="description")
    moment = at or datetime.now(UTC)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        public = uow.moderation.public(report_id)
        if public is None:
            raise NotFound(f"report {report_id} does not exist", field="report_id")
        before = uow.moderation.get(report_id) or ModerationRecord(
            report_id, public[0], public[1], "shown", ()
        )
        photos = uow.moderation.photos(report_id)
        known = {*photos, _name(before.original_media_url)}
        unknown = [n for n in hide_photos if n not in known]
        if unknown:
            raise InvalidInput(
                f"hide_photos: report {report_id} has no photo {unknown[0][:80]!r}",
                field="hide_photos",
            )
        state = {"hide": "hidden", "edit": "edited", "show": "shown"}.get(
            text or "", before.description_state
        )
        shown_text = {
            "hidden": None,
            "edited": (description or "").strip() if text == "edit" else public[0],
            "shown": before.original_description,
        }[state]
        hidden = tuple(dict.fromkeys((*before.hidden_photos, *hide_photos)))
        media = before.original_media_url
        if _name(media) in hidden:
            visible = [n for n in photos if n not in hidden]
            media = media.rsplit("/", 1)[0] + "/" + visible[0] if media and visible else None
        record = before._replace(description_state=state, hidden_photos=hidden)
        uow.moderation.save(record, shown_text, media, moment)
        shared = uow.moderation.shown_elsewhere(report_id, hidden)
        acts = [f"text {state}"] if text else []
        acts += [f"photo hidden: {n}" for n in hide_photos]
        uow.events.append(
            "report",
            report_id,
            EventKind.MODERATED,
            principal.name,
            f"{', '.join(acts) or 'moderation'}: {why}",
            at=moment,
        )
    return Moderated(
        report_id,
        shown_text,
        media,
        record.original_description,
        record.original_media_url,
        state,
        hidden,
        photos,
        tuple(n for n in hidden if n not in shared),
    )


def moderation(pipeline: Pipeline, principal: Principal, report_id: int) -> Moderated:
    """A report's public content and what the citizen sent (staff only)."""
    principal.check(Action.MODERATE, "")
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        public = uow.moderation.public(report_id)
        if public is None:
            raise NotFound(f"report {report_id} does not exist", field="report_id")
        record = uow.moderation.get(report_id) or ModerationRecord(
            report_id, public[0], public[1], "shown", ()
        )
        photos = uow.moderation.photos(report_id)
    return Moderated(
        report_id,
        public[0],
        public[1],
        record.original_description,
        record.original_media_url,
        record.description_state,
        record.hidden_photos,
        photos,
    )


def staff_reports(pipeline: Pipeline, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report rows (``description``, ``media_url`` as the public sees them) as staff see
    them: what the citizen sent, and under ``moderation`` what the public is shown
    instead (``state`` hidden, edited or shown; the ``public_description``; the
    ``hidden_photos``), or None for a report never moderated. For the case page."""
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        records = [uow.moderation.get(int(r["report_id"])) for r in reports]
    out = []
    for report, record in zip(reports, records, strict=True):
        if record is None:
            out.append({**report, "moderation": None})
            continue
        out.append(
            {
                **report,
                "description": record.original_description,
                "media_url": record.original_media_url,
                "moderation": {
                    "state": record.description_state,
                    "public_description": report["description"],
                    "hidden_photos": list(record.hidden_photos),
                },
            }
        )
    return out
