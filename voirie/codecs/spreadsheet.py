"""CSV for a person who opens it with a double click in a spreadsheet, in the page's language.

Excel reads a CSV in the machine's locale and legacy encoding unless the file starts with a
UTF-8 byte-order mark: a French Excel splits fields on ``;`` (``,`` is its decimal
separator), so a comma-separated file opens as one column, and UTF-8 without the mark shows
"Ã‰quipe" for "Équipe". A download made for staff's spreadsheets therefore starts with the
mark and writes fields and decimals as spreadsheets of its language expect (French ``;``
and ``,``; English ``,`` and ``.``); LibreOffice and Google Sheets read both. Text cells go
through ``csvsafe`` (no formula runs). Layers for GIS tools (``/exports``) stay plain RFC
4180 CSV, which GDAL and scripts expect.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from voirie.codecs.csvsafe import safe_table

BOM = "\ufeff"
SEPARATORS: dict[str, tuple[str, str]] = {"fr": (";", ","), "en": (",", ".")}
"""Field separator and decimal mark of each language's spreadsheets."""


def spreadsheet_csv(table: pd.DataFrame, lang: Literal["fr", "en"]) -> str:
    """``table`` as CSV text for a spreadsheet in ``lang``: byte-order mark, the language's
    field separator and decimal mark, safe text cells, no index."""
    separator, decimal = SEPARATORS[lang]
    return BOM + safe_table(table).to_csv(index=False, sep=separator, decimal=decimal)
