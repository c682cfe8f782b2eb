"""Open layers in real QGIS, headless, and say what QGIS saw (a JSON report on stdout).

Run by ``test_qgis.py`` under the system ``python3`` (QGIS's Python bindings are Debian's
``python3-qgis``, not a package of the project's virtualenv), with
``QT_QPA_PLATFORM=offscreen``:

    python3 qgis_open.py project voirie.qgs out.png
    python3 qgis_open.py files out.png EPSG:2154 incidents.gpkg reports.geojson

``project`` reads a project file as QGIS does when a user opens it; ``files`` opens data
files through QGIS's ``ogr`` provider in a new project of the given CRS. Either way every
layer is reported (validity, provider, CRS, feature count, renderer) and the layers shown
are rendered to a PNG over the extent of the visible layers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

SIZE = QSize(1200, 900)
COUNT_FEATURES_UP_TO = 5000
"""Layers this small are read to the end, to count what QGIS actually gets."""


def _renderer(layer: QgsVectorLayer) -> dict[str, Any]:
    renderer = layer.renderer()
    found: dict[str, Any] = {"type": renderer.type() if renderer else None}
    if renderer is not None and renderer.type() == "categorizedSymbol":
        found["attribute"] = renderer.classAttribute()
        found["categories"] = {
            str(c.value()): c.symbol().color().name() for c in renderer.categories()
        }
    return found


def _describe(layer: QgsMapLayer) -> dict[str, Any]:
    described: dict[str, Any] = {
        "id": layer.id(),
        "name": layer.name(),
        "valid": layer.isValid(),
        "provider": layer.providerType(),
        "crs": layer.crs().authid(),
        "error": layer.error().summary() if not layer.isValid() else "",
        "rights": list(layer.metadata().rights()),
        "licenses": list(layer.metadata().licenses()),
        "attribution": layer.attribution(),
    }
    if isinstance(layer, QgsVectorLayer) and layer.isValid():
        count = layer.featureCount()
        described["feature_count"] = count
        if 0 <= count <= COUNT_FEATURES_UP_TO:
            described["features_read"] = sum(1 for _ in layer.getFeatures())
        described["renderer"] = _renderer(layer)
        described["aliases"] = {
            f.name(): layer.attributeAlias(i) for i, f in enumerate(layer.fields())
        }
    return described


def _render(project: QgsProject, layers: list[QgsMapLayer], png: Path) -> dict[str, Any]:
    """Render ``layers`` (top first) in the project CRS over their extent; pixel counts."""
    settings = QgsMapSettings()
    settings.setOutputSize(SIZE)
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setDestinationCrs(project.crs())
    settings.setLayers(layers)
    extent = QgsRectangle()
    for layer in layers:
        to_project = QgsCoordinateTransform(layer.crs(), project.crs(), project)
        extent.combineExtentWith(to_project.transformBoundingBox(layer.extent()))
    extent.scale(1.05)
    settings.setExtent(extent)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(png), "PNG")
    colours: dict[str, int] = {}
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            name = QColor(image.pixel(x, y)).name()
            colours[name] = colours.get(name, 0) + 1
    return {
        "png": str(png),
        "errors": [e.message for e in job.errors()],
        "painted": sum(n for c, n in colours.items() if c != "#ffffff"),
        "colours": {c: n for c, n in colours.items() if n >= 3},
    }


def main(argv: list[str]) -> int:
    mode = argv[1]
    app = QgsApplication([], False)
    app.initQgis()
    try:
        project = QgsProject.instance()
        if mode == "project":
            read = project.read(argv[2])
            png = Path(argv[3])
            shown = project.layerTreeRoot().checkedLayers()
        else:
            read = True
            png = Path(argv[2])
            project.setCrs(QgsCoordinateReferenceSystem(argv[3]))
            for path in argv[4:]:
                project.addMapLayer(QgsVectorLayer(path, Path(path).name, "ogr"))
            shown = list(project.mapLayers().values())
        tree = [
            {"id": node.layerId(), "name": node.name(), "bound": node.layer() is not None}
            for node in project.layerTreeRoot().findLayers()
        ]
        report = {
            "read": read,
            "crs": project.crs().authid(),
            "title": project.title(),
            "legend": tree,
            "layers": [_describe(layer) for layer in project.mapLayers().values()],
            "shown": [layer.id() for layer in shown],
            "render": _render(project, shown, png),
        }
    finally:
        app.exitQgis()
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
