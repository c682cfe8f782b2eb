"""The case page's "possible duplicates nearby" say how alike each is, by the rule's score
(Paris has no labelled duplicates, so the score is shown as uncalibrated); one that staff
marked "not a duplicate" says so instead, with no score and no merge, in Chromium, in
French and English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest
from browsing import LiveApp, offline
from living import PASSWORD, sign_in_page

from voirie.model import Report, Status
from voirie.services import merging
from voirie.services.auth import Principal, Role
from voirie.services.staff_users import add_user
from voirie.services.workflow import change_status
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from voirie.services.pipeline import Pipeline

NAME = "Dana Doublons"
SCORE = {"fr": "ressemblance {} (score non calibré)", "en": "similarity {} (uncalibrated score)"}
MARKED = {"fr": "marqué « pas un doublon »", "en": "marked “not a duplicate”"}


def _two_open_neighbours(pipeline: Pipeline) -> tuple[int, int]:
    """Two open incidents of one service about 7 m and an hour apart that the rule did not
    join (the first was resolved when the second came, then reopened): a possible
    duplicate nobody has decided on."""
    like = pipeline.reads.incidents().iloc[0]
    city, staff = pipeline.city, Principal(NAME, Role.DISPATCHER)
    now = datetime.now(UTC)

    def submit(k: int) -> int:
        report = Report(
            external_id=f"score-{k}",
            source="test",
            service_code=str(like["service_code"]),
            lon=float(like["lon"]) + k * 0.0001,
            lat=float(like["lat"]),
            requested_at=now - timedelta(hours=2 - k),
            description="Le même problème, signalé deux fois",
        )
        return int(pipeline.intake.submit(report).incident_id)

    first = submit(0)
    change_status(pipeline.store, city, first, staff, Status.RESOLVED)
    second = submit(1)
    assert second != first
    change_status(pipeline.store, city, first, staff, Status.IN_PROGRESS)  # reopened
    return first, second


def _item(page: Page, base: str, target: str, other: int, lang: str) -> str:
    page.goto(f"{base}{target}" + ("?lang=en" if lang == "en" else ""))
    link = page.get_by_role("link", name=f"#{other}", exact=True)
    item = page.locator("#voirie-duplicates li", has=link)
    item.wait_for()
    return item.inner_text()


@pytest.mark.browser
def test_nearby_incidents_show_their_duplicate_score_unless_marked(
    browser: Browser, live_app: LiveApp
) -> None:
    pipeline = live_app.pipeline
    add_user(pipeline.store, pipeline.city.jurisdiction_id, NAME, "dispatcher", (), PASSWORD)
    mine, other = _two_open_neighbours(pipeline)
    found = pipeline.reads.incidents(Selection(ids=(mine, other)))
    rows = [found[found["incident_id"] == i].iloc[0] for i in (mine, other)]
    x, y = pipeline.gis.project(
        np.array([r["lon"] for r in rows], float), np.array([r["lat"] for r in rows], float)
    )
    score, likely = pipeline.policy.near_scores(rows[0], found[found["incident_id"] == other], x, y)
    assert np.isnan(likely).all()  # no calibration for Paris
    assert 0.8 < score[0] <= 1.0  # same service, metres and an hour apart

    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    watch = offline(page)
    target = f"/staff/incidents/{mine}"
    sign_in_page(page, live_app.base, NAME, target)
    for lang in ("fr", "en"):
        text = _item(page, live_app.base, target, other, lang)
        assert SCORE[lang].format(f"{score[0]:.2f}") in text
        assert MARKED[lang] not in text
    assert page.locator(f"[data-merge='{other}']").count() == 1

    merging.not_duplicates(pipeline, mine, other, NAME, "test: deux tags distincts")
    for lang in ("fr", "en"):
        text = _item(page, live_app.base, target, other, lang)
        assert MARKED[lang] in text
        assert SCORE[lang].split(" ")[0] not in text  # no score at all
    assert page.locator(f"[data-merge='{other}'], [data-apart='{other}']").count() == 0
    assert not watch.errors
    context.close()
