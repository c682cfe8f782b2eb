"""The statistics dashboard page (``/staff/stats``): its labels, tables and chart data.

The page (``templates/staff_stats.html``) shows the totals, one table per dimension (team,
zone, service, ISO week) with a CSV download each, and three charts drawn by the vendored
Chart.js 4.6.2 (``static/chart.umd.min.js``, MIT: ``static/chart.js.LICENSE.txt``) from
a JSON data block read by ``static/stats.js``: backlog and overdue by team, reported
incidents and SLA compliance by week, resolution time by zone. The tables carry every
figure the charts show, so the page reads without its scripts. French first, English
with ``?lang=en``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from voirie.maps.staff import render_staff_page
from voirie.services.stats import DIMENSIONS, MEASURES, Dashboard

CHART_TEAMS = 15
"""The teams with the largest backlog drawn in the team chart (the table has them all)."""

STATS_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Statistiques",
        "period": "Période",
        "weeks": "semaines",
        "show": "Afficher",
        "since": "Du {since} au {now}, incidents signalés pendant la période ; "
        "stock : incidents ouverts aujourd'hui.",
        "scope": "Équipes : {teams}",
        "totals": "Vue d'ensemble",
        "team": "Par équipe",
        "zone": "Par zone",
        "service": "Par catégorie",
        "week": "Par semaine (ISO)",
        "csv": "Télécharger (CSV)",
        "key": "Code",
        "label": "Nom",
        "backlog": "Stock ouvert",
        "overdue": "En retard",
        "reported": "Signalés",
        "ack_median_h": "Prise en compte, médiane (h)",
        "ack_p90_h": "Prise en compte, 90e centile (h)",
        "resolve_median_h": "Résolution, médiane (h)",
        "resolve_p90_h": "Résolution, 90e centile (h)",
        "sla_met": "Dans les délais",
        "sla_known": "Délai connu",
        "sla_pct": "Respect des délais (%)",
        "chart_team": "Stock ouvert et retards par équipe ({n} plus gros stocks)",
        "chart_week": "Incidents signalés et respect des délais par semaine",
        "chart_zone": "Délai de résolution par zone (heures)",
        "none": "—",
    },
    "en": {
        "title": "Statistics",
        "period": "Period",
        "weeks": "weeks",
        "show": "Show",
        "since": "From {since} to {now}, incidents reported in the period; "
        "backlog: incidents open today.",
        "scope": "Teams: {teams}",
        "totals": "Overview",
        "team": "By team",
        "zone": "By zone",
        "service": "By category",
        "week": "By week (ISO)",
        "csv": "Download (CSV)",
        "key": "Code",
        "label": "Name",
        "backlog": "Open backlog",
        "overdue": "Overdue",
        "reported": "Reported",
        "ack_median_h": "Acknowledge, median (h)",
        "ack_p90_h": "Acknowledge, 90th percentile (h)",
        "resolve_median_h": "Resolve, median (h)",
        "resolve_p90_h": "Resolve, 90th percentile (h)",
        "sla_met": "On time",
        "sla_known": "Outcome known",
        "sla_pct": "SLA compliance (%)",
        "chart_team": "Open backlog and overdue by team ({n} largest backlogs)",
        "chart_week": "Incidents reported and SLA compliance by week",
        "chart_zone": "Time to resolve by zone (hours)",
        "none": "—",
    },
}


def _cell(value: object) -> object:
    """A table value for the page and the JSON block: NaN as None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(table: pd.DataFrame) -> list[list[object]]:
    return [[_cell(v) for v in row] for row in table.itertuples(index=False)]


def chart_data(dashboard: Dashboard) -> dict[str, Any]:
    """What the three charts draw, as columns (only the app's own numbers and labels)."""
    teams = dashboard.tables["team"].nlargest(CHART_TEAMS, "backlog")
    weeks, zones = dashboard.tables["week"], dashboard.tables["zone"]
    return {
        "team": {
            "labels": teams["label"].tolist(),
            "backlog": teams["backlog"].tolist(),
            "overdue": teams["overdue"].tolist(),
        },
        "week": {
            "labels": weeks["key"].tolist(),
            "reported": weeks["reported"].tolist(),
            "sla_pct": [_cell(v) for v in weeks["sla_pct"].tolist()],
        },
        "zone": {
            "labels": zones["label"].tolist(),
            "median": [_cell(v) for v in zones["resolve_median_h"].tolist()],
            "p90": [_cell(v) for v in zones["resolve_p90_h"].tolist()],
        },
    }


def render_stats_page(
    context: dict[str, Any],
    dashboard: Dashboard,
    *,
    timezone: str,
    scope: list[str] | None,
    week_choices: tuple[int, ...],
) -> str:
    """The dashboard in the frame of ``context`` (``maps.staff.staff_context``); ``scope``
    names an agent's teams (None: every team)."""
    lang = str(context["lang"])
    labels = STATS_LABELS[lang]
    local = [
        pd.Timestamp(moment)
        .tz_convert(timezone)
        .strftime("%d/%m/%Y" if lang == "fr" else "%Y-%m-%d")
        for moment in (dashboard.since, dashboard.now)
    ]
    columns = ["key", "label", *MEASURES]
    tables = [
        {"name": name, "columns": columns, "rows": _rows(dashboard.tables[name][columns])}
        for name in DIMENSIONS
    ]
    data = {"labels": labels, "charts": chart_data(dashboard), "chart_teams": CHART_TEAMS}
    return render_staff_page(
        "staff_stats.html",
        context,
        labels=labels,
        period=labels["since"].format(since=local[0], now=local[1]),
        scope=None if scope is None else labels["scope"].format(teams=", ".join(scope)),
        totals=[(name, _cell(dashboard.totals[name])) for name in MEASURES],
        tables=tables,
        weeks=dashboard.weeks,
        week_choices=week_choices,
        data=data,
        chart_title=labels["chart_team"].format(n=CHART_TEAMS),
    )
