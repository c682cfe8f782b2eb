"""Street-scale deduplication on out-of-time folds: the Chicago day split at noon.

The street radius of the street-scale services (``dedupe.street_scale`` in
``cities/chicago/city.yaml``) is chosen on one fold and measured on the other, never on
the data it is measured on. A fold is scored on the reports that arrive in it, replayed in
time order through the real import (the afternoon with the morning stored before it, as
the city's own history): the labelled (child, parent) pairs whose child arrives in the
fold, and the merges its reports make (a report joining an incident), with those that no
label supports (a precision proxy: staff do not label every repeat).

Two settings are chosen together: the street radius, and the city's
``same_street_factor`` (the longer reach of every service on one street, which applies
to Chicago now that a report's street comes from its address). The choice on the training
fold: the highest labelled-pair recall, then the fewest merges no label supports, then the
smallest factor and radius. "off" is no street-scale service; "before" is the city as it
was before issue 18, with no street known for any report. Usage::

    python bench/dedupe_eval.py --folds      # or python bench/dedupe_folds.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedupe_eval import CHICAGO_CSV, ROOT, _import, _label_scores, to_open311

# Candidate street radii (metres; None switches street scale off) and street factors.
RADII: tuple[float | None, ...] = (None, 100.0, 150.0, 200.0, 250.0, 300.0)
FACTORS = (1.0, 1.5, 2.0)
Setting = tuple[float, float | None]
NOON = 12
# The setting before issue 18: no street known for any report (addresses left out of the
# import, so neither the address street nor street scale applies).
BEFORE = "before"


@dataclass(frozen=True)
class Score:
    """What one fold's arrivals did, for one setting."""

    pairs: int
    recall: int
    street_pairs: int
    street_recall: int
    merges: int
    unsupported: int
    street_merges: int
    street_unsupported: int

    def row(self) -> str:
        """The score as a Markdown table's cells."""
        return (
            f"{_share(self.street_recall, self.street_pairs)} | "
            f"{_share(self.recall, self.pairs)} | {self.merges} | {self.unsupported} | "
            f"{self.street_merges} | {self.street_unsupported}"
        )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part}/{whole})" if whole else "– (0/0)"


def configured(city: City, factor: float, radius: float | None) -> City:
    """The city with this ``same_street_factor`` and every street-scale rule's street
    radius set to ``radius``, or with street scale switched off (``None``)."""

    def rule(dedupe: object) -> object:
        if dedupe is None or not getattr(dedupe, "street_scale", False):
            return dedupe
        update = (
            {"street_radius_m": radius}
            if radius is not None
            else {"street_scale": False, "street_radius_m": None}
        )
        return dedupe.model_copy(update=update)  # type: ignore[attr-defined]

    config = city.config.model_copy(
        update={
            "dedupe": city.config.dedupe.model_copy(update={"same_street_factor": factor}),
            "groups": [g.model_copy(update={"dedupe": rule(g.dedupe)}) for g in city.config.groups],
            "services": [
                s.model_copy(update={"dedupe": rule(s.dedupe)}) for s in city.config.services
            ],
        }
    )
    return City(city.folder, config)


def _street_codes(city: City) -> set[str]:
    """The services city.yaml declares street-scale."""
    return {code for code in city.services if city.dedupe(code).street_scale}


def _merges(
    layer: pd.DataFrame, pairs: list[tuple[str, str]], before: pd.Series
) -> tuple[int, int]:
    """(merges, unsupported) the reports not in ``before`` added to their incidents."""
    incident = layer["incident_id"].to_numpy()
    _, _, merges, unsupported = _label_scores(layer["external_id"], incident, pairs)
    old = layer["external_id"].isin(before).to_numpy()
    _, _, merges0, unsupported0 = _label_scores(layer["external_id"][old], incident[old], pairs)
    return merges - merges0, unsupported - unsupported0


def score(
    city: City,
    gis: CityGIS,
    raw: pd.DataFrame,
    fold: pd.Series,
    street: set[str],
    folder: Path,
    addresses: bool = True,
) -> Score:
    """Import every row up to the fold's end (without their addresses unless
    ``addresses``) and score the fold's arrivals."""
    history = raw[raw["created_date"] <= raw.loc[fold, "created_date"].max()]
    requests = to_open311(history)
    for request in requests:
        request["address"] = request["address"] if addresses else None
    path = folder / "fold.json"
    path.write_text(json.dumps(requests), encoding="utf-8")
    for old in folder.glob("*.gpkg"):
        old.unlink()
    _, layer = _import(city, gis, path, "open311", folder)
    arrivals = set(raw.loc[fold, "sr_number"])
    known = set(layer["external_id"])
    labelled = raw[(raw["duplicate"] == "True") & raw["sr_number"].isin(arrivals)]
    pairs = [
        (c, p)
        for c, p in zip(labelled["sr_number"], labelled["parent_sr_number"], strict=True)
        if c in known and p in known
    ]
    code_of = dict(zip(raw["sr_number"], raw["sr_short_code"], strict=True))
    street_pairs = [(c, p) for c, p in pairs if code_of[c] in street]
    of = dict(zip(layer["external_id"], layer["incident_id"], strict=True))
    before = layer.loc[~layer["external_id"].isin(arrivals), "external_id"]
    merges, unsupported = _merges(layer, pairs, before)
    on_street = layer["service_code"].isin(street).to_numpy()
    street_merges, street_unsupported = _merges(layer[on_street], pairs, before)
    return Score(
        len(pairs),
        sum(of[c] == of[p] for c, p in pairs),
        len(street_pairs),
        sum(of[c] == of[p] for c, p in street_pairs),
        merges,
        unsupported,
        street_merges,
        street_unsupported,
    )


def choose(scores: dict[Setting, Score]) -> Setting:
    """The training fold's choice: labelled-pair recall, then the fewest unsupported
    merges, then the smallest factor and radius (off first)."""
    ranked = sorted(
        scores.items(),
        key=lambda item: (
            -item[1].recall,
            item[1].unsupported,
            item[0][0],
            -1.0 if item[0][1] is None else item[0][1],
        ),
    )
    return ranked[0][0]


def _name(setting: Setting) -> str:
    factor, radius = setting
    return f"{factor:g} | " + ("off" if radius is None else f"{radius:g} m")


def folds() -> None:
    """Choose on each half of the day, measure on the other; print Markdown tables."""
    raw = pd.read_csv(CHICAGO_CSV, dtype=str).sort_values("created_date", kind="stable")
    hour = pd.to_datetime(raw["created_date"], format="ISO8601").dt.hour
    halves = {"morning": hour < NOON, "afternoon": hour >= NOON}
    shipped = load_city(ROOT / "cities/chicago")
    gis = CityGIS(shipped)
    street = _street_codes(shipped)
    print(f"street-scale services (cities/chicago/city.yaml): {', '.join(sorted(street))}")
    table: dict[str, dict[Setting, Score]] = {}
    before: dict[str, Score] = {}
    shipped_factor = shipped.config.dedupe.same_street_factor
    with tempfile.TemporaryDirectory() as tmp:
        for name, fold in halves.items():
            off = configured(shipped, shipped_factor, None)
            before[name] = score(off, gis, raw, fold, street, Path(tmp), addresses=False)
            table[name] = {
                (factor, radius): score(
                    configured(shipped, factor, radius), gis, raw, fold, street, Path(tmp)
                )
                for factor in FACTORS
                for radius in RADII
            }
    columns = (
        "street factor | street radius | street-scale recall | recall | merges | unsupported | "
        "street-scale merges | unsupported"
    )
    print(f"\nfold | {columns}\n" + "|".join(["---"] * 9))
    for name, scores in table.items():
        print(f"{name} | {BEFORE} | – | {before[name].row()}")
        for setting, result in scores.items():
            print(f"{name} | {_name(setting)} | {result.row()}")
    print(f"\nchosen on | measured on | {columns}\n" + "|".join(["---"] * 10))
    for train, test in (("morning", "afternoon"), ("afternoon", "morning")):
        chosen = choose(table[train])
        print(f"{train} | {test} | {BEFORE} | – | {before[test].row()}")
        print(f"{train} | {test} | {_name(chosen)} | {table[test][chosen].row()}")


if __name__ == "__main__":
    folds()
