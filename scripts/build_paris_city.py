"""Build ``cities/paris`` from the real open data in ``../shared/data/paris``.

Run once by a maintainer when the source data changes; the output is committed so that
voirie never reads ``../shared`` at run time. Services and groups come from the DansMaRue
``type``/``soustype`` pairs, teams from ``intervenant``, and the first routing table from
the majority ``intervenant`` of each ``soustype`` over the 2023-07 … 2024-03 slice.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from citygen import write_city_yaml

from voirie.city import group_code_for, service_code_for

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "paris"
OUT = Path(__file__).resolve().parents[1] / "cities" / "paris"

# Deduplication thresholds per DansMaRue type, chosen from what the problem is, not fitted
# to the data: objects left on the pavement are collected within days, graffiti stays for
# weeks but is precise in place, a broken light is reported from across the street.
DEDUPE: dict[str, tuple[float, float]] = {
    "Objets abandonnés": (30, 3),
    "Graffitis, tags, affiches et autocollants": (20, 14),
    "Propreté": (30, 3),
    "Autos, motos, vélos, trottinettes...": (20, 7),
    "Voirie et espace public": (25, 30),
    "Mobiliers urbains": (20, 30),
    "Activités commerciales et professionnelles": (30, 7),
    "Arbres, végétaux et animaux": (30, 14),
    "Éclairage / Électricité": (50, 30),
    "Eau": (30, 7),
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
        radius, window = DEDUPE[group_name]
        groups.append(
            {"code": group_code_for(group_name), "name": group_name,
             "dedupe": {"radius_m": radius, "window_days": window}}
        )
    group_code = {g["name"]: g["code"] for g in groups}
    pairs = reports.groupby(["type", "soustype"]).size().reset_index()
    services = []
    for row in pairs.sort_values(["type", "soustype"]).itertuples():
        code = service_code_for(str(row.type), str(row.soustype))
        services.append({"code": code, "name": row.soustype, "group": group_code[str(row.type)]})
    service_code = {s["name"]: s["code"] for s in services}

    teams = [
        {"code": t, "name": TEAM_NAMES.get(t, t)} for t in sorted(reports["intervenant"].unique())
    ]
    majority = (
        reports.groupby("soustype")["intervenant"].agg(lambda s: s.value_counts().index[0])
    )
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
            {"name": "arrondissement", "path": "layers/arrondissements.geojson.gz",
             "code_field": "c_ar", "name_field": "l_aroff", "label": "Arrondissement"},
            {"name": "quartier", "path": "layers/quartiers_administratifs.geojson.gz",
             "code_field": "c_qu", "name_field": "l_qu", "label": "Quartier administratif"},
            {"name": "espace_vert", "path": "layers/espaces_verts.geojson.gz",
             "code_field": "nsq_espace_vert", "name_field": "nom_ev", "label": "Espace vert",
             "required": False},
        ],
        "groups": groups,
        "services": services,
        "teams": teams,
        "routing": {"default_team": "triage", "rules": rules},
    }


def main() -> int:
    """Write cities/paris/city.yaml."""
    write_city_yaml(
        OUT,
        build(),
        "Paris — built by scripts/build_paris_city.py from Ville de Paris and OpenStreetMap"
        " open data.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
