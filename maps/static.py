"""Vendored front-end assets, so published pages draw without any internet access.

The folder holds Leaflet 1.9.4 exactly as shipped in its npm package
(``npm pack leaflet@1.9.4``): ``dist/leaflet.js``, ``dist/leaflet.css`` and the two
layer-control images from ``dist/images/``, next to Leaflet's BSD-2-Clause licence
(``leaflet.LICENSE.txt``). The layout mirrors ``dist/`` so the stylesheet's relative
``images/`` URLs resolve unchanged. The web app mounts :data:`STATIC_DIR` at ``/static``.
"""

from pathlib import Path

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""Folder to serve (e.g. with ``starlette.staticfiles.StaticFiles``) at ``/static``."""
