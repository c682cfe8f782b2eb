"""The review list of routing rules learned from dispatchers (``/staff/regles``, issue 18
item 2): every version with its status, the sentence that explains it, who decided and
when, and the buttons a reviewer may press (accept or reject a proposal, revert the rule
in force). Plain HTML forms: no script, works offline and with the keyboard."""

from __future__ import annotations

from typing import Any

from voirie.city import City
from voirie.maps.staff import render_staff_page
from voirie.store.base import LearnedRuleRecord

RULES_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Règles apprises des réaffectations",
        "intro": (
            "Quand les réaffectations d'une sous-catégorie vers une équipe atteignent le "
            "seuil et dépassent les décisions conservées, une règle est proposée."
        ),
        "mode": "Mode de la ville : {mode} (seuil : {support} réaffectations).",
        "empty": "Aucune règle apprise pour l'instant.",
        "rule": "Règle",
        "service": "Sous-catégorie",
        "team": "Équipe",
        "status": "État",
        "why": "Pourquoi",
        "decided": "Décision",
        "actions": "Actions",
        "accept": "Accepter",
        "reject": "Rejeter",
        "revert": "Revenir en arrière",
        "proposed": "proposée",
        "active": "en vigueur",
        "rejected": "rejetée",
        "reverted": "retirée",
        "off": "désactivé",
        "review": "revue",
        "auto": "automatique",
    },
    "en": {
        "title": "Rules learned from reassignments",
        "intro": (
            "When a sub-category's reassignments to one team reach the threshold and "
            "outnumber the decisions kept, a rule is proposed."
        ),
        "mode": "City mode: {mode} (threshold: {support} reassignments).",
        "empty": "No learned rule yet.",
        "rule": "Rule",
        "service": "Sub-category",
        "team": "Team",
        "status": "Status",
        "why": "Why",
        "decided": "Decision",
        "actions": "Actions",
        "accept": "Accept",
        "reject": "Reject",
        "revert": "Revert",
        "proposed": "proposed",
        "active": "in force",
        "rejected": "rejected",
        "reverted": "reverted",
        "off": "off",
        "review": "review",
        "auto": "automatic",
    },
}
# The decisions a reviewer may take on a version in each status (path word, label key).
DECISIONS: dict[str, tuple[str, ...]] = {
    "proposed": ("accept", "reject"),
    "active": ("revert",),
    "rejected": (),
    "reverted": (),
}


def render_rules_page(
    context: dict[str, Any],
    *,
    city: City,
    versions: list[LearnedRuleRecord],
    explain: dict[tuple[str, int], str],
    rule_ids: dict[str, str],
    may_review: bool,
) -> str:
    """The review list in the frame of ``context`` (``maps.staff.staff_context``)."""
    labels = RULES_LABELS[str(context["lang"])]
    learning = city.config.routing.learning
    rows = [
        {
            "rule": f"{rule_ids[r.service_code]} v{r.version}",
            "service": r.service_code,
            "service_name": city.services[r.service_code].name
            if r.service_code in city.services
            else r.service_code,
            "team": city.teams[r.team].name if r.team in city.teams else r.team,
            "status": labels[r.status],
            "why": explain[(r.service_code, r.version)],
            "decided": f"{r.decided_by} {r.decided_at:%Y-%m-%d %H:%M}" if r.decided_at else "",
            "actions": [(d, labels[d]) for d in DECISIONS[r.status]] if may_review else [],
        }
        for r in sorted(
            versions, key=lambda r: (r.status != "proposed", r.service_code, -r.version)
        )
    ]
    return render_staff_page(
        "staff_rules.html",
        context,
        labels=labels,
        mode=labels["mode"].format(mode=labels[learning.mode], support=learning.min_support),
        rows=rows,
    )
