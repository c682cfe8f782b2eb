"""Shared by the scripts that build a city folder from open data: writing its city.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# How a report weighs the incidents it may join (voirie.city.DedupeScoring), the same for
# every city: distance is the main evidence; service kinship, street and recency each
# refine it. Along one street the reach doubles: a strip of street (about 20 m wide) twice
# the radius long has about the area of the radius's disc, so the chance of joining an
# unrelated report stays the same (docs/deduplication.md).
DEDUPE_SCORING = {
    "distance": 0.4,
    "time": 0.2,
    "service": 0.2,
    "street": 0.2,
    "same_street_factor": 2.0,
}


def write_city_yaml(folder: Path, doc: dict[str, Any], provenance: str) -> None:
    """Write ``folder/city.yaml`` under a header saying where it came from, and say so."""
    header = f"# {provenance}\n# Generated; edit by hand after review (see LICENCE.md).\n"
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
    (folder / "city.yaml").write_text(header + text, encoding="utf-8")
    print(
        f"wrote {folder / 'city.yaml'}: {len(doc['services'])} services, "
        f"{len(doc['groups'])} groups, {len(doc['teams'])} teams"
    )
