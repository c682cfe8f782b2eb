"""A QGIS project (``.qgs``) whose layers read this server's OGC API Features live.

A GIS officer opens one file and gets: incidents styled by status, incidents styled by
team (the dispatch map's colours), reports, streets and every zone layer, in the city's
metric CRS. Layers use QGIS's OGC API Features provider (the ``WFS`` provider with
``version='OGC_API_FEATURES'``) on absolute URLs built from the request's base URL.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from pyproj import CRS

from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS, team_colour
from voirie.maps.export import TITLES_FR, title_fr
from voirie.maps.ogc import Collection, collections
from voirie.model import Status
from voirie.pipeline import Pipeline

MEDIA_TYPE = "application/x-qgis-project"
QGIS_VERSION = "3.28.0-Firenze"
_OUTLINE = "35,35,35,255"


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    value = hex_colour.lstrip("#")
    return ",".join(str(int(value[i : i + 2], 16)) for i in (0, 2, 4)) + f",{alpha}"


def _spatialrefsys(parent: ET.Element, crs: CRS) -> None:
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    authority = crs.to_authority() or ("EPSG", "4326")
    # WKT, not a PROJ string: converting to PROJ strings loses datum information.
    for tag, text in (
        ("wkt", crs.to_wkt()),
        ("authid", f"{authority[0]}:{authority[1]}"),
        ("description", crs.name),
        ("geographicflag", "true" if crs.is_geographic else "false"),
    ):
        ET.SubElement(srs, tag).text = text


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
    if kind == "marker":
        layer = ET.SubElement(
            symbol, "layer", {"class": "SimpleMarker", "enabled": "1", "locked": "0", "pass": "0"}
        )
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
        layer = ET.SubElement(
            symbol, "layer", {"class": "SimpleLine", "enabled": "1", "locked": "0", "pass": "0"}
        )
        _options(layer, {"line_color": _rgba(colour), "line_width": "0.3"})
    else:
        layer = ET.SubElement(
            symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"}
        )
        _options(
            layer,
            {
                "color": _rgba(colour, 40),
                "outline_color": _rgba(colour),
                "outline_width": "0.4",
                "style": "solid",
            },
        )


def _categorized(
    parent: ET.Element, attribute: str, categories: list[tuple[str, str, str]]
) -> None:
    """A categorized renderer: (value, label, colour) per category, grey for the rest."""
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
    for number, (value, label, colour) in enumerate(categories):
        ET.SubElement(
            listed, "category", render="true", symbol=str(number), value=value, label=label
        )
        _symbol(symbols, str(number), "Point", colour)
    ET.SubElement(
        listed, "category", render="true", symbol=str(len(categories)), value="", label="autre"
    )
    _symbol(symbols, str(len(categories)), "Point", "#bbbbbb")


def _single(parent: ET.Element, geometry: str, colour: str) -> None:
    renderer = ET.SubElement(
        parent,
        "renderer-v2",
        type="singleSymbol",
        symbollevels="0",
        enableorderby="0",
        forceraster="0",
    )
    symbols = ET.SubElement(renderer, "symbols")
    _symbol(symbols, "0", geometry, colour)


def datasource(ogc_url: str, collection_id: str) -> str:
    """The QGIS OGC API Features data source of one collection."""
    return (
        f"pagingEnabled='true' preferCoordinatesForWfsT11='false' "
        f"restrictToRequestBBOX='1' srsname='OGC:CRS84' typename='{collection_id}' "
        f"url='{ogc_url}' version='OGC_API_FEATURES'"
    )


def _layer(
    projectlayers: ET.Element,
    tree: ET.Element,
    ogc_url: str,
    layer_id: str,
    name: str,
    source: Collection,
    geometry: str,
    *,
    visible: bool,
    fields: list[str],
) -> ET.Element:
    """One layer of the project and its entry in the layer tree (French aliases on fields)."""
    wkb = {"Point": "Point", "Line": "LineString", "Polygon": "MultiPolygon"}[geometry]
    maplayer = ET.SubElement(
        projectlayers,
        "maplayer",
        type="vector",
        geometry=geometry,
        wkbType=wkb,
        autoRefreshEnabled="0",
        autoRefreshTime="0",
    )
    ET.SubElement(maplayer, "id").text = layer_id
    ET.SubElement(maplayer, "datasource").text = datasource(ogc_url, source.id)
    ET.SubElement(maplayer, "layername").text = name
    ET.SubElement(maplayer, "abstract").text = source.description
    _spatialrefsys(ET.SubElement(maplayer, "srs"), CRS.from_epsg(4326))
    ET.SubElement(maplayer, "provider", encoding="").text = "WFS"
    if fields:
        aliases = ET.SubElement(maplayer, "aliases")
        for index, field in enumerate(fields):
            ET.SubElement(aliases, "alias", field=field, index=str(index), name=title_fr(field))
    ET.SubElement(
        tree,
        "layer-tree-layer",
        id=layer_id,
        name=name,
        providerKey="WFS",
        source=datasource(ogc_url, source.id),
        expanded="1",
        checked="Qt::Checked" if visible else "Qt::Unchecked",
    )
    return maplayer


def project_xml(pipeline: Pipeline, ogc_url: str, lang: str = "fr") -> bytes:
    """The project file: every OGC collection as a layer, incidents styled twice."""
    city = pipeline.city
    found = collections(pipeline)
    root = ET.Element("qgis", projectname=f"voirie — {city.config.name}", version=QGIS_VERSION)
    ET.SubElement(root, "title").text = f"voirie — {city.config.name}"
    _spatialrefsys(ET.SubElement(root, "projectCrs"), CRS.from_user_input(city.metric_crs))
    tree = ET.SubElement(root, "layer-tree-group")
    projectlayers = ET.SubElement(root, "projectlayers")
    labels = STATUS_LABELS.get(lang, STATUS_LABELS["fr"])
    fields = [*TITLES_FR, *(f"zone_{name}" for name in pipeline.gis.zones)]
    by_status = _layer(
        projectlayers,
        tree,
        ogc_url,
        "incidents_by_status",
        "Incidents par statut",
        found["incidents"],
        "Point",
        visible=True,
        fields=fields,
    )
    _categorized(by_status, "status", [(s.value, labels[s], STATUS_COLOURS[s]) for s in Status])
    by_team = _layer(
        projectlayers,
        tree,
        ogc_url,
        "incidents_by_team",
        "Incidents par équipe",
        found["incidents"],
        "Point",
        visible=False,
        fields=fields,
    )
    _categorized(
        by_team,
        "team",
        [(code, team.name, team_colour(code)) for code, team in sorted(city.teams.items())],
    )
    reports = _layer(
        projectlayers,
        tree,
        ogc_url,
        "reports",
        "Signalements",
        found["reports"],
        "Point",
        visible=False,
        fields=fields,
    )
    _single(reports, "Point", "#555555")
    for collection_id, source in found.items():
        if source.kind == "streets":
            streets = _layer(
                projectlayers,
                tree,
                ogc_url,
                "streets",
                source.title,
                source,
                "Line",
                visible=False,
                fields=[],
            )
            _single(streets, "Line", "#888888")
        elif source.kind == "zones":
            zones = _layer(
                projectlayers,
                tree,
                ogc_url,
                f"zone_{collection_id}",
                source.title,
                source,
                "Polygon",
                fields=[],
                visible=collection_id == city.config.territory.layer,
            )
            _single(zones, "Polygon", "#3366cc")
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + b"\n"
