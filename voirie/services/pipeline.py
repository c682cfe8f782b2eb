"""The pipeline: one city's roles over one store, wired once.

Each role is its own module: the deduplication policy (``gis.dedupe_policy``), the
attachment of new reports to stored incidents (``services.attach``), the incident writer
(``services.writer``), the bulk import (``services.imports``), the per-report path with
its idempotency (``services.intake``) and the read facade (``services.reads``). This class
only builds them over the same city, store, GIS indexes (built once) and routing table.
"""

from __future__ import annotations

from voirie.city import City
from voirie.gis.dedupe_policy import DedupePolicy
from voirie.gis.enrich import CityGIS
from voirie.routing.table import RoutingTable
from voirie.services.attach import Attacher
from voirie.services.imports import Importer
from voirie.services.intake import Intake
from voirie.services.learned_routing import LiveRouting
from voirie.services.reads import Reads
from voirie.services.writer import IncidentWriter
from voirie.store.base import Store


class Pipeline:
    """One city's pipeline over one store: its roles, sharing one GIS and routing table."""

    def __init__(self, city: City, store: Store, gis: CityGIS | None = None) -> None:
        self.city = city
        self.store = store
        self.gis = gis or CityGIS(city)
        self.routing = RoutingTable(city)
        self.live_routing = LiveRouting(city, self.routing)
        self.policy = DedupePolicy(city)
        self.attacher = Attacher(city, self.gis, self.policy)
        self.writer = IncidentWriter(city, list(self.gis.zones), self.live_routing)
        self.reads = Reads(city, store, self.gis)
        roles = (city, store, self.gis, self.policy, self.attacher, self.writer)
        self.imports = Importer(*roles)
        self.intake = Intake(*roles)
