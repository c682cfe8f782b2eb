"""A report's position written in one column, as open-data portals and GIS tools export it.

Opendatasoft, the portal of Paris, Rennes, Nantes, Toulouse and many French cities, exports a
dataset's point as ``geo_point_2d``: ``"48.8699, 2.3493"`` in CSV, ``{"lon": 2.3493, "lat":
48.8699}`` through its API; Socrata (Chicago, New York) as ``"(41.88, -87.63)"`` or an
object of text numbers (``{'latitude': '41.88', 'longitude': '-87.63', ...}``); QGIS and
``ogr2ogr`` write a CSV's geometry as WKT, ``POINT (2.3493 48.8699)``. ``split_points`` reads
all four, each cell on its own, into the x (longitude, easting) and y (latitude, northing)
texts that validation then checks as it checks two columns (decimal commas included: a
French spreadsheet's ``48,8699; 2,3493`` or ``48,8699, 2,3493``). Note the orders: the first two
forms give latitude first, WKT and every GIS format x first.
"""

from __future__ import annotations

import pandas as pd

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_WKT = (
    rf"(?i)^POINT\s*(?:Z|M|ZM)?\s*\(\s*(?P<x>{_NUMBER})\s+(?P<y>{_NUMBER})"
    rf"(?:\s+{_NUMBER}){{0,2}}\s*\)$"
)
_PAIR = rf"^\(?\s*(?P<y>{_NUMBER})\s*[,;]\s*(?P<x>{_NUMBER})\s*\)?$"
_COMMA_NUMBER = r"[-+]?\d+,\d+"
_COMMA_PAIR = rf"^\(?\s*(?P<y>{_COMMA_NUMBER})\s*[,;]\s*(?P<x>{_COMMA_NUMBER})\s*\)?$"
"""A pair of decimal-comma numbers, as a French spreadsheet writes it: ``48,85, 2,35``
(each number has one comma, so the one between them is the separator) or ``48,85;2,35``."""
_KEY = r"""(?i)[{{,]\s*["']?(?:{names})["']?\s*:\s*["']?(?P<value>{number})["']?\s*[,}}]"""
_LON = _KEY.format(names="lon|lng|long|longitude", number=_NUMBER)
_LAT = _KEY.format(names="lat|latitude", number=_NUMBER)
FORMS = "'lat, lon', '(lat, lon)', 'POINT (lon lat)' or {'lon': x, 'lat': y}"
"""The forms a point column may hold, as an error message names them."""


def split_points(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The x and y texts of each cell (both None where the cell is missing or holds none
    of the forms), on the index of ``cells``."""
    text = cells.astype(object).where(cells.notna(), "").astype(str)
    x = pd.Series(None, index=cells.index, dtype=object)
    y = pd.Series(None, index=cells.index, dtype=object)
    for pattern in (_PAIR, _WKT, _COMMA_PAIR):
        found = text.str.extract(pattern)
        read = found["x"].notna() & x.isna()
        x[read], y[read] = found.loc[read, "x"], found.loc[read, "y"]
    # An object ({'lon': 2.35, 'lat': 48.85}; Socrata's location holds its numbers as text
    # beside other keys): each key looked for wherever it stands in the braces.
    braced = x.isna() & text.str.startswith("{")
    if braced.any():
        lon = text[braced].str.extract(_LON)["value"]
        lat = text[braced].str.extract(_LAT)["value"]
        both = lon.notna() & lat.notna()
        x[both[both].index], y[both[both].index] = lon[both], lat[both]
    return x, y
