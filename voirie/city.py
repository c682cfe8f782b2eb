"""A city as data: the ``city.yaml`` of a city folder, loaded and validated.

Everything that differs between municipalities (reference layers, services, teams,
routing table, deduplication thresholds) is read from here; code never names a city.
Loading reports every problem at once, each with the file and key it comes from.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyproj import CRS
from pyproj.exceptions import CRSError

from voirie.errors import CityConfigError

CITY_FILE = "city.yaml"
TRIAGE_TEAM = "triage"

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# Team codes are the city's own (DansMaRue "intervenant" values hold spaces and accents).
TeamCode = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreetLayer(_Strict):
    """The street network: centre-line segments that reports are snapped to."""

    path: str
    name_field: str
    id_field: str | None = Field(
        default=None, description="source id column; ids are derived from geometry if absent"
    )
    attributes: list[str] = Field(default_factory=list)
    max_snap_distance_m: float = Field(default=150.0, gt=0)
    address_match_radius_m: float = Field(
        default=60.0,
        ge=0,
        description="a report snaps to the street its address names when a segment of it "
        "lies this near (0 disables), rather than to the nearest segment",
    )


class ZoneLayer(_Strict):
    """A polygon layer whose zone each report falls in (arrondissement, sector, park...)."""

    name: Code
    path: str
    code_field: str
    name_field: str
    label: str | None = None
    required: bool = Field(
        default=True, description="every report inside the territory should fall in a zone"
    )


class Dedupe(_Strict):
    """How near in space and time two reports of one service must be to be one incident."""

    radius_m: float = Field(gt=0, le=1000)
    window_days: float = Field(gt=0, le=365)


class Group(_Strict):
    """A family of services (for DansMaRue, a ``type``) with its deduplication thresholds."""

    code: Code
    name: str
    dedupe: Dedupe


class Service(_Strict):
    """One category a citizen can report (Open311 service; for DansMaRue, a ``soustype``)."""

    code: Code
    name: str
    group: Code
    keywords: list[str] = Field(default_factory=list)


class Team(_Strict):
    """A technical team; its code is the city's own (for Paris, the ``intervenant``)."""

    code: TeamCode
    name: str
    email: str | None = None
    webhook: str | None = None


class Route(_Strict):
    """One routing-table line: a service or a whole group goes to a team."""

    id: Code
    version: int = Field(default=1, ge=1)
    team: TeamCode
    service: Code | None = None
    group: Code | None = None
    priority: int = Field(default=3, ge=1, le=5)
    sla_days: float | None = Field(default=None, gt=0)


class Routing(_Strict):
    """Routing table with its fallbacks: service rule, group rule, default team, triage."""

    default_team: TeamCode = TRIAGE_TEAM
    rules: list[Route] = Field(default_factory=list)


class Territory(_Strict):
    """Which zone layer draws the city's limit: a report outside it is refused."""

    layer: Code


class CityConfig(_Strict):
    """The parsed ``city.yaml``."""

    name: str
    jurisdiction_id: Code
    metric_crs: str
    timezone: str = "Europe/Paris"
    locale: str = "fr"
    territory: Territory
    near_boundary_m: float = Field(default=10.0, ge=0)
    streets: StreetLayer | None = None
    zones: list[ZoneLayer]
    groups: list[Group]
    services: list[Service]
    teams: list[Team]
    routing: Routing
    licence: str = "LICENCE.md"

    @field_validator("metric_crs")
    @classmethod
    def _metric(cls, value: str) -> str:
        try:
            crs = CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}") from exc
        if not crs.is_projected:
            raise ValueError(f"{value} is not a projected (metric) CRS")
        return value


class City:
    """A validated city folder: its configuration plus lookups used by every stage."""

    def __init__(self, folder: Path, config: CityConfig) -> None:
        self.folder = folder
        self.config = config

    def path(self, relative: str) -> Path:
        """Absolute path of a file named in city.yaml."""
        return self.folder / relative

    @cached_property
    def services(self) -> dict[str, Service]:
        """Services by code."""
        return {s.code: s for s in self.config.services}

    @cached_property
    def services_by_name(self) -> dict[str, Service]:
        """Services by case-folded name, to read sources that carry names, not codes."""
        return {s.name.casefold(): s for s in self.config.services}

    @cached_property
    def groups(self) -> dict[str, Group]:
        """Service groups by code."""
        return {g.code: g for g in self.config.groups}

    @cached_property
    def groups_by_name(self) -> dict[str, Group]:
        """Service groups by case-folded name."""
        return {g.name.casefold(): g for g in self.config.groups}

    @cached_property
    def teams(self) -> dict[str, Team]:
        """Teams by code, including the triage queue even when city.yaml omits it."""
        teams = {t.code: t for t in self.config.teams}
        teams.setdefault(
            TRIAGE_TEAM, Team(code=TRIAGE_TEAM, name="File de tri (triage)")
        )
        return teams

    @property
    def jurisdiction_id(self) -> str:
        """The city's jurisdiction id (Open311 ``jurisdiction_id``, sharding key)."""
        return self.config.jurisdiction_id

    @property
    def metric_crs(self) -> str:
        """The CRS in which every distance is measured, in metres."""
        return self.config.metric_crs


def slug(text: str, limit: int = 60) -> str:
    """ASCII, lower-case, hyphenated form of a name, for codes a person can read."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = "".join(c if c.isalnum() else "-" for c in ascii_text.lower())
    return "-".join(part for part in out.split("-") if part)[:limit].rstrip("-")


def group_code_for(group_name: str) -> str:
    """The code of a service group derived from its name."""
    return slug(group_name, 24)


def service_code_for(group_name: str, service_name: str) -> str:
    """A short, stable service code derived from a (group, service) pair of names.

    A pure function of the names, so a category first seen in a later file gets the same
    code every time (and can be routed to triage until a rule names it).
    """
    digest = hashlib.sha1(f"{group_name}\x1f{service_name}".encode()).hexdigest()[:6]
    return f"{slug(group_name, 16)}-{digest}"


def resolve_city_dir(city: str | Path) -> Path:
    """Find a city folder: a path, or the name of a city shipped with voirie (``paris``)."""
    candidate = Path(city)
    if (candidate / CITY_FILE).is_file():
        return candidate.resolve()
    shipped = resources.files("voirie.cities") / str(city)
    shipped_path = Path(str(shipped))
    if (shipped_path / CITY_FILE).is_file():
        return shipped_path
    raise CityConfigError(
        [f"{candidate}: no {CITY_FILE} there, and no shipped city named {city!r}"]
    )


def load_city(city: str | Path, *, check_files: bool = True) -> City:
    """Load and validate a city folder, raising ``CityConfigError`` listing every problem.

    ``check_files=False`` validates city.yaml without requiring its layer files to exist
    (``voirie layers check`` reports those per layer).
    """
    folder = resolve_city_dir(city)
    source = folder / CITY_FILE
    try:
        raw: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CityConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise CityConfigError([f"{source}: expected a mapping at the top level"])
    try:
        config = CityConfig.model_validate(raw)
    except ValidationError as exc:
        raise CityConfigError(
            [f"{source}: {_loc(err['loc'])}: {err['msg']}" for err in exc.errors()]
        ) from exc
    problems = [f"{source}: {p}" for p in _cross_check(folder, config, check_files)]
    if problems:
        raise CityConfigError(problems)
    return City(folder, config)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _duplicates(values: list[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _cross_check(folder: Path, config: CityConfig, check_files: bool = True) -> list[str]:
    """Problems that span several keys: references to unknown codes, missing files."""
    problems: list[str] = []
    for key, codes in (
        ("services", [s.code for s in config.services]),
        ("groups", [g.code for g in config.groups]),
        ("teams", [t.code for t in config.teams]),
        ("zones", [z.name for z in config.zones]),
        ("routing.rules", [r.id for r in config.routing.rules]),
    ):
        problems += [f"{key}: code {dup!r} is defined twice" for dup in _duplicates(codes)]
    groups = {g.code for g in config.groups}
    services = {s.code for s in config.services}
    teams = {t.code for t in config.teams} | {TRIAGE_TEAM}
    for i, service in enumerate(config.services):
        if service.group not in groups:
            problems.append(f"services[{i}].group: unknown group {service.group!r}")
    for i, rule in enumerate(config.routing.rules):
        where = f"routing.rules[{i}] ({rule.id})"
        if rule.team not in teams:
            problems.append(f"{where}.team: unknown team {rule.team!r}")
        if (rule.service is None) == (rule.group is None):
            problems.append(f"{where}: give exactly one of 'service' or 'group'")
        if rule.service is not None and rule.service not in services:
            problems.append(f"{where}.service: unknown service {rule.service!r}")
        if rule.group is not None and rule.group not in groups:
            problems.append(f"{where}.group: unknown group {rule.group!r}")
    if config.routing.default_team not in teams:
        problems.append(f"routing.default_team: unknown team {config.routing.default_team!r}")
    if config.territory.layer not in {z.name for z in config.zones}:
        problems.append(f"territory.layer: no zone layer named {config.territory.layer!r}")
    if not check_files:
        return problems
    layer_paths = [("streets.path", config.streets.path)] if config.streets else []
    layer_paths += [(f"zones[{i}].path", z.path) for i, z in enumerate(config.zones)]
    for key, rel in layer_paths:
        if not (folder / rel).is_file():
            problems.append(f"{key}: file {rel!r} not found in {folder}")
    return problems
