"""Due dates in the city's working time: weekends, working hours and public holidays.

An SLA is calendar hours (the clock never stops) or working time (``working_hours``, or
``working_days`` = that many full working days of ``workday_start``..``workday_end``),
counted in the city's timezone on its calendar (``routing.calendar``: weekend days and
the public holidays of ``country`` from the ``holidays`` package). Working time starts at
the report: a report made at night or on a holiday starts counting at the next working
day's opening. Everything is vectorized (``numpy.busday_offset``), one call per batch;
``due_date`` is the same computation for one report (the same numpy formula on scalars,
the timezone through ``zoneinfo``), on a calendar built once per city (``calendar_at``).

The escalation deadline is the same computation with the SLA multiplied by
``routing.escalation.factor``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import holidays
import holidays.registry
import numpy as np
import pandas as pd
from holidays.holiday_base import HolidayBase

from voirie.city import WEEKDAYS, Calendar, City
from voirie.errors import CityConfigError
from voirie.model import OPEN_STATUSES

_MINUTES_PER_HOUR = 60.0
_MICROSECONDS_PER_HOUR = 3600e6
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
    years: range

    @property
    def day_hours(self) -> float:
        """Length of one working day, in hours."""
        return self.end_h - self.start_h

    @cached_property
    def busdays(self) -> np.busdaycalendar:
        """The numpy business-day calendar (weekmask and holidays), built once."""
        return np.busdaycalendar(
            weekmask=self.weekmask, holidays=np.array(self.holidays, dtype="datetime64[D]")
        )

    @cached_property
    def zone(self) -> ZoneInfo:
        """The city's timezone."""
        return ZoneInfo(self.timezone)

    def covers(self, first: int, last: int) -> bool:
        """Whether the public holidays of ``first``..``last`` (years) are all known."""
        return self.years.start <= first and last < self.years.stop

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (not a weekend day, not a public holiday)."""
        return bool(np.is_busday(np.datetime64(day, "D"), busdaycal=self.busdays))


def _country_module(module: str) -> ModuleType:
    """``holidays.countries.<module>``, imported without the package's ``__init__``
    (which imports the 250 countries' modules at once: 0.1 s of every routed import),
    registered under its name so that a later import of the package reuses it."""
    name = f"holidays.countries.{module}"
    if name not in sys.modules:
        path = Path(holidays.__path__[0], "countries", f"{module}.py")
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ImportError(f"no module file {path}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _country_class(country: str) -> type[HolidayBase] | None:
    """The class of a country's calendar from its own module, or None when the library
    does not list it or is not laid out as this expects (another release): the library's
    own look-up then answers, importing every country."""
    try:
        for module, (entity, *codes) in holidays.registry.COUNTRIES.items():
            if country in codes:
                found: type[HolidayBase] = getattr(_country_module(module), entity)
                return found
    except (AttributeError, ImportError, TypeError, ValueError):
        return None
    return None


def country_holidays(country: str, subdivision: str | None, years: range) -> HolidayBase:
    """``holidays.country_holidays`` (same dates, same errors) with only the country's
    own module imported."""
    made = _country_class(country)
    if made is None:
        return holidays.country_holidays(country, subdiv=subdivision, years=years)
    return made(years=years, subdiv=subdivision)


def work_calendar(city: City, years: range) -> WorkCalendar:
    """The city's calendar with its public holidays for ``years``."""
    cal = city.config.routing.calendar
    try:
        days = country_holidays(cal.country, cal.subdivision, years)
    except NotImplementedError as exc:
        raise CityConfigError(
            [
                f"{city.folder / 'city.yaml'}: routing.calendar: no public holidays known for "
                f"country {cal.country!r} subdivision {cal.subdivision!r}: {exc}"
            ]
        ) from exc
    weekmask = "".join("0" if day in cal.weekend else "1" for day in WEEKDAYS)
    return WorkCalendar(
        timezone=city.config.timezone,
        weekmask=weekmask,
        holidays=tuple(sorted(days)),
        start_h=_hours(cal.workday_start),
        end_h=_hours(cal.workday_end),
        years=years,
    )


# Per loaded city (its configuration is frozen): the last calendar built, reused while it
# covers the years asked for (looking holidays up costs milliseconds, a deadline microseconds).
_CALENDARS: weakref.WeakKeyDictionary[City, WorkCalendar] = weakref.WeakKeyDictionary()


def city_calendar(city: City, first: int, last: int) -> WorkCalendar:
    """The city's calendar covering instants of the years ``first``..``last`` (UTC), with a
    year before and two after (for deadlines); built again, wider, only when it does not."""
    low, high = first - _YEAR_MARGIN, last + _YEAR_MARGIN + 1
    cached = _CALENDARS.get(city)
    if cached is not None and cached.covers(low, high):
        return cached
    if cached is not None:
        low, high = min(low, cached.years.start), max(high, cached.years.stop - 1)
    _CALENDARS[city] = built = work_calendar(city, range(low, high + 1))
    return built


def calendar_for(city: City, instants: pd.Series) -> WorkCalendar:
    """The city's calendar covering every year of ``instants`` (and the next, for deadlines)."""
    years = pd.to_datetime(instants, utc=True).dt.year.dropna()
    first = int(years.min()) if len(years) else datetime.now().year
    last = int(years.max()) if len(years) else first
    return city_calendar(city, first, last)


def calendar_at(city: City, start: datetime) -> WorkCalendar:
    """The city's calendar for deadlines counted from ``start`` (``calendar_for`` of one)."""
    year = start.astimezone(UTC).year
    return city_calendar(city, year, year)


def _clock(hour: np.ndarray, minute: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Local time of day in hours (seconds included, fractions of a second not)."""
    return np.asarray(hour + minute / 60 + second / 3600, dtype=float)


def _microseconds(hours: np.ndarray | float) -> np.ndarray:
    """Hours as a whole number of microseconds (the resolution of every deadline)."""
    return np.round(np.asarray(hours, dtype=float) * _MICROSECONDS_PER_HOUR)


def _working_end(
    calendar: WorkCalendar, day: np.ndarray, clock: np.ndarray, hours: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The local day (``datetime64[D]``) and time of day (hours) at which ``hours`` of
    working time (NaN counts as 0) from local ``day`` at ``clock`` run out; arrays or
    scalars alike."""
    busdays = calendar.busdays
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
    return due_day, due_clock


def add_working_hours(calendar: WorkCalendar, start: pd.Series, hours: np.ndarray) -> pd.Series:
    """``start`` (UTC instants) plus ``hours`` of working time, as UTC instants (NaT for NaN)."""
    local = pd.to_datetime(start, utc=True).dt.tz_convert(calendar.timezone)
    day = local.dt.tz_localize(None).dt.normalize().to_numpy("datetime64[D]")
    clock = _clock(local.dt.hour.to_numpy(), local.dt.minute.to_numpy(), local.dt.second.to_numpy())
    remaining = np.asarray(hours, dtype=float)
    valid = ~np.isnan(remaining)
    due_day, due_clock = _working_end(calendar, day, clock, remaining)
    due_local = pd.Series(
        due_day.astype("datetime64[us]") + _microseconds(due_clock).astype("timedelta64[us]"),
        index=start.index,
    )
    due = due_local.dt.tz_localize(
        calendar.timezone, ambiguous="NaT", nonexistent="shift_forward"
    ).dt.tz_convert("UTC")
    return due.where(valid)


def due_dates(
    calendar: WorkCalendar,
    start: pd.Series,
    hours: np.ndarray,
    working_hours: np.ndarray,
    factor: float = 1.0,
) -> pd.Series:
    """Deadline of each row: ``factor`` × its calendar hours or working hours after ``start``.

    A row has one of the two (the other NaN); a row with neither has no deadline (NaT).
    """
    starts = pd.to_datetime(start, utc=True)
    clock_hours = np.asarray(hours, float) * factor
    span = np.where(np.isnan(clock_hours), np.nan, _microseconds(clock_hours))
    by_clock = starts + pd.to_timedelta(span, unit="us")
    by_work = add_working_hours(calendar, starts, np.asarray(working_hours, float) * factor)
    return by_clock.where(by_clock.notna(), by_work)


def _localize(calendar: WorkCalendar, wall: datetime) -> datetime | None:
    """A local wall time as a UTC instant, as ``add_working_hours`` localizes it: a time
    the clocks skip moves to the next whole hour (``shift_forward``), a time they repeat
    has no answer (``ambiguous="NaT"``)."""
    zone = calendar.zone
    before = wall.replace(tzinfo=zone, fold=0).utcoffset()
    after = wall.replace(tzinfo=zone, fold=1).utcoffset()
    if before is not None and after is not None and before > after:
        return None  # repeated when the clocks go back
    if before != after:  # skipped when the clocks go forward
        wall = wall.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def due_date(
    calendar: WorkCalendar,
    start: datetime,
    hours: float | None,
    working_hours: float | None,
    factor: float = 1.0,
) -> datetime | None:
    """``due_dates`` for one report: ``factor`` × ``hours`` of calendar time, or else ×
    ``working_hours`` of working time, after ``start`` (a UTC instant); None when neither."""
    if hours is not None and not math.isnan(hours):
        span = float(_microseconds(hours * factor))
        return start.astimezone(UTC) + timedelta(microseconds=span)
    if working_hours is None or math.isnan(working_hours):
        return None
    local = start.astimezone(calendar.zone)
    clock = _clock(np.asarray(local.hour), np.asarray(local.minute), np.asarray(local.second))
    day, due_clock = _working_end(
        calendar, np.asarray(np.datetime64(local.date(), "D")), clock, working_hours * factor
    )
    wall = datetime.combine(day.item(), time()) + timedelta(
        microseconds=float(_microseconds(due_clock))
    )
    return _localize(calendar, wall)


def overdue(incidents: pd.DataFrame, now: datetime) -> pd.Series:
    """The ``overdue`` state: open incidents (``status``) whose ``due_at`` has passed."""
    open_now = incidents["status"].isin([s.value for s in OPEN_STATUSES])
    due = pd.to_datetime(incidents["due_at"], utc=True)
    return open_now & due.notna() & (due < pd.Timestamp(now))
