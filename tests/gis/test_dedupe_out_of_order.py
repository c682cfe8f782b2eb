"""Reports arriving out of time order (a history imported after going live, a late upload):
a report joins an incident only if the incident began at most ``window_days`` after it,
and its recency gap is its distance to the incident's span; ``attach`` (the bulk path) and
``attach_one`` (the per-report path) decide alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from dedupecandidates import candidates_of
from hypothesis import given, settings
from hypothesis import strategies as st

from voirie.city import DedupeScoring
from voirie.gis import dedupe

X, Y = 652_271.0, 6_863_519.0  # Boulevard de Bonne-Nouvelle, Paris 2e
T0 = datetime(2024, 1, 10, tzinfo=UTC)
WINDOW = 7.0


def _stored(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Stored open incidents of service "a" at offsets from (X, Y), first and last
    reported at the given instants."""
    return pd.DataFrame(
        {
            "incident_id": np.arange(1, len(rows) + 1, dtype=np.int64),
            "x": [X + float(r.get("dx", 0.0)) for r in rows],  # type: ignore[arg-type]
            "y": [Y for _ in rows],
            "service_code": "a",
            "group": "A",
            "match": "service",
            "segment_id": None,
            "street_name": None,
            "first_reported_at": pd.to_datetime([r["first"] for r in rows], utc=True),
            "last_reported_at": pd.to_datetime([r["last"] for r in rows], utc=True),
            "status": [r.get("status", "new") for r in rows],
        }
    )


def _report(at: datetime, dx: float = 0.0) -> dict[str, object]:
    return {
        "x": X + dx,
        "y": Y,
        "service_code": "a",
        "group": "A",
        "match": "service",
        "radius_m": 30.0,
        "window_days": WINDOW,
        "requested_at": at,
        "segment_id": None,
        "street_name": None,
    }


def _both(report: dict[str, object], stored: pd.DataFrame) -> tuple[int, float, int, float]:
    """(incident, gap) of the report by ``attach`` of a one-report batch and by
    ``attach_one``."""
    scoring = DedupeScoring()
    links = dedupe.attach(pd.DataFrame([report]), stored, scoring)
    link = dedupe.attach_one(dedupe.NewReport(**report), candidates_of(stored), scoring)  # type: ignore[arg-type]
    row = links.iloc[0]
    return int(row["incident_id"]), float(row["gap_days"]), link.incident_id, link.gap_days


def test_an_old_report_opens_its_own_incident_rather_than_join_a_later_one() -> None:
    """An incident first reported years after the report, even in hand, takes none of it."""
    for status in ("new", "in_progress"):
        stored = _stored([{"first": T0, "last": T0 + timedelta(days=3), "status": status}])
        old = _report(T0 - timedelta(days=3 * 365))
        batch_id, _, one_id, _ = _both(old, stored)
        assert batch_id == one_id == dedupe.NO_INCIDENT, status
        just_beyond = _report(T0 - timedelta(days=WINDOW, hours=1))
        assert _both(just_beyond, stored)[::2] == (dedupe.NO_INCIDENT, dedupe.NO_INCIDENT)


def test_a_report_up_to_a_window_before_an_incident_joins_it_with_the_gap_to_its_start() -> None:
    stored = _stored([{"first": T0, "last": T0 + timedelta(days=20), "status": "new"}])
    for days in (WINDOW, 6.0, 0.5):
        early = _report(T0 - timedelta(days=days))
        batch_id, batch_gap, one_id, one_gap = _both(early, stored)
        assert batch_id == one_id == 1
        assert batch_gap == one_gap == days
    inside = _report(T0 + timedelta(days=10))
    assert _both(inside, stored) == (1, 0.0, 1, 0.0)


def test_an_early_report_prefers_the_incident_whose_span_is_nearer() -> None:
    """Recency is the distance to each incident's span: a report between two incidents,
    1 day before one began and 4 days after the other's last report, joins the first."""
    stored = _stored(
        [
            {"first": T0 - timedelta(days=10), "last": T0 - timedelta(days=4), "dx": 5.0},
            {"first": T0 + timedelta(days=1), "last": T0 + timedelta(days=2), "dx": 5.0},
        ]
    )
    batch_id, batch_gap, one_id, one_gap = _both(_report(T0), stored)
    assert (batch_id, one_id) == (2, 2)
    assert batch_gap == one_gap == 1.0


def test_a_batch_moves_an_incident_start_back_for_its_later_reports() -> None:
    """In one batch, a report joining an incident before its start moves the start: a
    later report of the batch sees the incident from there (the sequential pass's state),
    as it would after the first one was stored."""
    stored = _stored([{"first": T0, "last": T0, "status": "new"}])
    batch = pd.DataFrame(
        [_report(T0 - timedelta(days=6)), _report(T0 - timedelta(days=6, hours=12), dx=1.0)]
    )
    links = dedupe.attach(batch, stored, DedupeScoring())
    assert links["incident_id"].tolist() == [1, 1]
    # The earlier report is taken first (time order): 6.5 days before the start.
    assert links["gap_days"].tolist() == [0.0, 6.5]


hours = st.integers(-24 * 40, 24 * 40)


@settings(max_examples=400, deadline=None)
@given(
    found=st.lists(
        st.tuples(hours, st.integers(0, 24 * 20), st.integers(-40, 40), st.booleans()),
        min_size=1,
        max_size=5,
    ),
    at=hours,
)
def test_attach_and_attach_one_agree_out_of_order(
    found: list[tuple[int, int, int, bool]], at: int
) -> None:
    """Stored incidents spanning any time around the report, in hand or not: the bulk
    and per-report paths give the same link."""
    stored = _stored(
        [
            {
                "first": T0 + timedelta(hours=start),
                "last": T0 + timedelta(hours=start + length),
                "dx": float(dx),
                "status": "acknowledged" if in_hand else "new",
            }
            for start, length, dx, in_hand in found
        ]
    )
    batch_id, batch_gap, one_id, one_gap = _both(_report(T0 + timedelta(hours=at)), stored)
    assert (batch_id, batch_gap) == (one_id, one_gap)
    if batch_id != dedupe.NO_INCIDENT:
        first = stored.set_index("incident_id").at[batch_id, "first_reported_at"]
        assert first <= pd.Timestamp(T0 + timedelta(hours=at)) + pd.Timedelta(days=WINDOW)
