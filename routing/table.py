"""The routing rules, evaluated over a whole batch of reports at once.

Evaluation order (the same for one report or a million):

0. A service that is not in city.yaml goes to the triage queue: no rule may guess for it.
1. **Conditional rules** (rules with a condition besides service/group: ``zones``,
   ``segment``, ``hours``, ``weekdays``, ``flags``), in the order of city.yaml: the
   **first** whose every condition holds wins. Put narrow rules before broad ones;
   ``voirie rules check`` warns about a rule that an earlier one always pre-empts.
2. The **service default**: the plain rule (no other condition) naming the service.
3. The plain rule naming the service's group.
4. The **city default**, ``routing.default_team``.
5. The **triage queue** (``triage``), which is the city default unless a city names another.

A plain rule's place in the file does not matter: it only applies when no conditional
rule does. Each decision carries the rule id and version and a sentence a dispatcher
reads ("« Graffitis sur mobilier » inside BOIS DE VINCENNES → DEVE, rule parks-graffiti v3").

Every rule is evaluated as a boolean mask over the batch's columns (``service_code``,
``zone_<layer>``, ``segment_<attribute>``, the flags, ``requested_at``): the cost is one
vector operation per conditional rule and one table lookup for every plain rule, never
one Python call per report. ``RoutingTable.route_one`` decides for one report on plain
Python values (the per-report path), from the same compiled conditions, rule values and
sentence pieces, so both give the same decision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from voirie.city import TRIAGE_TEAM, WEEKDAYS, City, Route, Sla
from voirie.routing.sla import calendar_at, calendar_for, due_date, due_dates, workday_hours

ROUTE_COLUMNS = [
    "team",
    "rule_id",
    "rule_version",
    "priority",
    "sla_hours",
    "sla_working_hours",
    "escalate_to",
    "routing_reason",
]
DEFAULT_PRIORITY = 3
_NONE = -1
_FLAG_WORDS = {
    ("near_boundary", True): "near a zone boundary",
    ("near_boundary", False): "away from zone boundaries",
    ("off_network", True): "away from any street",
    ("off_network", False): "on the street network",
    ("outside_territory", True): "outside the territory",
    ("outside_territory", False): "inside the territory",
}


def is_conditional(rule: Route) -> bool:
    """Whether a rule has a condition besides its service or group."""
    return bool(rule.zones or rule.segment or rule.hours or rule.weekdays or rule.flags)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _inside(minute: np.ndarray | int, start: int, end: int) -> np.ndarray | bool:
    """Whether a local minute of the day is in the window ``start``..``end`` (which may
    wrap past midnight); arrays or one minute alike."""
    if start <= end:
        return (minute >= start) & (minute < end)
    return (minute >= start) | (minute < end)


def _missing(value: object) -> bool:
    """A missing value of one report (None, or a stray NaN)."""
    return value is None or value != value  # NaN is the only value unequal to itself


@dataclass(frozen=True)
class Decision:
    """The routing of one report: ``ROUTE_COLUMNS`` and its deadlines as Python values
    (what ``route`` gives for that report's row, None where it has NaN, NA or NaT)."""

    team: str
    rule_id: str | None
    rule_version: int | None
    priority: int
    sla_hours: float | None
    sla_working_hours: float | None
    escalate_to: str
    routing_reason: str
    due_at: datetime | None
    escalate_at: datetime | None


@dataclass(frozen=True)
class _Outcome:
    """What a decision copies from its rule (``_rule_arrays``, one rule) as Python values."""

    team: str
    rule_id: str | None
    rule_version: int
    priority: int
    sla_hours: float | None
    sla_working_hours: float | None
    escalate_to: str
    tail: str


@dataclass(frozen=True)
class _Condition:
    """A conditional rule compiled once: what ``_mask`` tests over a batch and ``_holds``
    over one report, and the pieces of its sentence.

    ``values``: (column, accepted values as text, or None for any present value);
    ``words``: (text, then the value of the first of these columns the report has).
    """

    service: int | None
    group: int | None
    values: tuple[tuple[str, frozenset[str] | None], ...]
    minutes: tuple[int, int] | None
    weekdays: tuple[int, ...]
    flags: tuple[tuple[str, bool], ...]
    words: tuple[tuple[str, tuple[str, ...]], ...]


def _words(rule: Route) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The conditions of ``rule`` in words: fixed text, each followed by a report's value."""
    if rule.label:
        return ((f" {rule.label}", ()),)
    words: list[tuple[str, tuple[str, ...]]] = []
    for layer in rule.zones:
        words.append((" inside ", (f"zone_{layer}_name", f"zone_{layer}")))
    for attribute in rule.segment:
        words.append((f" on a street with {attribute} ", (f"segment_{attribute}",)))
    if rule.hours:
        words.append((f" between {rule.hours.replace('-', ' and ')}", ()))
    if rule.weekdays:
        words.append((" on " + ", ".join(rule.weekdays), ()))
    for flag, value in rule.flags.items():
        words.append((" " + _FLAG_WORDS[(flag, value)], ()))
    return tuple(words)


def sla_hours(city: City, sla: Sla | None, priority: int) -> tuple[float, float]:
    """(calendar hours, working hours) of a rule's SLA, or the priority's; NaN when none."""
    chosen = sla or city.config.routing.sla.get(priority)
    if chosen is None:
        return np.nan, np.nan
    if chosen.hours is not None:
        return chosen.hours, np.nan
    if chosen.working_hours is not None:
        return np.nan, chosen.working_hours
    return np.nan, float(chosen.working_days or 0) * workday_hours(city.config.routing.calendar)


@dataclass
class _Columns:
    """Columns of the batch as the masks need them, each computed once per batch."""

    city: City
    batch: pd.DataFrame
    _cache: dict[str, np.ndarray] = field(default_factory=dict)
    _factors: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    def _column(self, name: str) -> pd.Series:
        if name not in self.batch:
            raise KeyError(f"routing needs the column {name!r} in the batch")
        return self.batch[name]

    def factors(self, name: str) -> tuple[np.ndarray, list[str]]:
        """A column as integer codes (-1 where missing) and its distinct values as text."""
        if name not in self._factors:
            codes, uniques = pd.factorize(self._column(name))
            self._factors[name] = (codes, [str(v) for v in uniques])
        return self._factors[name]

    def isin(self, name: str, texts: frozenset[str] | None) -> np.ndarray:
        """Rows whose value (as text) is one of ``texts``; any value when ``texts`` is None."""
        codes, uniques = self.factors(name)
        if texts is None:
            return codes >= 0
        return np.isin(codes, [i for i, value in enumerate(uniques) if value in texts])

    def text(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The values of a column at ``rows``, as text."""
        return self._column(name).iloc[rows].astype(str).to_numpy(object)

    def flag(self, name: str) -> np.ndarray:
        """A boolean flag column."""
        return self._column(name).to_numpy(dtype=bool)

    def local(self, part: str) -> np.ndarray:
        """``minute`` of the day or ``weekday`` (0 = Monday) of ``requested_at``, local time."""
        if part not in self._cache:
            local = pd.to_datetime(self._column("requested_at"), utc=True).dt.tz_convert(
                self.city.config.timezone
            )
            self._cache["minute"] = (local.dt.hour * 60 + local.dt.minute).to_numpy()
            self._cache["weekday"] = local.dt.day_of_week.to_numpy()
        return self._cache[part]


class RoutingTable:
    """A city's rules compiled into arrays, to route batches with vector operations."""

    def __init__(self, city: City) -> None:
        self.city = city
        rules = city.config.routing.rules
        self.rules = rules
        self.service_codes = pd.Index([s.code for s in city.config.services])
        groups = [s.group for s in city.config.services]
        self.group_codes = pd.Index(sorted(set(groups)))
        self.service_group = self.group_codes.get_indexer(pd.Index(groups))
        self.conditional = [i for i, r in enumerate(rules) if is_conditional(r)]
        plain = np.full(len(self.service_codes), _NONE, dtype=np.int64)
        # Group rules first, then service rules over them: the service rule wins.
        for kind in ("group", "service"):
            for i, rule in reversed(list(enumerate(rules))):
                if is_conditional(rule) or getattr(rule, kind) is None:
                    continue
                if kind == "service":
                    plain[self.service_codes.get_loc(rule.service)] = i
                else:
                    plain[self.service_group == self.group_codes.get_loc(rule.group)] = i
        self.plain = plain
        # The same tables as plain Python values, for ``route_one``.
        self._service_index = {code: i for i, code in enumerate(self.service_codes)}
        self._group_index = {code: i for i, code in enumerate(self.group_codes)}
        self._service_group: list[int] = self.service_group.tolist()
        self._plain: list[int] = plain.tolist()
        self._conditions = [self._compile(rules[i]) for i in self.conditional]
        self._zone = ZoneInfo(city.config.timezone)

    def _compile(self, rule: Route) -> _Condition:
        """A conditional rule's conditions as indexes, sets of texts and minutes."""
        values: list[tuple[str, frozenset[str] | None]] = [
            (f"zone_{layer}", None if codes == "*" else frozenset(str(v) for v in codes))
            for layer, codes in rule.zones.items()
        ]
        values += [
            (f"segment_{attribute}", frozenset(str(v) for v in wanted))
            for attribute, wanted in rule.segment.items()
        ]
        start, end = rule.hours.split("-") if rule.hours is not None else (None, None)
        return _Condition(
            service=None if rule.service is None else self._service_index[rule.service],
            group=None if rule.group is None else self._group_index[rule.group],
            values=tuple(values),
            minutes=None if start is None or end is None else (_minutes(start), _minutes(end)),
            weekdays=tuple(WEEKDAYS.index(d) for d in rule.weekdays),
            flags=tuple(rule.flags.items()),
            words=_words(rule),
        )

    @cached_property
    def _rule_arrays(self) -> dict[str, np.ndarray]:
        """Per rule (and, last, one entry for "no rule"), the values a decision copies."""
        city, routing = self.city, self.city.config.routing
        default_sla = sla_hours(city, None, DEFAULT_PRIORITY)
        hours = [sla_hours(city, r.sla, r.priority) for r in self.rules] + [default_sla]
        teams = city.teams
        return {
            "team": np.array([r.team for r in self.rules] + [routing.default_team], object),
            "rule_id": np.array([r.id for r in self.rules] + [None], object),
            "rule_version": np.array([r.version for r in self.rules] + [0], np.int64),
            "priority": np.array([r.priority for r in self.rules] + [DEFAULT_PRIORITY], np.int64),
            "sla_hours": np.array([h[0] for h in hours], float),
            "sla_working_hours": np.array([h[1] for h in hours], float),
            "escalate_to": np.array(
                [r.escalate_to or routing.escalation.team for r in self.rules]
                + [routing.escalation.team],
                object,
            ),
            "tail": np.array(
                [
                    f" → {teams[r.team].name}, rule {r.id} v{r.version}"
                    # A plain rule's label says where it comes from (e.g. learned from
                    # dispatchers); a conditional rule's label already named its conditions.
                    + (f": {r.label}" if r.label and not is_conditional(r) else "")
                    for r in self.rules
                ]
                + [f" → city default {teams[routing.default_team].name}"],
                object,
            ),
        }

    @cached_property
    def _outcomes(self) -> list[_Outcome]:
        """``_rule_arrays`` by rule, as Python values (NaN as None), for ``route_one``."""
        a = {name: values.tolist() for name, values in self._rule_arrays.items()}
        return [
            _Outcome(
                team=a["team"][i],
                rule_id=a["rule_id"][i],
                rule_version=a["rule_version"][i],
                priority=a["priority"][i],
                sla_hours=None if _missing(a["sla_hours"][i]) else a["sla_hours"][i],
                sla_working_hours=(
                    None if _missing(a["sla_working_hours"][i]) else a["sla_working_hours"][i]
                ),
                escalate_to=a["escalate_to"][i],
                tail=a["tail"][i],
            )
            for i in range(len(self.rules) + 1)
        ]

    def _mask(self, condition: _Condition, columns: _Columns, service: np.ndarray) -> np.ndarray:
        """Rows of the batch where every condition holds."""
        mask = service != _NONE
        if condition.service is not None:
            mask &= service == condition.service
        if condition.group is not None:
            mask &= np.where(mask, self.service_group[service], _NONE) == condition.group
        for name, texts in condition.values:
            mask &= columns.isin(name, texts)
        if condition.minutes is not None:
            mask &= _inside(columns.local("minute"), *condition.minutes)
        if condition.weekdays:
            mask &= np.isin(columns.local("weekday"), condition.weekdays)
        for flag, value in condition.flags:
            mask &= columns.flag(flag) == value
        return np.asarray(mask, dtype=bool)

    def _holds(
        self, condition: _Condition, service: int, fields: Mapping[str, object], local: datetime
    ) -> bool:
        """Whether every condition holds for one report (of a known service), ``_mask``'s
        test on one row; ``local`` is its ``requested_at`` in the city's time."""
        if condition.service is not None and service != condition.service:
            return False
        if condition.group is not None and self._service_group[service] != condition.group:
            return False
        for name, texts in condition.values:
            value = fields[name]
            if _missing(value) or (texts is not None and str(value) not in texts):
                return False
        if condition.minutes is not None and not _inside(
            local.hour * 60 + local.minute, *condition.minutes
        ):
            return False
        if condition.weekdays and local.weekday() not in condition.weekdays:
            return False
        return all(bool(fields[flag]) == value for flag, value in condition.flags)

    def _phrase(self, condition: _Condition, columns: _Columns, rows: np.ndarray) -> np.ndarray:
        """The conditions in words, for the rows they decided."""
        words = np.full(len(rows), "", dtype=object)
        for text, names in condition.words:
            words = words + text
            if names:
                name = next((n for n in names if n in columns.batch), names[-1])
                words = words + columns.text(name, rows)
        return words

    def _phrase_one(self, condition: _Condition, fields: Mapping[str, object]) -> str:
        """``_phrase`` for one report."""
        words = []
        for text, names in condition.words:
            words.append(text)
            if names:
                words.append(str(fields[next((n for n in names if n in fields), names[-1])]))
        return "".join(words)

    @cached_property
    def _subject(self) -> np.ndarray:
        """« service name » of every service, by service index."""
        return np.array([f"« {s.name} »" for s in self.city.config.services], dtype=object)

    @cached_property
    def _group_names(self) -> dict[str, str]:
        """Name of every group, by code."""
        return {g.code: g.name for g in self.city.config.groups}

    def _plain_reason(self, rule: int, service: int) -> str:
        """The sentence of a report of service index ``service`` decided without a
        condition, by plain rule ``rule`` (or the city default, ``len(self.rules)``)."""
        plain_group = rule < len(self.rules) and self.rules[rule].service is None
        group = self.city.config.services[service].group
        where = f" (group « {self._group_names[group]} »)" if plain_group else ""
        return f"{self._subject[service]}{where}{self._outcomes[rule].tail}"

    def _reasons(self, pick: np.ndarray, service: np.ndarray) -> np.ndarray:
        """The sentence of each row decided without a condition: one string per distinct
        (rule, service) pair, spread to the rows (unknown services are filled by the caller)."""
        width = len(self.service_codes) + 1
        pairs, inverse = np.unique(pick * width + service + 1, return_inverse=True)
        sentences = []
        for pair in pairs.tolist():  # a few hundred distinct pairs, whatever the batch size
            rule, index = divmod(pair, width)
            sentences.append("" if index == 0 else self._plain_reason(rule, index - 1))
        return np.array(sentences, dtype=object)[inverse.reshape(-1)]

    def route(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Routing columns (``ROUTE_COLUMNS``) for every row of ``batch``, same index."""
        n = len(batch)
        columns = _Columns(self.city, batch)
        service = self.service_codes.get_indexer(pd.Index(batch["service_code"].astype(object)))
        known = service != _NONE
        chosen = np.full(n, _NONE, dtype=np.int64)
        masks: list[tuple[int, np.ndarray]] = []
        for i, condition in zip(self.conditional, self._conditions, strict=True):
            mask = self._mask(condition, columns, service) & (chosen == _NONE)
            chosen[mask] = i
            masks.append((i, mask))
        chosen = np.where(known & (chosen == _NONE), self.plain[np.maximum(service, 0)], chosen)
        no_rule = len(self.rules)
        pick = np.where(chosen == _NONE, no_rule, chosen)
        arrays = self._rule_arrays
        out = pd.DataFrame(
            {
                name: pd.Series(
                    arrays[name][pick],
                    index=batch.index,
                    dtype=object if arrays[name].dtype == object else None,
                )
                for name in ROUTE_COLUMNS[:-1]
            }
        )
        out["rule_version"] = out["rule_version"].astype("Int64").mask(chosen == _NONE)
        reason = self._reasons(pick, service)
        for (i, mask), condition in zip(masks, self._conditions, strict=True):
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue  # a rule that decided nothing has no sentence to write
            subject = self._subject[service[rows]]
            reason[rows] = subject + self._phrase(condition, columns, rows) + arrays["tail"][i]
        unknown = ~known
        codes = batch["service_code"].astype(str).to_numpy(object)
        reason[unknown] = "service " + codes[unknown] + " is not in the city's catalogue → triage"
        out["routing_reason"] = pd.Series(reason, index=batch.index, dtype=object)
        out.loc[unknown, "team"] = TRIAGE_TEAM
        return out

    def route_one(self, fields: Mapping[str, object]) -> Decision:
        """``route`` for one enriched report (``fields``: the batch's columns for it as
        Python values, None where missing), with no DataFrame: the first conditional rule
        that holds, else the plain rule of its service or group, else the city default;
        triage for a service not in the catalogue."""
        code = fields["service_code"]
        start = fields["requested_at"]
        if not isinstance(start, datetime):
            raise TypeError(f"requested_at must be a datetime, not {start!r}")
        service = self._service_index.get(code, _NONE) if isinstance(code, str) else _NONE
        chosen, reason = _NONE, ""
        if service != _NONE:
            local = start.astimezone(self._zone)
            for i, condition in zip(self.conditional, self._conditions, strict=True):
                if self._holds(condition, service, fields, local):
                    chosen = i
                    reason = (
                        f"{self._subject[service]}{self._phrase_one(condition, fields)}"
                        f"{self._outcomes[i].tail}"
                    )
                    break
            else:
                chosen = self._plain[service]
        pick = len(self.rules) if chosen == _NONE else chosen
        if service == _NONE:
            reason = f"service {code} is not in the city's catalogue → triage"
        elif not reason:
            reason = self._plain_reason(pick, service)
        outcome = self._outcomes[pick]
        hours, working = outcome.sla_hours, outcome.sla_working_hours
        calendar = calendar_at(self.city, start)
        factor = self.city.config.routing.escalation.factor
        return Decision(
            team=TRIAGE_TEAM if service == _NONE else outcome.team,
            rule_id=outcome.rule_id,
            rule_version=None if chosen == _NONE else outcome.rule_version,
            priority=outcome.priority,
            sla_hours=hours,
            sla_working_hours=working,
            escalate_to=outcome.escalate_to,
            routing_reason=reason,
            due_at=due_date(calendar, start, hours, working),
            escalate_at=due_date(calendar, start, hours, working, factor),
        )


def route(city: City, batch: pd.DataFrame, table: RoutingTable | None = None) -> pd.DataFrame:
    """Route every row of an enriched batch (see the module docstring for the order).

    Besides ``ROUTE_COLUMNS``: ``due_at`` (the SLA counted from ``requested_at`` on the
    city's calendar) and ``escalate_at`` (``routing.escalation.factor`` times the SLA).
    """
    routed = (table or RoutingTable(city)).route(batch)
    start = batch["requested_at"]
    calendar = calendar_for(city, start)
    hours, working = routed["sla_hours"].to_numpy(), routed["sla_working_hours"].to_numpy()
    routed["due_at"] = due_dates(calendar, start, hours, working)
    factor = city.config.routing.escalation.factor
    routed["escalate_at"] = due_dates(calendar, start, hours, working, factor)
    return routed


def _covers(first: Route, later: Route) -> bool:
    """Whether every report meeting ``later``'s non-service conditions meets ``first``'s."""
    for layer, codes in first.zones.items():
        theirs = later.zones.get(layer)
        if theirs is None or (
            codes != "*" and (theirs == "*" or not set(map(str, theirs)) <= set(map(str, codes)))
        ):
            return False
    for attribute, values in first.segment.items():
        theirs_values = later.segment.get(attribute)
        if theirs_values is None or not set(map(str, theirs_values)) <= set(map(str, values)):
            return False
    if first.hours is not None and first.hours != later.hours:
        return False
    if first.weekdays and not (later.weekdays and set(later.weekdays) <= set(first.weekdays)):
        return False
    return all(later.flags.get(flag) == value for flag, value in first.flags.items())


def _services_of(city: City, rule: Route) -> set[str]:
    if rule.service is not None:
        return {rule.service}
    return {s.code for s in city.config.services if rule.group in (None, s.group)}


def _shadowed(city: City) -> Iterator[tuple[int, str]]:
    """(index, explanation) of every rule that can never decide."""
    rules = city.config.routing.rules
    plain_seen: dict[tuple[str, str], str] = {}
    for i, rule in enumerate(rules):
        if is_conditional(rule):
            covered: set[str] = set()
            names: list[str] = []
            for earlier in rules[:i]:
                if is_conditional(earlier) and _covers(earlier, rule):
                    overlap = _services_of(city, earlier) & _services_of(city, rule)
                    if overlap:
                        covered |= overlap
                        names.append(earlier.id)
            if covered >= _services_of(city, rule):
                yield i, f"earlier rules {', '.join(names)} always match first"
            continue
        target = ("service", rule.service) if rule.service else ("group", rule.group or "*")
        if target in plain_seen:
            yield i, f"rule {plain_seen[target]} comes first for {target[0]} {target[1]!r}"
        else:
            plain_seen[target] = rule.id
    with_rule = {r.service for r in rules if r.service and not is_conditional(r)}
    for i, rule in enumerate(rules):
        if rule.group is None or is_conditional(rule):
            continue
        services = [s.code for s in city.config.services if s.group == rule.group]
        if services and all(code in with_rule for code in services):
            yield i, f"every service of group {rule.group!r} has its own service rule"


def unreachable_rules(city: City) -> list[str]:
    """Warnings for rules that can never decide, each naming the rule's key and id.

    A second plain rule for one service (or group) never fires; nor does a plain group
    rule whose services all have a plain rule; nor a conditional rule that earlier
    conditional rules always pre-empt (each of their conditions holds whenever its own do).
    """
    rules = city.config.routing.rules
    return [f"routing.rules[{i}] ({rules[i].id}) never fires: {why}" for i, why in _shadowed(city)]
