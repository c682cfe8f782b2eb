"""Rule versions: every (rule id, version) is stored once, with its content hash and when
it was first loaded to route, in the transaction of the assignments citing it.

A rule is identified by id and version in every assignment, so a version must always mean
the same rule. Loading a city whose rule content changed while keeping a version already
stored is refused with a clear error naming the file, the rule and the next free version
(no automatic bump: the person who edits a rule decides that it is a new version, and
the history of assignments stays readable).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from datetime import UTC, datetime

import pandas as pd

from voirie.city import CITY_FILE, City, Route
from voirie.errors import CityConfigError
from voirie.store.base import UnitOfWork


def rule_content(rule: Route) -> str:
    """The rule as canonical JSON (sorted keys, defaults included), without its version."""
    return json.dumps(
        rule.model_dump(mode="json", exclude={"version"}), sort_keys=True, ensure_ascii=False
    )


def rule_hash(rule: Route) -> str:
    """SHA-256 of the rule's canonical content."""
    return hashlib.sha256(rule_content(rule).encode()).hexdigest()


# Per loaded city (its configuration is frozen): the hash of each rule, in order, computed
# once rather than on every routed batch (a third of routing's cost for one report).
_DIGESTS: weakref.WeakKeyDictionary[City, list[str]] = weakref.WeakKeyDictionary()


def _rule_hashes(city: City) -> list[str]:
    if city not in _DIGESTS:
        _DIGESTS[city] = [rule_hash(rule) for rule in city.config.routing.rules]
    return _DIGESTS[city]


def record_rules(uow: UnitOfWork, city: City, now: datetime | None = None) -> int:
    """Store the versions of the city's rules not stored yet; return how many were new.

    Called in the transaction that writes assignments citing the rules, so they commit
    together. Raises ``CityConfigError`` for a rule whose stored version has other content.
    """
    jurisdiction = city.jurisdiction_id
    rules = city.config.routing.rules
    if not rules:
        return 0
    stored = uow.rules.versions([r.id for r in rules])
    known = {
        (str(rule_id), int(version)): (str(digest), pd.Timestamp(loaded_at))
        for rule_id, version, digest, loaded_at in zip(
            stored["rule_id"],
            stored["version"],
            stored["content_hash"],
            stored["loaded_at"],
            strict=True,
        )
    }
    latest = stored.groupby("rule_id")["version"].max().to_dict() if len(stored) else {}
    problems, new = [], []
    for i, (rule, digest) in enumerate(zip(rules, _rule_hashes(city), strict=True)):
        previous = known.get((rule.id, rule.version))
        if previous is None:
            new.append((rule, digest))
        elif previous[0] != digest:
            problems.append(
                f"{city.folder / CITY_FILE}: routing.rules[{i}] ({rule.id}).version: "
                f"version {rule.version} was loaded on {previous[1]:%Y-%m-%d %H:%M} UTC "
                f"with other content; give the changed rule version "
                f"{int(latest.get(rule.id, rule.version)) + 1}"
            )
    if problems:
        raise CityConfigError(problems)
    uow.tables.insert(
        "routing_rules",
        pd.DataFrame(
            {
                "jurisdiction_id": jurisdiction,
                "rule_id": [r.id for r, _ in new],
                "version": [r.version for r, _ in new],
                "content_hash": [d for _, d in new],
                "content": [rule_content(r) for r, _ in new],
                "loaded_at": pd.Timestamp(now or datetime.now(UTC)),
            }
        ),
    )
    return len(new)
