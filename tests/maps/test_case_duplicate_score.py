"""The case page's "possible duplicates nearby" say how alike each is, by the rule's score
(Paris has no labelled duplicates, so the score is shown as uncalibrated), in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest
from browsing import LiveApp, offline

from voirie.model import Report
from voirie.services import merging
from voirie.services.staff_users import add_user
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PASSWORD = "un mot de passe assez long"
NAME = "Dana Doublons"


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_nearby_incidents_show_their_duplicate_score(
    browser: Browser, live_app: LiveApp, lang: str
) -> None:
    pipeline = live_app.pipeline
    city = pipeline.city
    if lang == "fr":
        add_user(pipeline.store, city.jurisdiction_id, NAME, "dispatcher", (), PASSWORD)
    like = pipeline.reads.incidents().iloc[0]
    now = datetime.now(UTC)
    sent = [
        pipeline.intake.submit(
            Report(
                external_id=f"score-{lang}-{k}",
                source="test",
                service_code=str(like["service_code"]),
                lon=float(like["lon"]) + k * 0.0001,  # about 7 m apart
                lat=float(like["lat"]),
                requested_at=now - timedelta(hours=2 - k),
                description="Le même problème, signalé deux fois",
            )
        )
        for k in (0, 1)
    ]
    assert sent[1].attached  # the rule joins them ...
    apart = merging.split(pipeline, sent[1].report_id, NAME, "test: kept apart")  # ... staff not
    found = pipeline.reads.incidents(Selection(ids=(apart, sent[0].incident_id)))
    mine, other = (found[found["incident_id"] == i].iloc[0] for i in (apart, sent[0].incident_id))
    x, y = pipeline.gis.project(
        np.array([mine["lon"], other["lon"]], float), np.array([mine["lat"], other["lat"]], float)
    )
    score, likely = pipeline.policy.near_scores(mine, found[found["incident_id"] != apart], x, y)
    assert np.isnan(likely).all()  # no calibration for Paris
    assert 0.8 < score[0] <= 1.0  # same service, metres and an hour apart

    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    watch = offline(page)
    target = f"/staff/incidents/{apart}"
    page.goto(f"{live_app.base}{target}")
    page.wait_for_url(re.compile(r"/staff/login\?next="))
    page.get_by_label("Identifiant").fill(NAME)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{live_app.base}{target}")
    if lang == "en":
        page.goto(f"{live_app.base}{target}?lang=en")
    merge = page.locator(f"[data-merge='{other['incident_id']}']")
    item = page.locator("#voirie-duplicates li", has=merge)
    words = {
        "fr": "ressemblance {} (score non calibré)",
        "en": "similarity {} (uncalibrated score)",
    }
    assert words[lang].format(f"{score[0]:.2f}") in item.inner_text()
    assert not watch.errors
    context.close()
