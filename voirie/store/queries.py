"""Named read queries shared by both backends, in standard SQL.

The report and incident layers are read through ``voirie.store.selection`` (filters,
paging); ``Store.read`` of ``"reports"`` or ``"incidents"`` is that read unfiltered.

``{j}`` stands for the bound jurisdiction parameter (``?`` for sqlite, ``%s`` for psycopg);
no value is ever formatted into the text.
"""

from __future__ import annotations

QUERIES: dict[str, str] = {
    # The newest request of a jurisdiction: where "the most recent days" of Open311 end
    # (no row when it has none). One entry of the index reports_requested, read backwards.
    "newest_request": """
        SELECT r.requested_at FROM reports r
        WHERE r.jurisdiction_id = {j} AND r.requested_at IS NOT NULL
        ORDER BY r.requested_at DESC LIMIT 1""",
    "report_zones": """
        SELECT z.report_id, z.layer, z.code, z.name, z.boundary_m
        FROM report_zones z WHERE z.jurisdiction_id = {j}
        ORDER BY z.report_id, z.layer""",
}
