"""A QGIS project (``.qgs``) whose layers read this server's OGC API Features live.

A GIS officer opens one file and gets: incidents styled by status, incidents styled by
team (the dispatch map's colours), reports, streets and every zone layer, with French
names and field aliases, licence and attribution in each layer's metadata, in the city's
metric CRS, opened on the city. Layers use QGIS's OGC API Features provider (``OAPIF``,
data source ``url='…' typename='…'``) on absolute URLs of the server's public address.

The XML follows what QGIS 3.22 (the LTR of Debian 12) itself writes for such a project:
``tests/api/test_qgis.py`` opens it in that QGIS, checks every layer and renders it.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from pyproj import CRS, Transformer

from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS, team_colour
from voirie.maps.export import TITLES_FR, title_fr
from voirie.maps.ogc import Collection, collections
from voirie.model import Status
from voirie.services.pipeline import Pipeline

MEDIA_TYPE = "application/x-qgis-project"
QGZ_MEDIA_TYPE = "application/x-qgis-project-container"
QGIS_VERSION = "3.22.0-Białowieża"
"""The oldest QGIS the project is written for (QGIS warns on a project from a newer one)."""
LICENCE = "Open Database License (ODbL) 1.0"
LICENCE_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
_OUTLINE = "35,35,35,255"
_REFERENCE_TITLES = {"code": "Code", "name": "Nom", "roadClass": "Classe de voie"}
_WKB = {"Point": "Point", "Line": "LineString", "Polygon": "MultiPolygon"}
Renderer = Callable[[ET.Element], None]
"""Adds a layer's ``renderer-v2`` element to its ``maplayer``."""


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    value = hex_colour.lstrip("#")
    return ",".join(str(int(value[i : i + 2], 16)) for i in (0, 2, 4)) + f",{alpha}"


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _spatialrefsys(parent: ET.Element, crs: CRS) -> None:
    """A CRS as QGIS stores it: its WKT and authority id (QGIS resolves the rest)."""
    srs = ET.SubElement(parent, "spatialrefsys")
    authority = crs.to_authority()
    if authority is None:
        raise ValueError(f"CRS without an authority code: {crs.name}")
    # WKT, not a PROJ string: converting to PROJ strings loses datum information.
    _text(srs, "wkt", crs.to_wkt())
    _text(srs, "authid", f"{authority[0]}:{authority[1]}")
    _text(srs, "description", crs.name)
    _text(srs, "geographicflag", "true" if crs.is_geographic else "false")


def _extent(parent: ET.Element, tag: str, bounds: tuple[float, float, float, float]) -> None:
    extent = ET.SubElement(parent, tag)
    for name, value in zip(("xmin", "ymin", "xmax", "ymax"), bounds, strict=True):
        _text(extent, name, repr(float(value)))


def _options(parent: ET.Element, values: dict[str, str]) -> None:
    option = ET.SubElement(parent, "Option", type="Map")
    for name, value in values.items():
        ET.SubElement(option, "Option", name=name, value=value, type="QString")


def _symbol(parent: ET.Element, name: str, geometry: str, colour: str) -> None:
    """One simple symbol: a marker, a line or a translucent fill, in ``colour``."""
    kind = {"Point": "marker", "Line": "line", "Polygon": "fill"}[geometry]
    symbol = ET.SubElement(
        parent, "symbol", type=kind, name=name, alpha="1", clip_to_extent="1", force_rhr="0"
    )
    flags = {"enabled": "1", "locked": "0", "pass": "0"}
    if kind == "marker":
        layer = ET.SubElement(symbol, "layer", {"class": "SimpleMarker", **flags})
        _options(
            layer,
            {
                "name": "circle",
                "color": _rgba(colour),
                "size": "2.4",
                "outline_color": _OUTLINE,
                "outline_width": "0.2",
            },
        )
    elif kind == "line":
        layer = ET.SubElement(symbol, "layer", {"class": "SimpleLine", **flags})
        _options(layer, {"line_color": _rgba(colour), "line_width": "0.3"})
    else:
        layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", **flags})
        _options(
            layer,
            {
                "color": _rgba(colour, 40),
                "outline_color": _rgba(colour),
                "outline_width": "0.4",
                "style": "solid",
            },
        )


def _categorized(attribute: str, categories: list[tuple[str, str, str]]) -> Renderer:
    """A categorized point renderer: (value, label, colour) per category, grey for the rest."""

    def build(parent: ET.Element) -> None:
        renderer = ET.SubElement(
            parent,
            "renderer-v2",
            type="categorizedSymbol",
            attr=attribute,
            symbollevels="0",
            enableorderby="0",
            forceraster="0",
        )
        listed = ET.SubElement(renderer, "categories")
        symbols = ET.SubElement(renderer, "symbols")
        # The category without a value draws every other value.
        rows = [*categories, ("", "autre", "#bbbbbb")]
        for number, (value, label, colour) in enumerate(rows):
            ET.SubElement(
                listed, "category", render="true", symbol=str(number), value=value, label=label
            )
            _symbol(symbols, str(number), "Point", colour)

    return build


def _single(geometry: str, colour: str) -> Renderer:
    """A renderer drawing every feature with one symbol."""

    def build(parent: ET.Element) -> None:
        renderer = ET.SubElement(
            parent,
            "renderer-v2",
            type="singleSymbol",
            symbollevels="0",
            enableorderby="0",
            forceraster="0",
        )
        _symbol(ET.SubElement(renderer, "symbols"), "0", geometry, colour)

    return build


def datasource(ogc_url: str, collection_id: str) -> str:
    """The data source of one collection for QGIS's ``OAPIF`` provider."""
    return f"url='{ogc_url}' typename='{collection_id}'"


@dataclass(frozen=True)
class ProjectLayer:
    """One layer of the project: which collection, under which name, drawn how."""

    id: str
    """Longer than 10 characters: QGIS replaces a shorter layer id by a new one when it
    reads the project, and the legend entry naming the old one is left without a layer."""
    name: str
    collection: Collection
    geometry: str
    visible: bool
    renderer: Renderer
    rights: str


def _aliases(parent: ET.Element, fields: list[str]) -> None:
    aliases = ET.SubElement(parent, "aliases")
    for index, name in enumerate(fields):
        alias = _REFERENCE_TITLES.get(name) or title_fr(name)
        ET.SubElement(aliases, "alias", field=name, index=str(index), name=alias)


def _metadata(parent: ET.Element, layer: ProjectLayer, ogc_url: str) -> None:
    """The layer's metadata: title, description, links to its source, licence, rights."""
    source = layer.collection
    collection_url = f"{ogc_url}/collections/{source.id}"
    metadata = ET.SubElement(parent, "resourceMetadata")
    _text(metadata, "identifier", collection_url)
    _text(metadata, "language", "fra")
    _text(metadata, "type", "dataset")
    _text(metadata, "title", layer.name)
    _text(metadata, "abstract", source.description)
    links = ET.SubElement(metadata, "links")
    for name, url, media in (
        ("collection", collection_url, "application/json"),
        ("items", f"{collection_url}/items", "application/geo+json"),
        ("licence", LICENCE_URL, "text/html"),
    ):
        ET.SubElement(
            links,
            "link",
            name=name,
            url=url,
            type="WWW:LINK",
            mimeType=media,
            description="",
            format="",
            size="",
        )
    _text(metadata, "rights", layer.rights)
    _text(metadata, "license", f"{LICENCE} — {LICENCE_URL}")
    crs = ET.SubElement(metadata, "crs")
    _spatialrefsys(crs, CRS.from_user_input("OGC:CRS84"))
    extent = ET.SubElement(metadata, "extent")
    minx, miny, maxx, maxy = source.bbox
    ET.SubElement(
        extent,
        "spatial",
        crs="OGC:CRS84",
        dimensions="2",
        minx=repr(minx),
        miny=repr(miny),
        maxx=repr(maxx),
        maxy=repr(maxy),
        minz="0",
        maxz="0",
    )


def _maplayer(parent: ET.Element, layer: ProjectLayer, ogc_url: str, fields: list[str]) -> None:
    """A ``maplayer`` element as QGIS writes it for an OGC API Features layer."""
    maplayer = ET.SubElement(
        parent,
        "maplayer",
        type="vector",
        geometry=layer.geometry,
        wkbType=_WKB[layer.geometry],
        autoRefreshEnabled="0",
        autoRefreshTime="0",
        hasScaleBasedVisibilityFlag="0",
        readOnly="1",
    )
    _extent(maplayer, "extent", layer.collection.bbox)
    _extent(maplayer, "wgs84extent", layer.collection.bbox)
    _text(maplayer, "id", layer.id)
    _text(maplayer, "datasource", datasource(ogc_url, layer.collection.id))
    _text(maplayer, "attribution", layer.rights, href=LICENCE_URL)
    _text(maplayer, "layername", layer.name)
    # OGC API Features serves CRS84 by default: QGIS reads it as EPSG:4326 (lon/lat).
    _spatialrefsys(ET.SubElement(maplayer, "srs"), CRS.from_epsg(4326))
    _metadata(maplayer, layer, ogc_url)
    _text(maplayer, "provider", "OAPIF", encoding="")
    layer.renderer(maplayer)
    _aliases(maplayer, fields)


def _layers(pipeline: Pipeline, lang: str) -> list[ProjectLayer]:
    """The project's layers, top of the legend first."""
    city = pipeline.city
    found = collections(pipeline)
    labels = STATUS_LABELS.get(lang, STATUS_LABELS["fr"])
    by_city = f"© {city.config.name}, {LICENCE}"
    layers = [
        ProjectLayer(
            "voirie_incidents_par_statut",
            "Incidents par statut",
            found["incidents"],
            "Point",
            True,
            _categorized("status", [(s.value, labels[s], STATUS_COLOURS[s]) for s in Status]),
            by_city,
        ),
        ProjectLayer(
            "voirie_incidents_par_equipe",
            "Incidents par équipe",
            found["incidents"],
            "Point",
            False,
            _categorized(
                "team",
                [(code, team.name, team_colour(code)) for code, team in sorted(city.teams.items())],
            ),
            by_city,
        ),
        ProjectLayer(
            "voirie_signalements",
            "Signalements",
            found["reports"],
            "Point",
            False,
            _single("Point", "#555555"),
            by_city,
        ),
    ]
    if "streets" in found:
        layers.append(
            ProjectLayer(
                "voirie_rues",
                "Rues",
                found["streets"],
                "Line",
                False,
                _single("Line", "#888888"),
                f"© les contributeurs OpenStreetMap, {LICENCE}",
            )
        )
    for source in found.values():
        if source.kind == "zones":
            layers.append(
                ProjectLayer(
                    f"voirie_zone_{source.id}",
                    source.title,
                    source,
                    "Polygon",
                    source.id == city.config.territory.layer,
                    _single("Polygon", "#3366cc"),
                    by_city,
                )
            )
    return layers


def _fields(pipeline: Pipeline, source: Collection) -> list[str]:
    """The fields to give a French alias: QGIS matches aliases by name and keeps those of
    fields a layer does not have, so incidents and reports share the public columns'."""
    if source.kind in ("incidents", "reports"):
        zones = [f"zone_{name}" for name in pipeline.gis.zones]
        return [*TITLES_FR, *zones, "service_name"]
    return list(source.filters)


def _properties(root: ET.Element) -> None:
    """Project properties: without ``ProjectionsEnabled`` QGIS ignores the project CRS."""
    properties = ET.SubElement(root, "properties")
    srs = ET.SubElement(properties, "SpatialRefSys")
    _text(srs, "ProjectionsEnabled", "1", type="int")


def _canvas(root: ET.Element, pipeline: Pipeline, crs: CRS) -> None:
    """The initial view: the territory, in the project CRS."""
    territory = collections(pipeline)[pipeline.city.config.territory.layer]
    to_metric = Transformer.from_crs("OGC:CRS84", crs, always_xy=True)
    bounds = to_metric.transform_bounds(*territory.bbox, densify_pts=21)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    _text(canvas, "units", "meters" if not crs.is_geographic else "degrees")
    _extent(canvas, "extent", bounds)
    _text(canvas, "rotation", "0")
    _spatialrefsys(ET.SubElement(canvas, "destinationsrs"), crs)


def project_xml(pipeline: Pipeline, ogc_url: str, lang: str = "fr") -> bytes:
    """The project file: every OGC collection as a layer, incidents styled twice."""
    city = pipeline.city
    title = f"voirie — {city.config.name}"
    crs = CRS.from_user_input(city.metric_crs)
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION)
    _text(root, "title", title)
    _spatialrefsys(ET.SubElement(root, "projectCrs"), crs)
    layers = _layers(pipeline, lang)
    tree = ET.SubElement(root, "layer-tree-group")
    for layer in layers:
        ET.SubElement(
            tree,
            "layer-tree-layer",
            id=layer.id,
            name=layer.name,
            providerKey="OAPIF",
            source=datasource(ogc_url, layer.collection.id),
            expanded="1" if layer.visible else "0",
            checked="Qt::Checked" if layer.visible else "Qt::Unchecked",
        )
    _canvas(root, pipeline, crs)
    projectlayers = ET.SubElement(root, "projectlayers")
    for layer in layers:
        _maplayer(projectlayers, layer, ogc_url, _fields(pipeline, layer.collection))
    _properties(root)
    metadata = ET.SubElement(root, "projectMetadata")
    _text(metadata, "identifier", ogc_url)
    _text(metadata, "language", "fra")
    _text(metadata, "type", "dataset")
    _text(metadata, "title", title)
    _text(
        metadata,
        "abstract",
        f"Incidents de voirie, signalements, rues et zones de {city.config.name}, "
        f"lus en direct sur {ogc_url}.",
    )
    _text(metadata, "rights", f"© {city.config.name}, © les contributeurs OpenStreetMap")
    _text(metadata, "license", f"{LICENCE} — {LICENCE_URL}")
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + b"\n"


def project_qgz(project: bytes) -> bytes:
    """A project file zipped as ``.qgz``, the format QGIS saves by default (the ``.qgs``
    alone inside; QGIS creates the auxiliary storage it finds missing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("voirie.qgs", project)
    return buffer.getvalue()
