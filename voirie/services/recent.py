"""The default time window of the views: the last N days *with data*.

A view without dates (the dispatch map, Open311 GET) shows the most recent days. Counted
back from the newest item, one new report after a store loaded with history would leave
its own day and nothing else (issue 16: the dispatch map fell from 3,893 incidents to 2);
counted back from now, a store of history would show nothing. Counting the last N local
days that hold at least one item gives both: a live city (data every day) sees its last N
days, a store of history its last N days of history, and a new report pushes at most one
day out of the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pandas as pd


def days_with_data_start(instants: pd.Series, days: int, timezone: str) -> pd.Timestamp | None:
    """Local midnight starting the oldest of the ``days`` most recent days (in the city's
    timezone) holding one of ``instants``; None when there is none."""
    known = pd.to_datetime(instants.dropna(), utc=True)
    if known.empty:
        return None
    local_days = known.dt.tz_convert(timezone).dt.normalize().drop_duplicates()
    return pd.Timestamp(local_days.nlargest(days).min())


def request_days_start(
    newest_before: Callable[[datetime], datetime | None],
    days: int,
    timezone: str,
    until: datetime,
) -> datetime | None:
    """Local midnight starting the oldest of the ``days`` most recent days (in the city's
    timezone) on which a request was made before ``until``; None when none was.

    ``newest_before`` is the store's probe "the newest request before this instant" (one
    index entry): at most ``days`` probes, skipping any gap in the data at once.
    """
    zone = ZoneInfo(timezone)
    start = None
    probe = newest_before(until)
    for _ in range(days):
        if probe is None:
            break
        start = datetime.combine(probe.astimezone(zone).date(), time(), zone).astimezone(UTC)
        probe = newest_before(start)
    return start
