"""Build ``cities/paris`` from the real open data in ``../shared/data/paris``.

Run once by a maintainer when the source data changes; the output is committed so that
voirie never reads ``../shared`` at run time. Services and groups come from the DansMaRue
``type``/``soustype`` pairs, teams from ``intervenant``, and the routing rules learned from
the 2023-07 … 2024-03 slice (``voirie.services.rules_replay.learn`` with the default
``Learning``, the procedure judged on the walk-forward folds of ``bench/walkforward.py``):
the recency-weighted majority ``intervenant`` of each ``soustype``, and the zone rules
where the place changes it that won on the last months, learned on the months before.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from citygen import DEDUPE_SCORING, write_city_yaml

from voirie.city import group_code_for, load_city, service_code_for
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.rules_replay import learn

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "paris"
OUT = Path(__file__).resolve().parents[1] / "cities" / "paris"

# Deduplication per DansMaRue type: (match, radius m, window days, why), chosen from what
# the problem is and how it is placed, not fitted to the data (docs/deduplication.md).
# ``group`` where the sub-categories are ways of describing one thing in one place (a pile
# of junk is "encombrants" to one, "cartons" to another); ``service`` where they name
# different objects (a pothole and a road sign of the same "voirie" type).
DEDUPE: dict[str, tuple[str, float, float, str]] = {
    "Objets abandonnés": ("group", 30, 3, "one pile, described many ways; collected within days"),
    "Graffitis, tags, affiches et autocollants": (
        "service",
        20,
        14,
        "sub-categories name the surface (wall, shutter, mailbox, sign): different objects, "
        "often different teams; precise in place, stays weeks",
    ),
    "Propreté": ("group", 30, 3, "one soiled spot whatever its kind; cleaned within days"),
    "Autos, motos, vélos, trottinettes...": (
        "group",
        20,
        7,
        "one vehicle, parked badly or a wreck; stays at its kerb for days",
    ),
    "Voirie et espace public": (
        "service",
        25,
        30,
        "different objects (holes, signs, works); stay until repaired",
    ),
    "Mobiliers urbains": (
        "service",
        20,
        30,
        "different objects (bollards, bins, panels); stay until repaired",
    ),
    "Activités commerciales et professionnelles": (
        "service",
        30,
        7,
        "one shop front; distinct complaints (terrace, light, flyers)",
    ),
    "Arbres, végétaux et animaux": (
        "service",
        30,
        14,
        "a tree, weeds or rats are different problems; last weeks",
    ),
    "Éclairage / Électricité": (
        "service",
        50,
        30,
        "a lamp is seen from across the street; a lamp and a cabinet differ",
    ),
    "Eau": ("service", 30, 7, "one hydrant or puddle; distinct equipment per sub-category"),
}

# Extra questions of some services (Open311 service definition attributes), by soustype.
ATTRIBUTES: dict[str, list[dict[str, Any]]] = {
    "Autres objets encombrants abandonnés": [
        {
            "code": "volume",
            "description": "Volume approximatif des objets",
            "datatype": "singlevaluelist",
            "required": True,
            "values": [
                {"key": "petit", "name": "Moins de 1 m³"},
                {"key": "moyen", "name": "De 1 à 3 m³"},
                {"key": "grand", "name": "Plus de 3 m³"},
            ],
        },
        {
            "code": "objets",
            "description": "Nature des objets",
            "datatype": "multivaluelist",
            "values": [
                {"key": "meuble", "name": "Meuble"},
                {"key": "electromenager", "name": "Électroménager"},
                {"key": "matelas", "name": "Matelas"},
                {"key": "autre", "name": "Autre"},
            ],
        },
    ],
    "Graffitis et autocollants sur mur, façade sur rue, pont et descente d'eau pluviale": [
        {"code": "surface_m2", "description": "Surface approximative (m²)", "datatype": "number"},
    ],
}

TEAM_NAMES = {
    "Ramen": "Ramassage des encombrants (Ramen)",
    "graffitis": "Enlèvement des graffitis",
    "DVD": "Direction de la Voirie et des Déplacements",
    "DEVE": "Direction des Espaces Verts et de l'Environnement",
    "DPMP-Divisions": "Police municipale – divisions territoriales",
    "DPE-STPP-DT": "Propreté – divisions territoriales (DPE-STPP)",
}


def build() -> dict[str, Any]:
    """Return the city.yaml document and copy the layers next to it."""
    reports = pd.read_csv(SHARED / "dansmarue_reports_2023-07_2024-03.csv.gz")
    layers = OUT / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / "streets_paris_osm.geojson.gz", layers / "streets.geojson.gz")
    (OUT / "reports").mkdir(exist_ok=True)
    shutil.copyfile(
        SHARED / "dansmarue_reports_2023-07_2024-03.csv.gz",
        OUT / "reports" / "dansmarue_2023-07_2024-03.csv.gz",
    )
    for name in ("arrondissements", "quartiers_administratifs", "espaces_verts"):
        data = (SHARED / f"{name}.geojson").read_bytes()
        (layers / f"{name}.geojson.gz").write_bytes(gzip.compress(data, mtime=0))

    groups = []
    for group_name in sorted(reports["type"].unique()):
        match, radius, window, why = DEDUPE[group_name]
        groups.append(
            {
                "code": group_code_for(group_name),
                "name": group_name,
                "dedupe": {"match": match, "radius_m": radius, "window_days": window, "why": why},
            }
        )
    group_code = {g["name"]: g["code"] for g in groups}
    pairs = reports.groupby(["type", "soustype"]).size().reset_index()
    services = []
    for row in pairs.sort_values(["type", "soustype"]).itertuples():
        code = service_code_for(str(row.type), str(row.soustype))
        service = {"code": code, "name": row.soustype, "group": group_code[str(row.type)]}
        if row.soustype in ATTRIBUTES:
            service["attributes"] = ATTRIBUTES[str(row.soustype)]
        services.append(service)
    service_code = {s["name"]: s["code"] for s in services}

    teams = [
        {"code": t, "name": TEAM_NAMES.get(t, t)} for t in sorted(reports["intervenant"].unique())
    ]
    majority = reports.groupby("soustype")["intervenant"].agg(lambda s: s.value_counts().index[0])
    rules = [
        {"id": f"svc-{service_code[name]}", "team": team, "service": service_code[name]}
        for name, team in sorted(majority.items())
    ]
    return {
        "name": "Paris",
        "jurisdiction_id": "paris.fr",
        "metric_crs": "EPSG:2154",
        "timezone": "Europe/Paris",
        "locale": "fr",
        "territory": {"layer": "arrondissement"},
        "near_boundary_m": 10,
        "streets": {
            "path": "layers/streets.geojson.gz",
            "name_field": "name",
            "attributes": ["roadClass"],
            "max_snap_distance_m": 150,
            "address_match_radius_m": 60,
        },
        "zones": [
            {
                "name": "arrondissement",
                "path": "layers/arrondissements.geojson.gz",
                "code_field": "c_ar",
                "name_field": "l_aroff",
                "label": "Arrondissement",
            },
            {
                "name": "quartier",
                "path": "layers/quartiers_administratifs.geojson.gz",
                "code_field": "c_qu",
                "name_field": "l_qu",
                "label": "Quartier administratif",
            },
            {
                "name": "espace_vert",
                "path": "layers/espaces_verts.geojson.gz",
                "code_field": "nsq_espace_vert",
                "name_field": "nom_ev",
                "label": "Espace vert",
                "required": False,
            },
        ],
        "groups": groups,
        "services": services,
        "teams": teams,
        "routing": {"default_team": "triage", "rules": rules},
        "dedupe": DEDUPE_SCORING,
    }


HEADER = (
    "Paris — built by scripts/build_paris_city.py from Ville de Paris and OpenStreetMap open data."
)


def learned_rules() -> list[dict[str, Any]]:
    """Rules learned from the whole slice by ``voirie rules learn``: the recency-weighted
    majority team of each sub-category, and the zone rules where location changes it
    (DEVE in the woods) that won out of time."""
    city = load_city(OUT)
    reports = read_csv(OUT / "reports" / "dansmarue_2023-07_2024-03.csv.gz")
    learned = learn(city, reports, DANSMARUE, "intervenant", gis=CityGIS(city), min_support=1)
    return [rule.entry() for rule in learned.rules]


def main() -> int:
    """Write cities/paris/city.yaml: first with the majority table, then the learned rules."""
    doc = build()
    write_city_yaml(OUT, doc, HEADER)
    doc["routing"]["rules"] = learned_rules()
    write_city_yaml(OUT, doc, HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
