"""The city's public holidays come from its country's module alone (``sla.country_holidays``):
the same dates and errors as ``holidays.country_holidays``, without importing the 250
countries' modules that the ``holidays.countries`` package imports at once (0.1 s of every
routed import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import holidays
import pytest

from voirie.city import City
from voirie.routing.sla import country_holidays, work_calendar

YEARS = range(2019, 2027)


def test_a_fresh_process_imports_the_city_country_only(paris: City) -> None:
    code = (
        "import sys\n"
        "from voirie.city import load_city\n"
        "from voirie.routing.sla import work_calendar\n"
        f"days = work_calendar(load_city('paris'), range({YEARS.start}, {YEARS.stop})).holidays\n"
        "print(len(days), sorted(m for m in sys.modules if m.startswith('holidays.countries')))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    )
    count, modules = done.stdout.split(" ", 1)
    assert modules.strip() == "['holidays.countries.france']"
    assert int(count) == len(holidays.country_holidays("FR", years=YEARS))


@pytest.mark.parametrize(
    ("country", "subdivision"),
    [("FR", None), ("FRA", None), ("US", "IL"), ("DE", "BY"), ("RE", None), ("GB", "SCT")],
)
def test_same_dates_as_the_holidays_package(country: str, subdivision: str | None) -> None:
    ours = country_holidays(country, subdivision, YEARS)
    theirs = holidays.country_holidays(country, subdiv=subdivision, years=YEARS)
    assert sorted(ours.items()) == sorted(theirs.items())


def test_same_errors_as_the_holidays_package() -> None:
    with pytest.raises(NotImplementedError):
        country_holidays("XX", None, YEARS)
    with pytest.raises(NotImplementedError):
        country_holidays("FR", "not-a-subdivision", YEARS)


def test_the_city_calendar_holds_its_country_holidays(paris: City) -> None:
    days = work_calendar(paris, YEARS).holidays
    assert list(days) == sorted(holidays.country_holidays("FR", years=YEARS))
