"""The outbox: notifications written in the same transaction as the change they announce.

A routing decision, a status change or a reassignment commits together with one outbox
row per channel of the team concerned (its ``webhook`` and its ``email`` in city.yaml).
``voirie.routing.worker`` delivers them afterwards, at least once: a crash between the
commit and the delivery loses nothing, and every message carries an idempotency key (also
in the ``Idempotency-Key`` header) so a receiver recognises a message delivered twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.routing.versions import record_rules
from voirie.store.base import UnitOfWork

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
WEBHOOK, EMAIL = "webhook", "email"


def _channels(city: City) -> pd.DataFrame:
    """team, channel, target: one row per way of reaching each team."""
    rows = [
        (team.code, channel, target)
        for team in city.teams.values()
        for channel, target in ((WEBHOOK, team.webhook), (EMAIL, team.email))
        if target
    ]
    return pd.DataFrame(rows, columns=["team", "channel", "target"])


def enqueue_many(
    uow: UnitOfWork, city: City, messages: pd.DataFrame, now: datetime | None = None
) -> int:
    """Queue messages for the teams they concern; return how many outbox rows were written.

    ``messages`` has columns ``kind``, ``entity``, ``entity_id``, ``team`` and any data
    columns, which become the JSON payload (with ``kind``, ``team``, ``entity``,
    ``entity_id``, ``jurisdiction_id``, ``idempotency_key`` and ``sent_for``).
    A team without webhook or email gets no row. Messages that already have ``channel``
    and ``target`` columns (notices to citizens) go there instead.
    """
    rows = messages.reset_index(drop=True)
    if "target" not in rows:
        rows = rows.merge(_channels(city), on="team", how="inner")
    if not len(rows):
        return 0
    at = pd.Timestamp(now or datetime.now(UTC))
    jurisdiction = city.jurisdiction_id
    ids = uow.reserve_ids("outbox", len(rows))
    rows["id"] = ids
    rows["jurisdiction_id"] = jurisdiction
    rows["idempotency_key"] = (
        jurisdiction + ":" + rows["kind"].astype(str) + ":" + rows["entity"].astype(str) + ":"
        + rows["entity_id"].astype(str) + ":" + pd.Series(ids).astype(str)
    )
    payload = rows.drop(columns=["id", "channel", "target"]).assign(sent_for=at)
    rows["payload"] = payload.to_json(
        orient="records", lines=True, date_format="iso", force_ascii=False
    ).splitlines()
    rows["status"] = PENDING
    rows["attempts"] = 0
    rows["next_attempt_at"] = at
    rows["created_at"] = at
    uow.insert("outbox", rows)
    return len(rows)


def enqueue(
    uow: UnitOfWork, city: City, *, kind: str, incident_id: int, team: str,
    data: Mapping[str, object] | None = None, now: datetime | None = None,
) -> int:
    """Queue one notice about an incident for ``team`` (status change, reassignment...).

    Call it inside the unit of work that makes the change, so both commit together.
    """
    message = {"kind": kind, "entity": "incident", "entity_id": int(incident_id), "team": team,
               **(data or {})}
    return enqueue_many(uow, city, pd.DataFrame([message]), now)


def notify_citizens(
    uow: UnitOfWork, city: City, *, kind: str, incident_id: int,
    data: Mapping[str, object], now: datetime | None = None,
) -> int:
    """Queue an email to each follower and reporter (with an email) of an incident.

    ``data`` is all they receive besides the incident id and the kind: only public facts
    (a status), never a dispatcher's internal note or another citizen's address.
    """
    emails = uow.subscribers(incident_id)
    if not emails:
        return 0
    fields = {"kind": kind, "entity": "incident", "entity_id": int(incident_id), "team": None,
              **data}
    messages = pd.DataFrame([{"channel": EMAIL, "target": email, **fields} for email in emails])
    return enqueue_many(uow, city, messages, now)


def record_routing(
    uow: UnitOfWork, city: City, incidents: pd.DataFrame, routed: pd.DataFrame,
    now: datetime,
) -> None:
    """After routing new incidents: the rule versions they cite (``record_rules``), their
    escalation deadlines and their teams' notices, all in the routing's transaction.

    ``incidents`` are the incident rows just written, ``routed`` the routing of each (same
    order, from ``voirie.routing.table.route``).
    """
    record_rules(uow, city, now)
    escalate_at = routed["escalate_at"].to_numpy()
    has_sla = ~pd.isna(escalate_at)
    uow.insert(
        "escalations",
        pd.DataFrame(
            {
                "incident_id": incidents["id"].to_numpy()[has_sla],
                "jurisdiction_id": city.jurisdiction_id,
                "escalate_at": escalate_at[has_sla],
                "escalate_to": routed["escalate_to"].to_numpy()[has_sla],
            }
        ),
    )
    names = {code: s.name for code, s in city.services.items()}
    enqueue_many(
        uow, city,
        pd.DataFrame(
            {
                "kind": "assigned", "entity": "incident",
                "entity_id": incidents["id"].to_numpy(np.int64),
                "team": routed["team"].to_numpy(),
                "service_code": incidents["service_code"].to_numpy(),
                "service_name": incidents["service_code"].map(names).to_numpy(),
                "priority": routed["priority"].to_numpy(),
                "due_at": routed["due_at"].to_numpy(),
                "reason": routed["routing_reason"].to_numpy(),
                "rule_id": routed["rule_id"].to_numpy(),
                "rule_version": routed["rule_version"].to_numpy(),
                "lon": incidents["lon"].to_numpy(), "lat": incidents["lat"].to_numpy(),
            }
        ),
        now,
    )
