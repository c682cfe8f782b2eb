"""``Reports.digests_later``: what a bulk import's first pass reads of the reports stored
under a chunk's ids, on both backends.

What must hold: for every given id stored for the source in the transaction's
jurisdiction, exactly one row with the content hash and raw digest that ``known`` reads
(the full look-up, the per-report path's); nothing for ids not stored, for another source
or another jurisdiction; whatever the order of the ids and their repeats; and the same when
the result is read later in a pipelined block, after other statements were sent.
"""

from __future__ import annotations

import pandas as pd

from voirie.services.pipeline import Pipeline
from voirie.store.base import STORED_DIGEST_COLUMNS

J = "paris.fr"
SOURCE = "dansmarue"


def _stored_ids(pipeline: Pipeline) -> list[str]:
    """The external ids of the sample's stored reports, in the order of their ids."""
    with pipeline.store.transaction(J) as uow:
        rows = uow.session.run("SELECT external_id FROM reports ORDER BY id").fetchall()
    return [str(row[0]) for row in rows]


def _by_id(frame: pd.DataFrame) -> dict[str, tuple[object, object]]:
    """external_id -> (content_hash, raw_digest), checking each id comes once."""
    assert not frame["external_id"].duplicated().any()
    return {
        str(row.external_id): (row.content_hash, row.raw_digest)
        for row in frame.itertuples(index=False)
    }


def test_stored_ids_read_as_known_reads_them(pipeline: Pipeline) -> None:
    stored = _stored_ids(pipeline)
    assert len(stored) > 150
    asked = [*reversed(stored[:120]), "not-stored", stored[5], stored[5], "zz-not-stored"]
    with pipeline.store.transaction(J) as uow:
        digests = uow.reports.digests_later(SOURCE, asked)()
        known = uow.reports.known(SOURCE, asked)
    assert list(digests.columns) == STORED_DIGEST_COLUMNS
    assert len(digests) == 120
    expected = _by_id(known[["external_id", "content_hash", "raw_digest"]])
    assert _by_id(digests) == expected
    assert set(expected) == set(stored[:120])
    assert all(isinstance(h, str) and len(h) == 16 for _, h in expected.values())


def test_nothing_for_other_ids_sources_or_cities(pipeline: Pipeline) -> None:
    stored = _stored_ids(pipeline)
    with pipeline.store.transaction(J) as uow:
        nothing = uow.reports.digests_later(SOURCE, [])()
        unknown = uow.reports.digests_later(SOURCE, ["not-stored"])()
        other_source = uow.reports.digests_later("open311", stored[:10])()
    with pipeline.store.transaction("other.city") as uow:
        other_city = uow.reports.digests_later(SOURCE, stored[:10])()
    for frame in (nothing, unknown, other_source, other_city):
        assert list(frame.columns) == STORED_DIGEST_COLUMNS
        assert frame.empty


def test_read_later_in_a_pipelined_block(pipeline: Pipeline) -> None:
    stored = _stored_ids(pipeline)
    with pipeline.store.transaction(J) as uow:
        expected = _by_id(uow.reports.known(SOURCE, stored)[STORED_DIGEST_COLUMNS])
    with pipeline.store.transaction(J) as uow, uow.pipelined():
        later = uow.reports.digests_later(SOURCE, stored)
        one = uow.reports.known_one_later(SOURCE, stored[-1])
        digests = later()
        last = one()
    assert _by_id(digests) == expected
    assert last is not None
    assert last.content_hash == expected[stored[-1]][0]


def test_ids_of_any_text_are_looked_up_as_they_are(pipeline: Pipeline) -> None:
    """Ids are bound as text whatever they hold (on PostGIS, one array literal the
    statement parses): quotes, backslashes, commas, braces, spaces, the word NULL."""
    odd = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "é,ü", 'q"', "\\"]
    with pipeline.store.transaction(J) as uow:
        stored = uow.session.run("SELECT id FROM reports ORDER BY id LIMIT 10").fetchall()
        for (report_id,), new_id in zip(stored, odd, strict=True):
            uow.session.run("UPDATE reports SET external_id = ? WHERE id = ?", (new_id, report_id))
    with pipeline.store.transaction(J) as uow:
        found = uow.reports.digests_later(SOURCE, [*odd, "not-stored"])()
    assert sorted(found["external_id"]) == sorted(odd)
