"""Due dates in the city's working time: weekends, working hours and public holidays.

An SLA is calendar hours (the clock never stops) or working time (``working_hours``, or
``working_days`` = that many full working days of ``workday_start``..``workday_end``),
counted in the city's timezone on its calendar (``routing.calendar``: weekend days and
the public holidays of ``country`` from the ``holidays`` package). Working time starts at
the report: a report made at night or on a holiday starts counting at the next working
day's opening. Everything is vectorized (``numpy.busday_offset``), one call per batch.

The escalation deadline is the same computation with the SLA multiplied by
``routing.escalation.factor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

import holidays
import numpy as np
import pandas as pd

from voirie.city import WEEKDAYS, Calendar, City
from voirie.errors import CityConfigError
from voirie.model import OPEN_STATUSES

_MINUTES_PER_HOUR = 60.0
# Public holidays are looked up for these years around the instants asked for.
_YEAR_MARGIN = 1


def _hours(moment: time) -> float:
    return moment.hour + moment.minute / _MINUTES_PER_HOUR


def workday_hours(calendar: Calendar) -> float:
    """Length of one working day of a city calendar, in hours."""
    return _hours(calendar.workday_end) - _hours(calendar.workday_start)


@dataclass(frozen=True)
class WorkCalendar:
    """A city's working time: weekmask, holidays, daily opening hours, timezone."""

    timezone: str
    weekmask: str
    holidays: tuple[date, ...]
    start_h: float
    end_h: float

    @property
    def day_hours(self) -> float:
        """Length of one working day, in hours."""
        return self.end_h - self.start_h

    def calendar(self) -> np.busdaycalendar:
        """The numpy business-day calendar (weekmask and holidays)."""
        return np.busdaycalendar(
            weekmask=self.weekmask, holidays=np.array(self.holidays, dtype="datetime64[D]")
        )

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (not a weekend day, not a public holiday)."""
        return bool(np.is_busday(np.datetime64(day, "D"), busdaycal=self.calendar()))


def work_calendar(city: City, years: range) -> WorkCalendar:
    """The city's calendar with its public holidays for ``years``."""
    cal = city.config.routing.calendar
    try:
        days = holidays.country_holidays(cal.country, subdiv=cal.subdivision, years=years)
    except NotImplementedError as exc:
        raise CityConfigError(
            [f"{city.folder / 'city.yaml'}: routing.calendar: no public holidays known for "
             f"country {cal.country!r} subdivision {cal.subdivision!r}: {exc}"]
        ) from exc
    weekmask = "".join("0" if day in cal.weekend else "1" for day in WEEKDAYS)
    return WorkCalendar(
        timezone=city.config.timezone, weekmask=weekmask, holidays=tuple(sorted(days)),
        start_h=_hours(cal.workday_start), end_h=_hours(cal.workday_end),
    )


def calendar_for(city: City, instants: pd.Series) -> WorkCalendar:
    """The city's calendar covering every year of ``instants`` (and the next, for deadlines)."""
    years = pd.to_datetime(instants, utc=True).dt.year.dropna()
    first = int(years.min()) if len(years) else datetime.now().year
    last = int(years.max()) if len(years) else first
    return work_calendar(city, range(first - _YEAR_MARGIN, last + _YEAR_MARGIN + 2))


def add_working_hours(
    calendar: WorkCalendar, start: pd.Series, hours: np.ndarray
) -> pd.Series:
    """``start`` (UTC instants) plus ``hours`` of working time, as UTC instants (NaT for NaN)."""
    local = pd.to_datetime(start, utc=True).dt.tz_convert(calendar.timezone)
    day = local.dt.tz_localize(None).dt.normalize().to_numpy("datetime64[D]")
    clock = (local.dt.hour + local.dt.minute / 60 + local.dt.second / 3600).to_numpy(float)
    busdays = calendar.calendar()
    open_day = np.is_busday(day, busdaycal=busdays)
    # Before opening: counting starts at opening; after closing or on a day off: at the
    # next working day's opening.
    late = open_day & (clock >= calendar.end_h)
    day = np.where(
        open_day,
        np.where(late, np.busday_offset(day, 1, roll="forward", busdaycal=busdays), day),
        np.busday_offset(day, 0, roll="forward", busdaycal=busdays),
    )
    clock = np.where(~open_day | late, calendar.start_h, np.maximum(clock, calendar.start_h))
    today = calendar.end_h - clock
    remaining = np.asarray(hours, dtype=float)
    valid = ~np.isnan(remaining)
    rest = np.where(valid, remaining, 0.0) - today
    later = rest > 0
    # Further working days needed after today, and the hours used on the last one.
    extra = np.where(later, np.ceil(rest / calendar.day_hours), 0).astype(np.int64)
    last_hours = rest - (extra - 1) * calendar.day_hours
    due_day = np.busday_offset(day, extra, roll="forward", busdaycal=busdays)
    due_clock = np.where(
        later, calendar.start_h + last_hours, clock + np.where(valid, remaining, 0)
    )
    due_local = pd.Series(
        due_day.astype("datetime64[ns]") + (due_clock * 3600e9).round().astype("timedelta64[ns]"),
        index=start.index,
    )
    due = due_local.dt.tz_localize(
        calendar.timezone, ambiguous="NaT", nonexistent="shift_forward"
    ).dt.tz_convert("UTC")
    return due.where(valid)


def due_dates(
    calendar: WorkCalendar, start: pd.Series, hours: np.ndarray, working_hours: np.ndarray,
    factor: float = 1.0,
) -> pd.Series:
    """Deadline of each row: ``factor`` × its calendar hours or working hours after ``start``.

    A row has one of the two (the other NaN); a row with neither has no deadline (NaT).
    """
    starts = pd.to_datetime(start, utc=True)
    by_clock = starts + pd.to_timedelta(np.asarray(hours, float) * factor, unit="h")
    by_work = add_working_hours(calendar, starts, np.asarray(working_hours, float) * factor)
    return by_clock.where(by_clock.notna(), by_work)


def overdue(incidents: pd.DataFrame, now: datetime) -> pd.Series:
    """The ``overdue`` state: open incidents (``status``) whose ``due_at`` has passed."""
    open_now = incidents["status"].isin([s.value for s in OPEN_STATUSES])
    due = pd.to_datetime(incidents["due_at"], utc=True)
    return open_now & due.notna() & (due < pd.Timestamp(now))
