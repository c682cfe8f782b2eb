"""What staff do when deduplication got it wrong: merge two incidents, split a report out of
its incident, mark two incidents "not duplicates"; and re-clustering, what the city does
after changing its thresholds (``recluster``).

Each operation runs in one transaction with its events (actor and reason), after taking
the same locks as the online attach for the services involved, so it never races with
reports arriving. A merged-away incident keeps its row: status ``duplicate`` and a
``merged_into`` pointer to the survivor (``survivor`` follows it). A split report opens a
new incident routed like any new one, and the two incidents are remembered as not
duplicates, like a pair staff marked: re-clustering never puts them together again (the
online attach only ever adds a new report to one incident, so it cannot merge them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from voirie.errors import Conflict, InvalidInput, NotFound
from voirie.gis import dedupe
from voirie.model import SYSTEM_ACTOR, EventKind, Status
from voirie.services.pipeline import Pipeline
from voirie.store.base import IncidentRow, UnitOfWork
from voirie.store.selection import Selection

MAX_REASON_LENGTH = 2_000
# A person decided the link: full confidence.
STAFF_SCORE = 1.0
# How a staff merge words the links of the reports it moved (``merge``); re-clustering
# recognises them by it and by ``STAFF_SCORE``.
STAFF_LINK = "merged from incident "


@dataclass(frozen=True)
class Merged:
    """The outcome of a merge."""

    survivor_id: int
    merged_id: int
    reports_moved: int
    report_count: int
    """Reports of the survivor after the merge."""
    supporters: int
    """Supporters ("me too") of the survivor after the merge, each counted once."""


def _words(value: str, field: str) -> str:
    """A required free-text field, stripped, or ``InvalidInput`` naming it."""
    text = value.strip()
    if not text:
        raise InvalidInput(f"{field}: must not be empty", field=field)
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"{field}: at most {MAX_REASON_LENGTH} characters, got {len(text)}", field=field
        )
    return text


def _services(pipeline: Pipeline, incident_ids: tuple[int, ...], field: str) -> list[str]:
    """Service codes of incidents (read before locking; an incident's service never
    changes), or ``NotFound`` naming the first missing one."""
    found = pipeline.reads.incidents(Selection(ids=tuple(sorted(set(incident_ids)))))
    known = set(found["incident_id"].astype(int))
    for incident_id in incident_ids:
        if incident_id not in known:
            raise NotFound(f"{field}: incident {incident_id} does not exist", field=field)
    return sorted(set(found["service_code"]))


def _locked(uow: UnitOfWork, incident_id: int, field: str) -> IncidentRow:
    """The stored incident, locked until the transaction ends, or ``NotFound`` naming
    ``field``."""
    row = uow.incidents.get(incident_id)
    if row is None:
        raise NotFound(f"{field}: incident {incident_id} does not exist", field=field)
    return row


@contextmanager
def _pair(
    pipeline: Pipeline, first: int, second: int, field: str
) -> Iterator[tuple[UnitOfWork, dict[int, IncidentRow]]]:
    """A transaction holding the locks of the online attach for both incidents' services,
    and both incidents' rows (locked in id order, so two opposite operations cannot
    deadlock), by id."""
    codes = _services(pipeline, (first, second), field)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.lock(pipeline.policy.lock_keys(codes))
        yield uow, {i: _locked(uow, i, field) for i in sorted((first, second))}


def _not_merged(row: IncidentRow, field: str) -> None:
    """Refuse an incident already merged away, naming where it went."""
    if row["status"] == Status.DUPLICATE.value:
        raise Conflict(
            f"{field}: incident {row['id']} was merged into incident "
            f"{row['merged_into']}; use that one",
            field=field,
        )


def _report_events(
    uow: UnitOfWork,
    jurisdiction: str,
    report_ids: np.ndarray,
    kind: EventKind,
    actor: str,
    reason: str,
    at: datetime,
) -> None:
    """One event per report, written in one insert."""
    uow.tables.insert(
        "events",
        pd.DataFrame(
            {
                "id": uow.tables.reserve_ids("events", len(report_ids)),
                "jurisdiction_id": jurisdiction,
                "entity": "report",
                "entity_id": report_ids,
                "kind": kind.value,
                "actor": actor,
                "reason": reason,
                "at": pd.Timestamp(at),
            }
        ),
    )


def _openers(pipeline: Pipeline, members: pd.DataFrame) -> pd.DataFrame:
    """Stored reports (``MEMBER_COLUMNS``) as the enriched rows that open an incident,
    like those of an import batch: zones, flags and segment come from the city's layers."""
    base = members[["report_id", "service_code", "lon", "lat", "address", "requested_at"]]
    enriched = pipeline.gis.enrich(
        base["lon"].to_numpy(float), base["lat"].to_numpy(float), base["address"].to_numpy(object)
    )
    rows = pd.concat(
        [base.rename(columns={"report_id": "id"}).reset_index(drop=True), enriched], axis=1
    )
    pipeline.policy.set_thresholds(rows)
    return rows


def merge(
    pipeline: Pipeline,
    survivor_id: int,
    merged_id: int,
    actor: str,
    reason: str,
    *,
    at: datetime | None = None,
) -> Merged:
    """Merge incident ``merged_id`` into ``survivor_id``.

    Its reports, supporters and followers move to the survivor (someone supporting both
    counts once); the survivor's counts and first/last report times are updated; the
    merged incident becomes ``duplicate`` with ``merged_into`` = the survivor, and
    incidents merged into it earlier now point at the survivor. Pairs staff marked not
    duplicates are refused; the merged incident's own marks carry over to the survivor.
    """
    if survivor_id == merged_id:
        raise InvalidInput("into: an incident cannot be merged into itself", field="into")
    actor, note = _words(actor, "actor"), _words(reason, "reason")
    now = at or datetime.now(UTC)
    jurisdiction = pipeline.city.jurisdiction_id
    with _pair(pipeline, survivor_id, merged_id, "incident_id") as (uow, rows):
        survivor, merged = rows[survivor_id], rows[merged_id]
        _not_merged(merged, "incident_id")
        _not_merged(survivor, "into")
        marks = uow.links.not_duplicates([merged_id])
        pairs = set(zip(marks["incident_a"], marks["incident_b"], strict=True))
        if tuple(sorted((survivor_id, merged_id))) in pairs:
            raise Conflict(
                f"into: incidents {survivor_id} and {merged_id} were marked not duplicates",
                field="into",
            )
        members = uow.links.members([merged_id])
        uow.links.relink(
            pd.DataFrame(
                {
                    "report_id": members["report_id"],
                    "incident_id": survivor_id,
                    "score": STAFF_SCORE,
                    "reason": f"{STAFF_LINK}{merged_id}",  # public: who and why stay in the events
                    "linked_at": pd.Timestamp(now),
                }
            )
        )
        supporters = uow.incidents.absorb(merged_id, survivor_id)
        for a, b in pairs:
            other = b if a == merged_id else a
            uow.links.mark_not_duplicates(
                survivor_id,
                int(other),
                actor,
                f"carried over from incident {merged_id} (merged into {survivor_id})",
                now,
            )
        count = survivor["report_count"] + len(members)
        uow.incidents.update(
            survivor_id,
            {
                "report_count": count,
                "first_reported_at": min(
                    survivor["first_reported_at"], merged["first_reported_at"]
                ),
                "last_reported_at": max(survivor["last_reported_at"], merged["last_reported_at"]),
                "updated_at": now,
            },
        )
        uow.incidents.update(
            merged_id,
            {
                "status": Status.DUPLICATE.value,
                "merged_into": survivor_id,
                "report_count": 0,
                "updated_at": now,
            },
        )
        uow.events.append(
            "incident",
            survivor_id,
            EventKind.MERGED,
            actor,
            f"absorbed incident {merged_id} ({len(members)} reports): {note}",
            at=now,
        )
        uow.events.append(
            "incident",
            merged_id,
            EventKind.MERGED,
            actor,
            f"merged into incident {survivor_id}: {note}",
            at=now,
        )
        _report_events(
            uow,
            jurisdiction,
            members["report_id"].to_numpy(np.int64),
            EventKind.MERGED,
            actor,
            f"incident {merged_id} merged into incident {survivor_id}: {note}",
            now,
        )
    return Merged(survivor_id, merged_id, len(members), count, supporters)


def split(
    pipeline: Pipeline, report_id: int, actor: str, reason: str, *, at: datetime | None = None
) -> int:
    """Take a report out of its incident into a new incident, routed like any new one;
    return the new incident's id.

    The old incident keeps its other reports (a new first report and place if the split
    one had opened it) and the two are remembered as not duplicates. A report alone in
    its incident cannot be split.
    """
    actor, note = _words(actor, "actor"), _words(reason, "reason")
    found = pipeline.reads.reports(Selection(ids=(report_id,)))
    if found.empty:
        raise NotFound(f"report_id: report {report_id} does not exist", field="report_id")
    report = found.iloc[0]
    old_id = int(report["incident_id"])
    now = at or datetime.now(UTC)
    jurisdiction = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(jurisdiction) as uow:
        uow.lock(pipeline.policy.lock_keys([str(report["service_code"])]))
        old = _locked(uow, old_id, "report_id")
        members = uow.links.members([old_id])
        if report_id not in set(members["report_id"]):
            raise Conflict(
                f"report_id: report {report_id} moved to another incident meanwhile; retry",
                field="report_id",
            )
        if len(members) == 1:
            raise Conflict(
                f"report_id: report {report_id} is the only report of incident {old_id}; "
                "there is nothing to split it from",
                field="report_id",
            )
        (new_id,) = uow.tables.reserve_ids("incidents", 1)
        opener = _openers(pipeline, members[members["report_id"] == report_id])
        routed = pipeline.writer.open_incidents(
            uow,
            opener,
            np.array([new_id]),
            np.array([1]),
            opener["requested_at"].to_numpy(),
            pd.Timestamp(now),
        )
        uow.links.relink(
            pd.DataFrame(
                {
                    "report_id": [report_id],
                    "incident_id": int(new_id),
                    "score": STAFF_SCORE,
                    "reason": f"split out of incident {old_id}",  # public; who and why: events
                    "linked_at": pd.Timestamp(now),
                }
            )
        )
        rest = members[members["report_id"] != report_id]
        changes: dict[str, object] = {
            "report_count": old["report_count"] - 1,
            "first_reported_at": rest["requested_at"].min(),
            "last_reported_at": rest["requested_at"].max(),
            "updated_at": now,
        }
        if old["origin_report_id"] == report_id:
            first = rest.iloc[0]
            changes |= {
                "origin_report_id": int(first["report_id"]),
                "lon": float(first["lon"]),
                "lat": float(first["lat"]),
                "segment_id": first["segment_id"],
                "street_name": first["street_name"],
            }
        uow.incidents.update(old_id, changes)
        if "origin_report_id" in changes:
            uow.incidents.zones_from_origin([old_id])  # its zones follow its new place
        uow.links.mark_not_duplicates(old_id, int(new_id), actor, f"split: {note}", now)
        uow.events.append(
            "report",
            report_id,
            EventKind.SPLIT,
            actor,
            f"split out of incident {old_id} into incident {new_id}: {note}",
            at=now,
        )
        uow.events.append(
            "incident",
            old_id,
            EventKind.SPLIT,
            actor,
            f"report {report_id} split out into incident {new_id}: {note}",
            at=now,
        )
        uow.events.append(
            "incident",
            int(new_id),
            EventKind.ROUTED,
            actor,
            str(routed["routing_reason"].iloc[0]),
            at=now,
        )
    return int(new_id)


def not_duplicates(
    pipeline: Pipeline,
    a_id: int,
    b_id: int,
    actor: str,
    reason: str,
    *,
    at: datetime | None = None,
) -> bool:
    """Remember that two incidents are not duplicates, so re-clustering never merges them;
    False (and no event) when they were already marked."""
    if a_id == b_id:
        raise InvalidInput("other: an incident is always a duplicate of itself", field="other")
    actor, note = _words(actor, "actor"), _words(reason, "reason")
    now = at or datetime.now(UTC)
    with _pair(pipeline, a_id, b_id, "other") as (uow, rows):
        for incident_id, row in rows.items():
            _not_merged(row, "incident_id" if incident_id == a_id else "other")
        if not uow.links.mark_not_duplicates(a_id, b_id, actor, note, now):
            return False
        for one, other in ((a_id, b_id), (b_id, a_id)):
            uow.events.append(
                "incident",
                one,
                EventKind.NOT_DUPLICATE,
                actor,
                f"not a duplicate of incident {other}: {note}",
                at=now,
            )
    return True


def survivor(pipeline: Pipeline, incident_id: int) -> int:
    """The incident that answers for ``incident_id``: itself, or the incident it was merged
    into (pointers are kept one hop long by ``merge`` and ``recluster``)."""
    rows = pipeline.store.lookup("incidents", pipeline.city.jurisdiction_id, "id", [incident_id])
    if rows.empty:
        raise NotFound(f"incident_id: incident {incident_id} does not exist", field="incident_id")
    target = rows["merged_into"].dropna()
    return int(target.iloc[0]) if len(target) else incident_id


@dataclass(frozen=True)
class Reclustered:
    """What a re-clustering changed."""

    reports: int
    """Reports of open incidents, re-clustered."""
    incidents_before: int
    incidents_after: int
    merged: int
    """Incidents merged away into another (status ``duplicate``)."""
    opened: int
    """New incidents, for reports split off an incident."""
    moved: int
    """Reports now in another incident."""


def _apart(incident_of: np.ndarray, pairs: pd.DataFrame) -> dict[int, frozenset[tuple[int, int]]]:
    """Marks for ``dedupe.attach``: the reports of each not-duplicate pair's two incidents
    are its two sides."""
    n = len(pairs)
    sides = pd.DataFrame(
        {
            "incident_id": np.concatenate([pairs["incident_a"], pairs["incident_b"]]),
            "mark": list(zip(np.tile(np.arange(n), 2).tolist(), [0] * n + [1] * n, strict=True)),
        }
    )
    held = pd.DataFrame(
        {"incident_id": incident_of, "position": np.arange(len(incident_of))}
    ).merge(sides, on="incident_id")
    marks = held.groupby("position")["mark"].agg(frozenset)
    return dict(zip(marks.index.astype(int).tolist(), marks.tolist(), strict=True))


def _keep_staff_merges(members: pd.DataFrame, leader: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Leaders after putting back together what staff merged: the reports of an incident
    holding a staff-made link stay in one incident, whatever the thresholds say (a
    person's decision outranks them, as a "not duplicates" mark does). Each such group of
    clusters is led by its earliest report."""
    staff = members["reason"].astype(str).str.startswith(STAFF_LINK).to_numpy(bool) & (
        members["score"].to_numpy(float) == STAFF_SCORE
    )
    pinned = np.unique(old[staff])
    if not len(pinned):
        return leader
    when = members["requested_at"].to_numpy("datetime64[ns]")
    clusters, position = np.unique(leader, return_inverse=True)
    root = {int(x): int(x) for x in clusters}

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    # The reports of the pinned incidents, grouped by incident (one pass, not one per incident).
    rows = np.flatnonzero(np.isin(old, pinned))
    rows = rows[np.argsort(old[rows], kind="stable")]
    for group in np.split(rows, np.flatnonzero(np.diff(old[rows])) + 1):
        heads = sorted({find(int(x)) for x in leader[group]}, key=lambda x: (when[x], x))
        for head in heads[1:]:
            root[head] = heads[0]
    # One look-up per cluster, spread to its reports.
    return np.array([find(int(x)) for x in clusters], dtype=np.int64)[position.reshape(-1)]


def recluster(
    pipeline: Pipeline,
    actor: str = SYSTEM_ACTOR,
    reason: str = "re-clustered with the thresholds of city.yaml",
    *,
    at: datetime | None = None,
) -> Reclustered:
    """Recompute the incidents of every report of an open incident with the current
    thresholds, as the online path would have built them (time order), never putting
    together incidents marked not duplicates nor taking apart what staff merged; in one
    transaction with its events.

    Each new cluster keeps the incident of its first report when no earlier cluster took
    it (ids stay stable); a cluster whose incident was taken opens a new incident, routed
    (a split); an open incident left without a cluster is merged into the cluster of its
    first report, as a staff merge would (supporters and followers move, it points there).
    """
    now = at or datetime.now(UTC)
    jurisdiction = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(jurisdiction) as uow:
        uow.lock(pipeline.policy.lock_keys(pipeline.city.services))
        members = uow.links.members(None)
        old = members["incident_id"].to_numpy(np.int64)
        pairs = uow.links.not_duplicates(np.unique(old).tolist())
        pipeline.policy.set_thresholds(members)
        members["x"], members["y"] = pipeline.gis.project(
            members["lon"].to_numpy(float), members["lat"].to_numpy(float)
        )
        links = dedupe.cluster(members, pipeline.city.config.dedupe, _apart(old, pairs))
        leader = _keep_staff_merges(members, links["leader"].to_numpy(np.int64), old)
        staff = leader != links["leader"].to_numpy(np.int64)
        # Leaders in time order: the first cluster of an old incident keeps its id.
        leaders = np.unique(leader)
        keeps = ~pd.Series(old[leaders]).duplicated().to_numpy()
        new_ids = uow.tables.reserve_ids("incidents", int((~keeps).sum()))
        cluster_id = pd.Series(old[leaders], index=leaders)
        cluster_id[leaders[~keeps]] = new_ids
        incident = cluster_id.reindex(leader).to_numpy(np.int64)
        gone = np.setdiff1d(np.unique(old), incident)
        firsts = pd.Series(incident, index=old)
        into = firsts[~firsts.index.duplicated()].reindex(gone).to_numpy(np.int64)

        counts = pd.Series(incident).value_counts()
        last = members["requested_at"].groupby(incident).max()
        heads = members.iloc[leaders]
        if len(new_ids):
            opener = _openers(pipeline, heads[~keeps])
            routed = pipeline.writer.open_incidents(
                uow,
                opener,
                new_ids,
                counts.reindex(new_ids).to_numpy(),
                last.reindex(new_ids).to_numpy(),
                pd.Timestamp(now),
            )
        kept = heads[keeps]
        kept_ids = old[leaders[keeps]]
        uow.incidents.reshape(
            pd.concat(
                [
                    pd.DataFrame(
                        {
                            "id": kept_ids,
                            "origin_report_id": kept["report_id"].to_numpy(),
                            "lon": kept["lon"].to_numpy(),
                            "lat": kept["lat"].to_numpy(),
                            "segment_id": kept["segment_id"].to_numpy(),
                            "street_name": kept["street_name"].to_numpy(),
                            "report_count": counts.reindex(kept_ids).to_numpy(),
                            "first_reported_at": kept["requested_at"].to_numpy(),
                            "last_reported_at": last.reindex(kept_ids).to_numpy(),
                            "status": None,
                            "merged_into": None,
                            "updated_at": pd.Timestamp(now),
                        }
                    ),
                    pd.DataFrame(
                        {
                            "id": gone,
                            "origin_report_id": None,
                            "lon": np.nan,
                            "lat": np.nan,
                            "segment_id": None,
                            "street_name": None,
                            "report_count": 0,
                            "first_reported_at": pd.NaT,
                            "last_reported_at": pd.NaT,
                            "status": Status.DUPLICATE.value,
                            "merged_into": into,
                            "updated_at": pd.Timestamp(now),
                        }
                    ),
                ],
                ignore_index=True,
            )
        )
        words = dedupe.reasons(links)
        scores = links["score"].to_numpy(float, copy=True)
        # Reports held with their incident by a staff merge keep the merge's link.
        words[staff] = members["reason"].to_numpy(object)[staff]
        scores[staff] = members["score"].to_numpy(float)[staff]
        uow.links.relink(
            pd.DataFrame(
                {
                    "report_id": members["report_id"],
                    "incident_id": incident,
                    "score": scores,
                    "reason": words,
                    "linked_at": pd.Timestamp(now),
                }
            )
        )
        # Rare (one per merged incident and per mark): supporters, followers, marks move.
        for source, target in zip(gone.tolist(), into.tolist(), strict=True):
            uow.incidents.absorb(source, target)
        for a, b in zip(pairs["incident_a"], pairs["incident_b"], strict=True):
            if a in gone or b in gone:
                side_a, side_b = (into[gone == x][0] if x in gone else x for x in (a, b))
                uow.links.mark_not_duplicates(
                    int(side_a), int(side_b), actor, f"carried over from {a}/{b}", now
                )
        moved = incident != old
        history = [
            pd.DataFrame(
                {
                    "entity": "report",
                    "entity_id": members["report_id"][moved],
                    "kind": EventKind.ATTACHED.value,
                    "reason": "incident "
                    + pd.Series(incident[moved]).astype(str).to_numpy(object)
                    + ": "
                    + words[moved]
                    + f" ({reason})",
                }
            ),
            pd.DataFrame(
                {
                    "entity": "incident",
                    "entity_id": gone,
                    "kind": EventKind.MERGED.value,
                    "reason": [f"merged into incident {t}: {reason}" for t in into],
                }
            ),
            pd.DataFrame(
                {
                    "entity": "incident",
                    "entity_id": into,
                    "kind": EventKind.MERGED.value,
                    "reason": [f"absorbed incident {g}: {reason}" for g in gone],
                }
            ),
            pd.DataFrame(
                {
                    "entity": "incident",
                    "entity_id": old[leaders[~keeps]],
                    "kind": EventKind.SPLIT.value,
                    "reason": [f"reports split out into incident {n}: {reason}" for n in new_ids],
                }
            ),
        ]
        if len(new_ids):
            history.append(
                pd.DataFrame(
                    {
                        "entity": "incident",
                        "entity_id": new_ids,
                        "kind": EventKind.ROUTED.value,
                        "reason": routed["routing_reason"].to_numpy(),
                    }
                )
            )
        rows = pd.concat(history, ignore_index=True)
        rows["id"] = uow.tables.reserve_ids("events", len(rows))
        rows["jurisdiction_id"], rows["actor"], rows["at"] = jurisdiction, actor, pd.Timestamp(now)
        uow.tables.insert("events", rows)
    return Reclustered(
        reports=len(members),
        incidents_before=len(np.unique(old)),
        incidents_after=len(leaders),
        merged=len(gone),
        opened=len(new_ids),
        moved=int(moved.sum()),
    )
