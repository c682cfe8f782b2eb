"""The city's address search as the API and Open311 use it (issue 17 item 7).

The street search of :mod:`voirie.gis.streetsearch`, with house numbers located from the
city's address points and from the pins of the reports already in the store (each
report's address was written where its reporter placed it: see
:meth:`voirie.gis.housenumbers.HouseNumbers.learn`). What was learned is kept per
pipeline and learned again once the store has changed and ``RELEARN_AFTER_S`` has passed,
so that a busy city does not re-read its reports on every keystroke.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

from voirie.gis.housenumbers import HouseNumbers
from voirie.gis.streetsearch import StreetMatch, geocode_street
from voirie.services.pipeline import Pipeline

RELEARN_AFTER_S = 3600.0


@dataclass(frozen=True)
class _Learned:
    numbers: HouseNumbers
    version: int
    at: float


_LEARNED: weakref.WeakKeyDictionary[Pipeline, _Learned] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def house_numbers(pipeline: Pipeline) -> HouseNumbers:
    """The house numbers the pipeline's city and reports locate, learned on first use."""
    version = pipeline.store.change_mark(pipeline.city.jurisdiction_id).version
    with _LOCK:
        learned = _LEARNED.get(pipeline)
        if learned is not None and (
            learned.version == version or time.monotonic() - learned.at < RELEARN_AFTER_S
        ):
            return learned.numbers
        reports = pipeline.store.read("reports", pipeline.city.config.jurisdiction_id)
        numbers = HouseNumbers.learn(
            pipeline.gis,
            reports["address"].to_numpy(dtype=object),
            reports["lon"].to_numpy(dtype=float),
            reports["lat"].to_numpy(dtype=float),
        )
        _LEARNED[pipeline] = _Learned(numbers, version, time.monotonic())
        return numbers


def geocode(pipeline: Pipeline, query: str, limit: int = 5) -> list[StreetMatch]:
    """Places of the city that ``query`` names, best first (see ``geocode_street``)."""
    return geocode_street(pipeline.gis, query, limit, numbers=house_numbers(pipeline))
