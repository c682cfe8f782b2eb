"""Vendored front-end assets, so published pages draw without any internet access.

The folder holds Leaflet 1.9.4 exactly as shipped in its npm package
(``npm pack leaflet@1.9.4``): ``dist/leaflet.js``, ``dist/leaflet.css`` and the two
layer-control images from ``dist/images/``, next to Leaflet's BSD-2-Clause licence
(``leaflet.LICENSE.txt``). The layout mirrors ``dist/`` so the stylesheet's relative
``images/`` URLs resolve unchanged. Next to it, from their npm packages too:
Leaflet.markercluster 1.5.3 (``npm pack leaflet.markercluster@1.5.3``: ``dist/``'s
``leaflet.markercluster.js`` with its source map, ``MarkerCluster.css``,
``MarkerCluster.Default.css``; MIT, ``leaflet.markercluster.LICENSE.txt``) and
Leaflet.heat 0.2.0 (``dist/leaflet-heat.js``; BSD-2-Clause, ``leaflet.heat.LICENSE.txt``).
The API documentation pages draw with Swagger UI 5.36.0 (``npm pack swagger-ui-dist@5.36.0``:
``swagger-ui-bundle.js`` with its ``.LICENSE.txt``, ``swagger-ui.css``, ``favicon-32x32.png``;
Apache-2.0, ``LICENSE`` and ``NOTICE``) in ``swagger-ui/``, and ReDoc 2.5.4
(``npm pack redoc@2.5.4``: ``bundles/redoc.standalone.js`` with its ``.LICENSE.txt``; MIT,
``LICENSE``) in ``redoc/``, under their shipped names (the bundles point at them).
voirie's own page files are ``voirie.css``, ``voirie.js`` (shared helpers),
``dispatch.js`` and ``nearby.js``. The web app mounts :data:`STATIC_DIR` at ``/static``.
"""

from pathlib import Path

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""Folder to serve (e.g. with ``starlette.staticfiles.StaticFiles``) at ``/static``."""
