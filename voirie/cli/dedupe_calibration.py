"""Calibrating a city's duplicate scores on its labelled history, judged walk-forward.

What ``voirie dedupe calibrate`` runs (and ``bench/dedupe_calibration.py`` on the Chicago
day). The history is imported once through the real pipeline into a throwaway store, with
the city's scoring but no calibration (the current rule): every report gets its service,
street and place as an import gives them. Its candidate pairs are those ``dedupe.pairs``
lists (a report and an earlier one the rule lets it join); a pair is a labelled duplicate
when staff put both reports in one chain of (child, parent) labels (two children of one
older parent are one problem, even when the parent is not in the file).

Walk-forward folds: the history's time span cut into equal periods; each period after the
first is a fold, measured with what was learned on everything before it (never on itself):

- the calibration (``gis/dedupe_score.fit``) learned on the past's pairs, its forecasts on
  the fold's: Brier score against the raw score read as a probability, the current rule's
  0/1 (both reports in one incident) and the past's overall share; the forecasts of every
  fold pooled into one reliability table;
- the merge threshold (a likelihood) chosen on the past by replaying ``dedupe.cluster``
  (what an import runs) over the past's reports: the highest labelled-pair recall, then
  the fewest merges no label supports, then the lowest threshold; measured on the fold's
  arrivals (replayed after the past) next to the current rule (threshold 0).

The calibration to keep is then learned the same way on the whole history, its threshold
chosen by the same criterion. "Labelled" is a lower bound of "true duplicate": staff do not
mark every repeat, so a merge no label supports is counted, not called wrong.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from voirie.city import City, DedupeCalibration, load_city
from voirie.errors import InvalidInput
from voirie.gis import dedupe, dedupe_score
from voirie.gis.dedupe_policy import DedupePolicy
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import RawTable
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

LABEL_COLUMNS = ("child", "parent")
Knots = tuple[list[float], list[float]]


def read_labels(path: Path, columns: tuple[str, str] = LABEL_COLUMNS) -> list[tuple[str, str]]:
    """(child, parent) external ids from a CSV (gzipped or not): the later report a staff
    member marked as a duplicate and the one it repeats, in ``columns``. A row without a
    parent is no label (a source's export lists every report, its duplicates with their
    parent: Chicago 311's ``sr_number``, ``parent_sr_number``)."""
    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        message = f"--labels: cannot read {path.name} as CSV ({exc})"
        raise InvalidInput(message, field="labels") from exc
    missing = [c for c in columns if c not in labels.columns]
    if missing:
        raise InvalidInput(
            f"--labels: {path.name} has no column {', '.join(missing)} (--label-columns names "
            "the columns of a duplicate's external id and of the report it repeats)",
            field="labels",
        )
    pairs = labels[list(columns)].apply(lambda c: c.str.strip())
    child, parent = pairs[columns[0]], pairs[columns[1]]
    orphan = pairs[(child == "") & (parent != "")]
    if len(orphan):
        raise InvalidInput(
            f"--labels: row {int(orphan.index[0]) + 2} of {path.name} has a parent but no "
            f"{columns[0]}",
            field="labels",
        )
    kept = parent != ""
    return list(zip(child[kept], parent[kept], strict=True))


def _chains(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The root of each labelled report's chain of (child, parent) labels."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for child, up in edges:
        parent[find(child)] = find(up)
    return {node: find(node) for node in parent}


def uncalibrated(city: City) -> City:
    """The city with its scoring but no calibration: the current rule."""
    scoring = city.config.dedupe.model_copy(update={"calibration": None})
    return City(city.folder, city.config.model_copy(update={"dedupe": scoring}))


def calibrated(city: City, knots: Knots, threshold: float, learned_on: str) -> City:
    """The city with this calibration and threshold."""
    calibration = DedupeCalibration(
        scores=knots[0], likelihoods=knots[1], threshold=threshold, learned_on=learned_on
    )
    scoring = city.config.dedupe.model_copy(update={"calibration": calibration})
    return City(city.folder, city.config.model_copy(update={"dedupe": scoring}))


@dataclass(frozen=True)
class History:
    """A city's imported reports (``reports``: a batch ``dedupe`` reads, in arrival order,
    with ``external_id`` and the current rule's ``incident_id``), its candidate pairs
    (``report``, ``earlier`` positions, ``score``, ``label`` 1 for one labelled chain,
    ``joined`` 1 when the current rule put both in one incident, ``at``: the later
    report's time) and its labelled (child, parent) pairs with both reports in the file."""

    reports: pd.DataFrame
    pairs: pd.DataFrame
    labelled: list[tuple[str, str]]


def labelled_history(
    city: City, table: RawTable, mapping: ColumnMapping, edges: list[tuple[str, str]]
) -> History:
    """Import the reports through the real pipeline (the current rule, into a throwaway
    store) and list their candidate pairs with their labels."""
    plain = uncalibrated(city)
    gis = CityGIS(plain)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "history.gpkg")
        store.upgrade()
        try:
            pipeline = Pipeline(plain, store, gis)
            pipeline.imports.import_table(table, mapping)
            layer = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
        finally:
            store.close()
    if layer.empty:
        raise InvalidInput("--reports: no report of the file could be imported", field="reports")
    layer = layer.sort_values(["requested_at", "report_id"], ignore_index=True)
    layer["x"], layer["y"] = gis.project(layer["lon"].to_numpy(float), layer["lat"].to_numpy(float))
    DedupePolicy(plain).set_thresholds(layer)
    ids = layer["external_id"].astype(str).to_numpy(object)
    known = set(ids)
    labelled = [(c, p) for c, p in edges if c in known and p in known]
    children = sum(c in known for c, _ in edges)
    if not children:
        raise InvalidInput(
            "--labels: none of its children is a report of --reports (labels name reports by "
            "the source's external id, e.g. Open311 service_request_id)",
            field="labels",
        )
    pairs = dedupe.pairs(layer, plain.config.dedupe)
    root = _chains(edges)
    a = [root.get(v) for v in ids[pairs["report"]]]
    b = [root.get(v) for v in ids[pairs["earlier"]]]
    pairs["label"] = [int(x is not None and x == y) for x, y in zip(a, b, strict=True)]
    incident = layer["incident_id"].to_numpy()
    pairs["joined"] = (incident[pairs["report"]] == incident[pairs["earlier"]]).astype(int)
    pairs["at"] = layer["requested_at"].to_numpy()[pairs["report"]]
    if not pairs["label"].any():
        raise InvalidInput(
            "--labels: no candidate pair of the reports is labelled a duplicate; a calibration "
            "needs some",
            field="labels",
        )
    return History(layer, pairs, labelled)


@dataclass(frozen=True)
class Decisions:
    """What one threshold did to the arrivals of a period: labelled pairs (child arriving
    in it) and those in one incident; merges its reports made and those no label supports."""

    pairs: int
    joined: int
    merges: int
    unsupported: int

    def recall(self) -> str:
        """Labelled-pair recall as text, with its counts."""
        return f"{self.joined / self.pairs:.1%} ({self.joined}/{self.pairs})" if self.pairs else "–"


def label_components(members: list[str], edges: set[frozenset[str]]) -> int:
    """Connected components of the label graph restricted to one incident's members: one
    more than the merges of its members that no chain of labels among them supports."""
    parent = {m: m for m in members}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for edge in edges:
        a, b = tuple(edge)
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    return len({find(m) for m in members})


def _merges(ids: pd.Series, incident: np.ndarray, pairs: list[tuple[str, str]]) -> tuple[int, int]:
    """(merges, merges no label supports) of reports grouped by ``incident``."""
    edges = {frozenset(pair) for pair in pairs}
    merges = unsupported = 0
    for _, members in pd.Series(list(ids)).groupby(incident):
        if len(members) > 1:
            merges += len(members) - 1
            unsupported += label_components(list(members), edges) - 1
    return merges, unsupported


def decisions(
    city: City,
    hist: History,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    threshold: float,
    knots: Knots,
) -> Decisions:
    """Replay ``dedupe.cluster`` over the reports before ``end`` (None: all) with the
    calibration and threshold; score the arrivals from ``start`` (None: all)."""
    scoring = calibrated(city, knots, threshold, "replay").config.dedupe
    times = hist.reports["requested_at"]
    upto = hist.reports[times < end if end is not None else times.notna()]
    upto = upto.reset_index(drop=True)
    links = dedupe.cluster(upto, scoring)
    ids, incident = upto["external_id"].astype(str), links["leader"].to_numpy()
    arriving = (upto["requested_at"] >= start) if start is not None else ids.notna()
    arrivals, present = set(ids[arriving]), set(ids)
    pairs = [(c, p) for c, p in hist.labelled if c in arrivals and p in present]
    of = dict(zip(ids, incident, strict=True))
    merges, unsupported = _merges(ids, incident, pairs)
    old = ~arriving.to_numpy()
    merges0, unsupported0 = _merges(ids[old], incident[old], pairs)
    joined = int(sum(of[c] == of[p] for c, p in pairs))
    return Decisions(len(pairs), joined, merges - merges0, unsupported - unsupported0)


def choose_threshold(city: City, hist: History, end: pd.Timestamp | None, knots: Knots) -> float:
    """The past's choice (reports before ``end``): the highest labelled-pair recall, then
    the fewest unsupported merges, then the lowest threshold, among 0 and the likelihood
    levels of the calibration."""
    levels = sorted({0.0, *knots[1]})
    scored = [(t, decisions(city, hist, None, end, t, knots)) for t in levels]
    return min(scored, key=lambda ts: (-ts[1].joined, ts[1].unsupported, ts[0]))[0]


@dataclass(frozen=True)
class Fold:
    """One period measured with what was learned before it."""

    start: pd.Timestamp
    end: pd.Timestamp
    past_pairs: int
    past_labelled: int
    pairs: int
    labelled: int
    brier: dict[str, float]  # calibrated, raw score, current rule, past share
    threshold: float
    chosen: Decisions
    rule: Decisions


@dataclass(frozen=True)
class Calibration:
    """The folds, the pooled reliability table, and the calibration learned on the whole
    history with its threshold and what that threshold does on the whole history."""

    folds: list[Fold]
    reliability: pd.DataFrame  # per likelihood bin: pairs, forecast, observed, joined
    knots: Knots
    threshold: float
    whole: Decisions

    def section(self, learned_on: str) -> DedupeCalibration:
        """The ``dedupe.calibration`` section of city.yaml."""
        return DedupeCalibration(
            scores=self.knots[0],
            likelihoods=self.knots[1],
            threshold=self.threshold,
            learned_on=learned_on,
        )


def fold_bounds(hist: History, folds: int) -> list[pd.Timestamp]:
    """Boundaries of ``folds`` equal periods of the history's time span (the last one just
    after the last report)."""
    times = hist.reports["requested_at"]
    first, last = times.min(), times.max() + pd.Timedelta(seconds=1)
    return [first + (last - first) * k / folds for k in range(folds + 1)]


def calibrate(
    city: City, hist: History, folds: int = 4, bounds: list[pd.Timestamp] | None = None
) -> Calibration:
    """Walk forward over ``folds`` equal periods, or the periods between ``bounds`` (the
    first period only learned from), then learn on the whole history (see the module
    docstring)."""
    bounds = bounds or fold_bounds(hist, folds)
    pairs = hist.pairs
    measured: list[Fold] = []
    pooled: list[pd.DataFrame] = []
    for start, end in itertools.pairwise(bounds[1:]):
        past = pairs[pairs["at"] < start]
        fold = pairs[(pairs["at"] >= start) & (pairs["at"] < end)]
        if past.empty:
            continue  # nothing to learn from yet
        knots = dedupe_score.fit(past["score"].to_numpy(), past["label"].to_numpy())
        p = dedupe_score.likelihood(*knots, fold["score"].to_numpy())
        y = fold["label"].to_numpy()
        share = float(past["label"].mean())
        brier = (
            {
                "calibrated": dedupe_score.brier(p, y),
                "raw score": dedupe_score.brier(fold["score"].to_numpy(), y),
                "current rule": dedupe_score.brier(fold["joined"].to_numpy(), y),
                "past share": dedupe_score.brier(np.full(len(y), share), y),
            }
            if len(y)
            else {}
        )
        threshold = choose_threshold(city, hist, start, knots)
        measured.append(
            Fold(
                start=start,
                end=end,
                past_pairs=len(past),
                past_labelled=int(past["label"].sum()),
                pairs=len(fold),
                labelled=int(y.sum()),
                brier=brier,
                threshold=threshold,
                chosen=decisions(city, hist, start, end, threshold, knots),
                rule=decisions(city, hist, start, end, 0.0, knots),
            )
        )
        pooled.append(pd.DataFrame({"p": p, "y": y, "joined": fold["joined"].to_numpy()}))
    every = pd.concat(pooled, ignore_index=True) if pooled else pd.DataFrame(columns=["p", "y"])
    table = dedupe_score.reliability(every["p"].to_numpy(float), every["y"].to_numpy(float))
    if len(every):
        bins = pd.cut(every["p"].astype(float), list(dedupe_score.BINS), right=False)
        table["joined"] = every.groupby(bins, observed=False)["joined"].sum().to_numpy()
    else:
        table["joined"] = 0
    knots = dedupe_score.fit(pairs["score"].to_numpy(), pairs["label"].to_numpy())
    threshold = choose_threshold(city, hist, None, knots)
    whole = decisions(city, hist, None, None, threshold, knots)
    return Calibration(measured, table, knots, threshold, whole)


_SECTION = re.compile(r"^dedupe:[ \t]*(#.*)?$", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^[^\s]", re.MULTILINE)
_OLD = re.compile(r"^  calibration:.*\n(?:    .*\n)*", re.MULTILINE)


def _block(calibration: DedupeCalibration) -> str:
    """The ``calibration:`` block under ``dedupe:`` as city.yaml text (lists in flow style)."""
    learned_on = yaml.safe_dump(calibration.learned_on, allow_unicode=True, width=1000)
    learned_on = learned_on.removesuffix("\n...\n").rstrip("\n")
    return (
        "  calibration:\n"
        f"    scores: [{', '.join(f'{s:g}' for s in calibration.scores)}]\n"
        f"    likelihoods: [{', '.join(f'{p:g}' for p in calibration.likelihoods)}]\n"
        f"    threshold: {calibration.threshold:g}\n"
        f"    learned_on: {learned_on}\n"
    )


def write_calibration(city_dir: Path, calibration: DedupeCalibration) -> Path:
    """Put ``calibration`` under ``dedupe:`` in the city's city.yaml, replacing the one
    there, leaving every other line (and comment) as it was; the city must still load."""
    path = city_dir / "city.yaml"
    text = path.read_text(encoding="utf-8")
    block = _block(calibration)
    section = _SECTION.search(text)
    if section is None and re.search(r"^dedupe:", text, re.MULTILINE):
        raise InvalidInput(
            f"{path}: its dedupe section is written on one line; write it as a block "
            "(one key per line) to let the calibration be added",
            field="dedupe",
        )
    if section is None:
        new = text.rstrip("\n") + "\ndedupe:\n" + block
    else:
        body_start = section.end() + 1
        after = _TOP_LEVEL.search(text, body_start)
        body_end = after.start() if after else len(text)
        body = text[body_start:body_end]
        if _OLD.search(body):
            body = _OLD.sub(lambda _: block, body, count=1)
        else:
            kept = body.rstrip("\n")
            body = (kept + "\n" if kept else "") + block + body[len(kept) :].lstrip("\n")
        new = text[:body_start] + body + text[body_end:]
    path.write_text(new, encoding="utf-8")
    try:
        written = load_city(city_dir).config.dedupe.calibration
    except Exception:
        path.write_text(text, encoding="utf-8")  # never leave a city that does not load
        raise
    if written != calibration:
        path.write_text(text, encoding="utf-8")
        raise InvalidInput(f"{path}: the calibration written does not read back", field="city")
    return path
