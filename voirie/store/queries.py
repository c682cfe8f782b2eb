"""Named read queries shared by both backends, in standard SQL.

The report and incident layers are read through ``voirie.store.selection`` (filters,
paging); ``Store.read`` of ``"reports"`` or ``"incidents"`` is that read unfiltered.

``{j}`` stands for the bound jurisdiction parameter (``?`` for sqlite, ``%s`` for psycopg);
no value is ever formatted into the text.
"""

from __future__ import annotations

QUERIES: dict[str, str] = {
    "report_zones": """
        SELECT z.report_id, z.layer, z.code, z.name, z.boundary_m
        FROM report_zones z WHERE z.jurisdiction_id = {j}
        ORDER BY z.report_id, z.layer""",
    # Where each incident stands now (migration 0018): its first report's zones until
    # staff move its pin.
    "incident_zones": """
        SELECT z.incident_id, z.layer, z.code, z.name
        FROM incident_zones z WHERE z.jurisdiction_id = {j}
        ORDER BY z.incident_id, z.layer""",
}
