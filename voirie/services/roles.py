"""What the bulk import and the per-report path both run on: one city's store, its GIS
indexes, its deduplication policy, the attacher and the one incident writer, built once
over the same city by ``services.pipeline``."""

from __future__ import annotations

from dataclasses import dataclass

from voirie.city import City
from voirie.gis.dedupe_policy import DedupePolicy
from voirie.gis.enrich import CityGIS
from voirie.services.attach import Attacher
from voirie.services.writer import IncidentWriter
from voirie.store.base import Store


@dataclass(eq=False)
class Roles:
    """The shared roles; ``Importer`` and ``Intake`` are each one of these plus a path."""

    city: City
    store: Store
    gis: CityGIS
    policy: DedupePolicy
    attacher: Attacher
    writer: IncidentWriter
