"""CSV written by voirie is safe to open in a spreadsheet (OWASP CSV injection rule).

A citizen's description ``=HYPERLINK(...)`` is imported, then exported as CSV by the web
download and by ``voirie export``, and a row quarantined for its latitude, whose
description is ``@SUM(1)``, is written to the import's quarantine CSV: such cells must come
out as text
(a leading quote), while numeric columns such as coordinates stay numbers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from clirunner import run_voirie
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.codecs.csvsafe import safe_cell, safe_table
from voirie.settings import CitySettings, StoreSettings

FORMULA = '=HYPERLINK("http://x")'


def test_formula_starts_are_quoted_and_numbers_kept() -> None:
    table = pd.DataFrame(
        {
            "text": ["=1+1", "+33 1", "-x", "@SUM(A1)", "\tcmd", "\rcmd", "plain", None],
            "number": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        }
    )
    out = safe_table(table)
    assert list(out["text"][:7]) == [
        "'=1+1",
        "'+33 1",
        "'-x",
        "'@SUM(A1)",
        "'\tcmd",
        "'\rcmd",
        "plain",
    ]
    assert pd.isna(out["text"][7])
    assert out["number"].tolist() == table["number"].tolist()
    assert safe_cell("=a") == "'=a"
    assert table["text"][0] == "=1+1"  # the input is left as it was


def test_imported_formula_is_neutralised_in_every_csv_export(tmp_path: Path, paris: City) -> None:
    service = next(iter(paris.services_by_name.values())).code
    request = {
        "service_request_id": "inject-1",
        "service_code": service,
        "description": FORMULA,
        "requested_datetime": "2024-03-01T09:15:00+01:00",
        "lat": 48.86614608645489,
        "long": 2.3800201422199687,
        "status": "open",
    }
    refused = request | {"service_request_id": "inject-2", "lat": 95.0, "description": "@SUM(1)"}
    (tmp_path / "requests.json").write_text(json.dumps([request, refused]), encoding="utf-8")
    done = run_voirie(tmp_path, "import", "requests.json", "--format", "open311-json")
    assert done.returncode == 0, done.stderr
    quarantined = pd.read_csv(tmp_path / "requests.json.quarantine.csv", dtype=str)
    assert "'@SUM(1)" in quarantined.to_numpy()
    assert "@SUM(1)" not in quarantined.to_numpy()

    exported = run_voirie(tmp_path, "export", "reports", "--format", "csv", "-o", "r.csv")
    assert exported.returncode == 0, exported.stderr
    cli_rows = pd.read_csv(tmp_path / "r.csv")

    app = create_app(
        StoreSettings(database_url=f"sqlite:///{tmp_path / 't.gpkg'}"),
        CitySettings(city="paris"),
    )
    with TestClient(app) as client:
        response = client.get("/exports/reports.csv")
    assert response.status_code == 200
    web_rows = pd.read_csv(io.BytesIO(response.content))

    for rows in (cli_rows, web_rows):
        assert rows["description"].tolist() == ["'" + FORMULA]
        assert pd.api.types.is_float_dtype(rows["lon"])
        assert pd.api.types.is_float_dtype(rows["x"])
