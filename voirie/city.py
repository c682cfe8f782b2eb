"""A city as data: the ``city.yaml`` of a city folder, loaded and validated.

Everything that differs between municipalities (reference layers, services, teams,
routing table, deduplication thresholds) is read from here; code never names a city.
Loading reports every problem at once, each with the file and key it comes from.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from datetime import time
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pyproj import CRS
from pyproj.exceptions import CRSError

from voirie.errors import CityConfigError

CITY_FILE = "city.yaml"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TRIAGE_TEAM = "triage"

DEFAULT_RADIUS_M = 30.0
DEFAULT_WINDOW_DAYS = 7.0
"""voirie's deduplication defaults (same service only): the groups a drafted city starts
with (``voirie city init``), and a category of no known group that an import takes."""
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
"""A code city.yaml accepts (services, groups, zones...): what a source's value must be to
be kept as one."""
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN.pattern)]
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


class AddressLayer(_Strict):
    """Address points (one per house number), to guess the address of a report that has
    none: the house number is interpolated between the nearest points of its street."""

    path: str
    number_field: str
    street_field: str
    max_distance_m: float = Field(
        default=100.0, gt=0, description="address points farther than this are not used"
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


DedupeMatch = Literal["service", "group", "never"]


class Dedupe(_Strict):
    """Which reports may be one incident: the services that may share one, and how near in
    space and time they must be (see docs/deduplication.md)."""

    match: DedupeMatch = Field(
        default="service",
        description="service: same service only; group: any service of the group (people "
        "pick a sibling sub-category for the same problem); never: each report is its own "
        "incident (calls that are not a problem in a place)",
    )
    radius_m: float = Field(gt=0, le=1000)
    window_days: float = Field(gt=0, le=365)
    street_scale: bool = Field(
        default=False,
        description="the problem spans a stretch of street (snow, a dirty street, lights "
        "out along a block): reports on the same street join up to street_radius_m apart",
    )
    street_radius_m: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="how far apart two reports on the same street may be when street_scale",
    )
    why: str | None = Field(default=None, description="why these values, for the reviewer")

    @model_validator(mode="after")
    def _street_scale(self) -> Dedupe:
        if self.street_scale and self.street_radius_m is None:
            raise ValueError("street_scale: true needs street_radius_m (metres along the street)")
        if not self.street_scale and self.street_radius_m is not None:
            raise ValueError("street_radius_m is only read with street_scale: true")
        if self.street_radius_m is not None and self.street_radius_m < self.radius_m:
            raise ValueError(
                f"street_radius_m ({self.street_radius_m:g}) must be at least radius_m "
                f"({self.radius_m:g}): along the street the reach is longer, never shorter"
            )
        if self.street_scale and self.match == "never":
            raise ValueError("street_scale cannot apply to match: never (nothing is merged)")
        return self


class DedupeCalibration(_Strict):
    """What the score means on the city's labelled history (``gis/dedupe_score.py``): the
    share of candidate pairs labelled duplicates at each score (``likelihoods`` at
    ``scores``, interpolated), and the likelihood below which a report joins nothing."""

    scores: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=2)
    likelihoods: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=2)
    threshold: float = Field(default=0.0, ge=0, le=1)
    learned_on: str = Field(min_length=1, description="the labelled history and how to re-run it")

    @model_validator(mode="after")
    def _monotone(self) -> DedupeCalibration:
        scores, likelihoods = self.scores, self.likelihoods
        if len(scores) != len(likelihoods):
            raise ValueError(
                f"scores and likelihoods must have one length ({len(scores)} != {len(likelihoods)})"
            )
        if any(b <= a for a, b in pairwise(scores)):
            raise ValueError("scores must be strictly increasing")
        if any(b < a for a, b in pairwise(likelihoods)):
            raise ValueError("likelihoods must never decrease as the score grows")
        return self


class DedupeScoring(_Strict):
    """How a report weighs the incidents it may join: weights of the score's terms
    (normalised to sum to 1), the longer reach along one street, and what a score means
    (``calibration``, where the city has labelled duplicates)."""

    distance: float = Field(default=0.4, ge=0)
    time: float = Field(default=0.2, ge=0)
    service: float = Field(default=0.2, ge=0)
    street: float = Field(default=0.2, ge=0)
    same_street_factor: float = Field(
        default=2.0,
        ge=1,
        le=5,
        description="reach = radius_m x this factor when the report and the incident lie on "
        "the same street (same or adjacent segment of one street name)",
    )
    calibration: DedupeCalibration | None = None

    @model_validator(mode="after")
    def _some_weight(self) -> DedupeScoring:
        if self.distance + self.time + self.service + self.street <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class Group(_Strict):
    """A family of services (for DansMaRue, a ``type``) with its deduplication thresholds."""

    code: Code
    name: str
    dedupe: Dedupe


class AttributeValue(_Strict):
    """One allowed answer of a list attribute: the key sent, the label shown."""

    key: Code
    name: str


AttributeType = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class ServiceAttribute(_Strict):
    """An extra question asked when reporting a service (an Open311 service definition
    attribute: https://wiki.open311.org/GeoReport_v2#GET_Service_Definition)."""

    code: Code
    description: str = Field(description="the question, as shown to the citizen")
    datatype: AttributeType = "string"
    required: bool = False
    datatype_description: str | None = None
    values: list[AttributeValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values(self) -> ServiceAttribute:
        if self.datatype.endswith("valuelist") and not self.values:
            raise ValueError(f"a {self.datatype} attribute needs values")
        if self.values and not self.datatype.endswith("valuelist"):
            raise ValueError(f"a {self.datatype} attribute takes no values")
        return self


class Service(_Strict):
    """One category a citizen can report (Open311 service; for DansMaRue, a ``soustype``)."""

    code: Code
    name: str
    group: Code
    keywords: list[str] = Field(default_factory=list)
    attributes: list[ServiceAttribute] = Field(default_factory=list)
    dedupe: Dedupe | None = Field(
        default=None, description="this service's own thresholds, instead of its group's"
    )


class Team(_Strict):
    """A technical team; its code is the city's own (for Paris, the ``intervenant``)."""

    code: TeamCode
    name: str
    email: str | None = None
    webhook: str | None = None
    webhook_secret: str | None = Field(
        default=None, description="HMAC key signing webhook calls (prefer webhook_secret_env)"
    )
    webhook_secret_env: str | None = Field(
        default=None, description="environment variable holding the HMAC key of the webhook"
    )
    depot: tuple[float, float] | None = Field(
        default=None, description="where the team's rounds start: (lon, lat), WGS84"
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKEND: tuple[Weekday, ...] = ("sat", "sun")
RuleFlag = Literal["near_boundary", "off_network", "outside_territory"]
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]"
ClockRange = Annotated[str, Field(pattern=rf"^{_CLOCK}-({_CLOCK}|24:00)$")]


class Sla(_Strict):
    """How long the team has: exactly one of calendar hours, working hours or working days.

    Working time follows ``routing.calendar`` (working hours of working days, public
    holidays excluded); a working day is one full day of working hours.
    """

    hours: float | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)
    working_days: float | None = Field(default=None, gt=0)


class Calendar(_Strict):
    """When the city works: weekdays, daily hours, public holidays of a country (``holidays``)."""

    country: str = "FR"
    subdivision: str | None = None
    weekend: list[Weekday] = Field(default_factory=lambda: list(WEEKEND))
    workday_start: time = time(8, 0)
    workday_end: time = time(18, 0)


class Escalation(_Strict):
    """An incident still open after ``factor`` times its SLA goes to ``team``."""

    factor: float = Field(default=2.0, gt=1)
    team: TeamCode = TRIAGE_TEAM


class Route(_Strict):
    """One routing rule: conditions on a report and the team, priority and SLA it gets.

    Every condition given must hold (AND); a list or a set of codes holds when the report's
    value is one of them. See ``voirie.routing.rules`` for the evaluation order.
    """

    id: Code
    version: int = Field(default=1, ge=1)
    team: TeamCode
    service: Code | None = None
    group: Code | None = None
    zones: dict[Code, Literal["*"] | list[str | int]] = Field(
        default_factory=dict, description="zone layer -> '*' (any zone of it) or zone codes"
    )
    segment: dict[str, list[str | int]] = Field(
        default_factory=dict, description="street attribute (streets.attributes) -> values"
    )
    hours: ClockRange | None = Field(
        default=None, description="local time window HH:MM-HH:MM, may wrap past midnight"
    )
    weekdays: list[Weekday] = Field(default_factory=list)
    flags: dict[RuleFlag, bool] = Field(default_factory=dict)
    priority: int = Field(default=3, ge=1, le=5)
    sla: Sla | None = None
    escalate_to: TeamCode | None = None
    label: str | None = Field(
        default=None, description="words for the dispatcher, e.g. 'inside a green space'"
    )


class Learning(_Strict):
    """Routing that learns from dispatchers (issue 18 item 2): when the reassignments of
    a sub-category to one team reach ``min_support`` and outnumber the decisions kept
    meanwhile, a rule for that team is proposed (``review``: a person accepts or rejects
    it, ``voirie rules review``), applied at once (``auto``), or not learned (``off``).
    A sub-category whose reports go to triage needs ``triage_support`` agreeing answers
    instead. 3 and 1 were chosen on the walk-forward history of Paris (docs/routing.md)."""

    mode: Literal["off", "review", "auto"] = "review"
    min_support: int = Field(default=3, ge=1)
    triage_support: int = Field(
        default=1, ge=1, description="dispatchers' answers to triaged reports that make a rule"
    )
    refresh_s: float = Field(
        default=30.0, gt=0, description="how often a server re-reads the rules in force"
    )


class Routing(_Strict):
    """Rules with their fallbacks (service rule, group rule, default team, triage) and SLAs."""

    default_team: TeamCode = TRIAGE_TEAM
    rules: list[Route] = Field(default_factory=list)
    calendar: Calendar = Field(default_factory=Calendar)
    sla: dict[int, Sla] = Field(
        default_factory=dict, description="SLA per priority, for rules that give none"
    )
    escalation: Escalation = Field(default_factory=Escalation)
    learning: Learning = Field(default_factory=Learning)


class Territory(_Strict):
    """Which zone layer draws the city's limit: a report outside it is refused."""

    layer: Code


class Blurring(_Strict):
    """Where the public sees incidents of sensitive services (issue 17 item 5): not at
    their exact location, but at the middle of their street segment (``street_middle``)
    or at the centre of their ``grid_m`` cell (``grid``). Staff still see the exact one."""

    services: list[Code] = Field(default_factory=list)
    groups: list[Code] = Field(default_factory=list)
    method: Literal["street_middle", "grid"] = "grid"
    grid_m: float = Field(default=50.0, gt=0, le=1000)


class Privacy(_Strict):
    """Personal data and public locations: blurring, and how long contact data are kept."""

    blur: Blurring | None = None
    retention_days: int | None = Field(
        default=None,
        gt=0,
        description="contact data are erased this many days after the incident is closed",
    )


class CannedReply(_Strict):
    """A ready-made public status note staff pick on the case page (issue 16 item 3):
    ``title`` names it in the list, ``text`` is the note; ``status`` offers it only for a
    change to that status (any change when absent)."""

    title: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=2000)
    status: str | None = None


REASSIGNED_WORDING: dict[str, str] = {
    "fr": "réaffecté par le service de dispatch",
    "en": "reassigned by the dispatch service",
}
"""What public layers say of a reassignment when the city configures no wording."""


class Publication(_Strict):
    """How the public layers word what staff did (issue 15 item 7): one text per language,
    never who did it nor why (those stay in the staff-only events)."""

    reassigned: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: dict(REASSIGNED_WORDING), min_length=1
    )

    def reassigned_text(self, locale: str) -> str:
        """The reassignment wording in ``locale``, else in English, else the first given."""
        found = self.reassigned.get(locale) or self.reassigned.get("en")
        return found or next(iter(self.reassigned.values()))


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
    addresses: AddressLayer | None = None
    zones: list[ZoneLayer]
    groups: list[Group]
    services: list[Service]
    new_categories: Literal["triage", "quarantine"] = Field(
        default="triage",
        description="a report of a category this file does not list, in a bulk import: "
        "triage (imported under a code of its own, routed to triage) or quarantine (set "
        "aside as 'unknown category', for a catalogue that must be complete)",
    )
    teams: list[Team]
    routing: Routing
    dedupe: DedupeScoring = Field(default_factory=DedupeScoring)
    licence: str = "LICENCE.md"
    privacy: Privacy = Field(default_factory=Privacy)
    canned_replies: list[CannedReply] = Field(default_factory=list)
    publication: Publication = Field(default_factory=Publication)

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

    def dedupe(self, service_code: str) -> Dedupe:
        """The deduplication thresholds of a service: its own, or else its group's."""
        service = self.services[service_code]
        return service.dedupe or self.groups[service.group].dedupe

    @cached_property
    def groups_by_name(self) -> dict[str, Group]:
        """Service groups by case-folded name."""
        return {g.name.casefold(): g for g in self.config.groups}

    @cached_property
    def teams(self) -> dict[str, Team]:
        """Teams by code, including the triage queue even when city.yaml omits it."""
        teams = {t.code: t for t in self.config.teams}
        teams.setdefault(TRIAGE_TEAM, Team(code=TRIAGE_TEAM, name="File de tri (triage)"))
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
        # libyaml's parser when installed: the pure-Python one takes about a second
        # over the 6,000 nodes of a city with a learned routing table.
        raw: Any = yaml.load(source.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
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
    problems += _routing_problems(config, services, groups, teams)
    blur = config.privacy.blur
    if blur is not None:
        problems += [
            f"privacy.blur.services: unknown service {c!r}"
            for c in blur.services
            if c not in services
        ]
        problems += [
            f"privacy.blur.groups: unknown group {c!r}" for c in blur.groups if c not in groups
        ]
    if config.territory.layer not in {z.name for z in config.zones}:
        problems.append(f"territory.layer: no zone layer named {config.territory.layer!r}")
    if not check_files:
        return problems
    layer_paths = [("streets.path", config.streets.path)] if config.streets else []
    layer_paths += [("addresses.path", config.addresses.path)] if config.addresses else []
    layer_paths += [(f"zones[{i}].path", z.path) for i, z in enumerate(config.zones)]
    for key, rel in layer_paths:
        if not (folder / rel).is_file():
            problems.append(f"{key}: file {rel!r} not found in {folder}")
    return problems


def _routing_problems(
    config: CityConfig, services: set[str], groups: set[str], teams: set[str]
) -> list[str]:
    """Rules naming an unknown team, service, group, zone layer or street attribute."""
    problems: list[str] = []
    layers = {z.name for z in config.zones}
    attributes = set(config.streets.attributes) if config.streets else set()
    routing = config.routing
    for i, rule in enumerate(routing.rules):
        where = f"routing.rules[{i}] ({rule.id})"
        for key, team in (("team", rule.team), ("escalate_to", rule.escalate_to)):
            if team is not None and team not in teams:
                problems.append(f"{where}.{key}: unknown team {team!r}")
        if rule.service is not None and rule.group is not None:
            problems.append(f"{where}: give at most one of 'service' or 'group'")
        if rule.service is not None and rule.service not in services:
            problems.append(f"{where}.service: unknown service {rule.service!r}")
        if rule.group is not None and rule.group not in groups:
            problems.append(f"{where}.group: unknown group {rule.group!r}")
        problems += [
            f"{where}.zones.{layer}: no zone layer named {layer!r} "
            f"(zone layers: {', '.join(sorted(layers))})"
            for layer in rule.zones
            if layer not in layers
        ]
        problems += [
            f"{where}.segment.{attr}: {attr!r} is not a street attribute "
            f"(streets.attributes: {', '.join(sorted(attributes)) or 'none'})"
            for attr in rule.segment
            if attr not in attributes
        ]
        if rule.sla is not None:
            problems += _sla_problems(f"{where}.sla", rule.sla)
    for priority, sla in routing.sla.items():
        problems += _sla_problems(f"routing.sla.{priority}", sla)
    for key, team in (
        ("default_team", routing.default_team),
        ("escalation.team", routing.escalation.team),
    ):
        if team not in teams:
            problems.append(f"routing.{key}: unknown team {team!r}")
    calendar = routing.calendar
    if calendar.workday_end <= calendar.workday_start:
        problems.append("routing.calendar.workday_end: must come after workday_start")
    if len(set(calendar.weekend)) >= len(WEEKDAYS):
        problems.append("routing.calendar.weekend: leaves no working day")
    return problems


def _sla_problems(where: str, sla: Sla) -> list[str]:
    given = [k for k in ("hours", "working_hours", "working_days") if getattr(sla, k) is not None]
    if len(given) != 1:
        return [f"{where}: give exactly one of hours, working_hours, working_days"]
    return []
