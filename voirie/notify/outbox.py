"""The outbox: notifications written in the same transaction as the change they announce.

A routing decision, a status change or a reassignment commits together with one outbox
row per channel of the team concerned (its ``webhook`` and its ``email`` in city.yaml).
``voirie.notify.worker`` delivers them afterwards, at least once: a crash between the
commit and the delivery loses nothing, and every message carries an idempotency key (also
in the ``Idempotency-Key`` header) so a receiver recognises a message delivered twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import numpy as np
import pandas as pd
from pandas.io.json import ujson_dumps  # type: ignore[attr-defined]  # untyped in pandas-stubs

from voirie.city import City
from voirie.notify import consent
from voirie.notify.consent import WAITS_AS
from voirie.notify.versions import record_rules
from voirie.routing.table import Decision
from voirie.store.base import ConsentRecord, UnitOfWork
from voirie.store.schema import COLUMNS

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
WEBHOOK, EMAIL = "webhook", "email"
# How ``enqueue_many``'s ``DataFrame.to_json(date_format="iso", force_ascii=False)`` writes
# values (its defaults: floats to 10 decimals, instants as UTC ISO text to the millisecond,
# NaN and None as null), given to the same encoder for one message's payload.
_PAYLOAD_JSON = {
    "double_precision": 10,
    "iso_dates": True,
    "date_unit": "ms",
    "ensure_ascii": False,
}


def _channel_rows(city: City) -> list[tuple[str, str, str]]:
    """(team, channel, target): one per way of reaching each team."""
    return [
        (team.code, channel, target)
        for team in city.teams.values()
        for channel, target in ((WEBHOOK, team.webhook), (EMAIL, team.email))
        if target
    ]


def _channels(city: City) -> pd.DataFrame:
    """team, channel, target: one row per way of reaching each team."""
    return pd.DataFrame(_channel_rows(city), columns=["team", "channel", "target"])


def team_channels(city: City, team: object) -> list[tuple[str, str]]:
    """(channel, target) of each way of reaching ``team``, in ``_channels``'s order."""
    return [(channel, target) for code, channel, target in _channel_rows(city) if code == team]


def enqueue_many(
    uow: UnitOfWork, city: City, messages: pd.DataFrame, now: datetime | None = None
) -> int:
    """Queue messages for the teams they concern; return how many outbox rows were written.

    ``messages`` has columns ``kind``, ``entity``, ``entity_id``, ``team`` and any data
    columns, which become the JSON payload (with ``kind``, ``team``, ``entity``,
    ``entity_id``, ``jurisdiction_id``, ``idempotency_key`` and ``sent_for``).
    A team without webhook or email gets no row. Messages that already have ``channel``
    and ``target`` columns (notices to citizens) go there instead; a ``waits_as`` column
    (``held`` for an address not confirmed yet, see ``voirie.notify.consent``) is the
    status each row waits in instead of ``pending``, and is not part of the payload.
    """
    rows = messages.reset_index(drop=True)
    if "target" not in rows:
        rows = rows.merge(_channels(city), on="team", how="inner")
    if not len(rows):
        return 0
    at = pd.Timestamp(now or datetime.now(UTC))
    jurisdiction = city.jurisdiction_id
    ids = uow.tables.reserve_ids("outbox", len(rows))
    rows["id"] = ids
    rows["jurisdiction_id"] = jurisdiction
    rows["idempotency_key"] = (
        jurisdiction
        + ":"
        + rows["kind"].astype(str)
        + ":"
        + rows["entity"].astype(str)
        + ":"
        + rows["entity_id"].astype(str)
        + ":"
        + pd.Series(ids).astype(str)
    )
    waits = rows.pop(WAITS_AS).to_numpy() if WAITS_AS in rows else PENDING
    payload = rows.drop(columns=["id", "channel", "target"]).assign(sent_for=at)
    rows["payload"] = payload.to_json(
        orient="records", lines=True, date_format="iso", force_ascii=False
    ).splitlines()
    rows["status"] = waits
    rows["attempts"] = 0
    rows["next_attempt_at"] = at
    rows["created_at"] = at
    uow.tables.insert("outbox", rows)
    return len(rows)


def enqueue(
    uow: UnitOfWork,
    city: City,
    *,
    kind: str,
    incident_id: int,
    team: str,
    data: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> int:
    """Queue one notice about an incident for ``team`` (status change, reassignment...).

    Call it inside the unit of work that makes the change, so both commit together.
    """
    message = {
        "kind": kind,
        "entity": "incident",
        "entity_id": int(incident_id),
        "team": team,
        **(data or {}),
    }
    return enqueue_many(uow, city, pd.DataFrame([message]), now)


def notify_citizens(
    uow: UnitOfWork,
    city: City,
    *,
    kind: str,
    incident_id: int,
    data: Mapping[str, object],
    now: datetime | None = None,
) -> int:
    """Queue an email to each follower and reporter (with an email) of an incident, but
    those who opted out of it; held until their address is confirmed (``enqueue_citizens``).

    ``data`` is all they receive besides the incident id and the kind: only public facts
    (a status), never a dispatcher's internal note or another citizen's address.
    """
    muted = uow.consents.opted_out(incident_id)
    emails = {consent.normalized(e) for e in uow.citizens.subscribers(incident_id)} - muted
    if not emails:
        return 0
    fields = {
        "kind": kind,
        "entity": "incident",
        "entity_id": int(incident_id),
        "team": None,
        **data,
    }
    messages = [{"channel": EMAIL, "target": email, **fields} for email in sorted(emails)]
    return enqueue_citizens(uow, city, messages, now)


def enqueue_citizens(
    uow: UnitOfWork,
    city: City,
    messages: Sequence[Mapping[str, object]],
    now: datetime | None = None,
) -> int:
    """Queue emails to citizens (``target`` their address) through their consent: due for
    a confirmed address, held for one not confirmed yet (asked to confirm when it never
    was), none for one that stopped everything. Return how many rows were written."""
    at = now or datetime.now(UTC)
    rows = consent.gate(uow, messages, city.config.locale, at)
    return enqueue_many(uow, city, pd.DataFrame(rows), at) if rows else 0


def ask_consent(
    uow: UnitOfWork, city: City, email: str, language: str, now: datetime | None = None
) -> ConsentRecord:
    """Take note of an address a citizen just gave and queue its confirmation email
    (unless confirmed or asked a moment ago); its consent as stored."""
    at = now or datetime.now(UTC)
    record, confirmation = consent.ask(uow, email, language, at)
    if confirmation is not None:
        enqueue_many(uow, city, pd.DataFrame([confirmation]), at)
    return record


def _assigned(
    entity_id: object,
    team: object,
    service_code: object,
    service_name: object,
    priority: object,
    due_at: object,
    reason: object,
    rule_id: object,
    rule_version: object,
    lon: object,
    lat: object,
) -> dict[str, object]:
    """The "assigned" notice of new incidents (columns) or of one (values), in the order
    of its payload's keys."""
    return {
        "kind": "assigned",
        "entity": "incident",
        "entity_id": entity_id,
        "team": team,
        "service_code": service_code,
        "service_name": service_name,
        "priority": priority,
        "due_at": due_at,
        "reason": reason,
        "rule_id": rule_id,
        "rule_version": rule_version,
        "lon": lon,
        "lat": lat,
    }


def _escalation(
    city: City, incident_id: object, escalate_at: object, escalate_to: object
) -> dict[str, object]:
    """An escalation row of new incidents (columns) or of one (values)."""
    return {
        "incident_id": incident_id,
        "jurisdiction_id": city.jurisdiction_id,
        "escalate_at": escalate_at,
        "escalate_to": escalate_to,
    }


def outbox_rows(
    city: City, message: Mapping[str, object], ids: list[int], now: datetime
) -> list[dict[str, object]]:
    """``enqueue_many``'s outbox rows for one message to a team (one per channel of the
    team, ``ids`` theirs, as many as ``team_channels`` gives), as Python values."""
    jurisdiction = city.jurisdiction_id
    head = f"{jurisdiction}:{message['kind']}:{message['entity']}:{message['entity_id']}:"
    rows = []
    for row_id, (channel, target) in zip(ids, team_channels(city, message["team"]), strict=True):
        key = f"{head}{row_id}"
        payload = {
            **message,
            "jurisdiction_id": jurisdiction,
            "idempotency_key": key,
            "sent_for": now,
        }
        row = {
            **message,
            "id": row_id,
            "jurisdiction_id": jurisdiction,
            "idempotency_key": key,
            "channel": channel,
            "target": target,
            "payload": ujson_dumps(payload, **_PAYLOAD_JSON),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        rows.append({name: row[name] for name in COLUMNS["outbox"] if name in row})
    return rows


def _escalates(escalate_at: object, now: datetime) -> bool:
    """Whether a new incident's escalation is scheduled: only a deadline still ahead when
    the incident is stored. voirie escalates the incidents it watched go late, not a
    backlog it inherits: a history import would otherwise send every old open incident
    to the escalation team at the worker's first pass. Such an incident still shows as
    overdue (its ``due_at``) in the queue, on the map and in the statistics."""
    if not isinstance(escalate_at, datetime | np.datetime64) or pd.isna(escalate_at):
        return False  # no SLA (None, NaT)
    return bool(pd.Timestamp(escalate_at) > now)


def _ahead(deadlines: pd.Series, now: datetime) -> np.ndarray:
    """``_escalates`` of a batch: whether each deadline is still ahead of ``now`` (False
    where there is none)."""
    return (pd.to_datetime(deadlines, utc=True) > pd.Timestamp(now)).to_numpy(bool)


def routing_rows(
    city: City,
    incident: Mapping[str, object],
    decision: Decision,
    outbox_ids: list[int],
    now: datetime,
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The escalation rows and the outbox rows ``record_routing`` writes for one new
    incident (``incident``: its row, with id, service_code, lon, lat), ``outbox_ids``
    one per channel of its team."""
    incident_id = int(cast(int, incident["id"]))
    escalations = (
        [_escalation(city, incident_id, decision.escalate_at, decision.escalate_to)]
        if _escalates(decision.escalate_at, now)
        else []
    )
    service = city.services.get(str(incident["service_code"]))
    message = _assigned(
        incident_id,
        decision.team,
        incident["service_code"],
        None if service is None else service.name,
        decision.priority,
        decision.due_at,
        decision.routing_reason,
        decision.rule_id,
        decision.rule_version,
        incident["lon"],
        incident["lat"],
    )
    return escalations, outbox_rows(city, message, outbox_ids, now)


def record_routing_one(
    uow: UnitOfWork,
    city: City,
    incident: Mapping[str, object],
    decision: Decision,
    now: datetime,
) -> None:
    """``record_routing`` for one new incident, without DataFrames and without the rule
    versions (the caller records those): its escalation deadline and its team's notices."""
    channels = len(team_channels(city, decision.team))
    ids = uow.tables.reserve_ids("outbox", channels).tolist() if channels else []
    escalations, notices = routing_rows(city, incident, decision, ids, now)
    if escalations:
        uow.tables.insert_rows("escalations", escalations)
    if notices:
        uow.tables.insert_rows("outbox", notices)


def record_routing(
    uow: UnitOfWork,
    city: City,
    incidents: pd.DataFrame,
    routed: pd.DataFrame,
    now: datetime,
    *,
    rules: bool = True,
) -> None:
    """After routing new incidents: the rule versions they cite (``record_rules``), their
    escalation deadlines and their teams' notices, all in the routing's transaction.

    ``rules=False`` when the caller stored the city's rule versions before, in a
    transaction committed first (the bulk import, once per import: reading them in every
    batch made the batch wait for the inserts sent before the read).

    ``incidents`` are the incident rows just written (all new, so open), ``routed`` the
    routing of each (same order, from ``voirie.routing.table.route``).

    This is the bulk path, an import: it tells a team only of the incidents whose
    deadline (``due_at``, the SLA) is still ahead when they are stored, as it schedules
    only escalations still ahead (``_escalates``). An import of a city's history would
    otherwise mail or call every team once per old incident; an incident already past
    its SLA, or without one, is in the team's queue and on the dispatch map, overdue or
    not, never announced. (FixMyStreet goes further: the reports it fetches from a body's
    own system are stored as already sent, and no body is told of any; a voirie import
    may bring a partner's reports the team has not seen, so a recent one is announced.)
    The per-report path (``record_routing_one``: Open311 POST, the citizens' form)
    announces every incident it opens.
    """
    if rules:
        record_rules(uow, city, now)
    # Zoned instants filtered as they are (``array``): ``to_numpy`` would first make a
    # Timestamp object of every one (a third of this function's time in an import).
    escalate_at = routed["escalate_at"].array
    has_sla = _ahead(routed["escalate_at"], now)
    uow.tables.insert(
        "escalations",
        pd.DataFrame(
            _escalation(
                city,
                incidents["id"].to_numpy()[has_sla],
                escalate_at[has_sla],
                routed["escalate_to"].to_numpy()[has_sla],
            )
        ),
    )
    names = {code: s.name for code, s in city.services.items()}
    due = _ahead(routed["due_at"], now)
    enqueue_many(
        uow,
        city,
        pd.DataFrame(
            _assigned(
                incidents["id"].to_numpy(np.int64)[due],
                routed["team"].to_numpy()[due],
                incidents["service_code"].to_numpy()[due],
                incidents["service_code"].map(names).to_numpy()[due],
                routed["priority"].to_numpy()[due],
                routed["due_at"].array[due],
                routed["routing_reason"].to_numpy()[due],
                routed["rule_id"].to_numpy()[due],
                routed["rule_version"].to_numpy()[due],
                incidents["lon"].to_numpy()[due],
                incidents["lat"].to_numpy()[due],
            )
        ),
        now,
    )
