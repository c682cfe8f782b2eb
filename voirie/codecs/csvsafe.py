"""CSV cells a spreadsheet will not run: the OWASP CSV injection rule, applied once.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a
citizen's description would become a live link in a clerk's spreadsheet). Every CSV the
product writes passes its text through here: such cells get a leading single quote, which
spreadsheets show as text. Numeric columns are left alone, so ``-3.5`` stays a number.
See https://owasp.org/www-community/attacks/CSV_Injection.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """``value`` prefixed with ``'`` when a spreadsheet would take it for a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def safe_row(values: Iterable[str]) -> list[str]:
    """A row of text cells, each made safe (for ``csv.writer`` rows)."""
    return [safe_cell(value) for value in values]


def safe_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells and column names are safe to open.

    Only text (object or string) columns are changed, and in them only ``str`` cells:
    numbers, missing values and dates keep their type and are written as before.
    """
    out = table.rename(columns=lambda name: safe_cell(name) if isinstance(name, str) else name)
    for name in out.columns:
        column = out[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            out[name] = column.map(
                lambda value: safe_cell(value) if isinstance(value, str) else value,
                na_action="ignore",
            )
    return out
