/* The small map of the OGC API HTML pages (maps/ogc_html.py): the features of the page,
 * collection or item, drawn from the JSON block #ogc-map-data with the vendored Leaflet,
 * offline (no background tiles: grey district outlines give bearings). The block holds
 * geometries and ids only; ids are inserted as text. The credit (ODbL, OpenStreetMap and
 * the city) is the server's own HTML. */
(function () {
  "use strict";
  var holder = document.getElementById("ogc-map");
  var block = document.getElementById("ogc-map-data");
  if (!holder || !block || typeof L === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var map = L.map(holder, { attributionControl: true, scrollWheelZoom: false });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  if (data.credit) { map.attributionControl.addAttribution(data.credit); }
  if (data.outlines) {
    L.geoJSON(data.outlines, {
      interactive: false,
      style: { color: "#888", weight: 1, fill: false }
    }).addTo(map);
  }
  var drawn = L.geoJSON(data.features, {
    pointToLayer: function (feature, latlng) {
      return L.circleMarker(latlng, { radius: 5, color: "#2b5797", weight: 1, fillOpacity: 0.8 });
    },
    style: { color: "#2b5797", weight: 2 },
    onEachFeature: function (feature, layer) {
      if (!data.itemUrl) { return; }
      var link = document.createElement("a");
      link.href = data.itemUrl.replace("{id}", encodeURIComponent(String(feature.id)));
      link.textContent = String(feature.id);
      layer.bindPopup(link);
    }
  }).addTo(map);
  holder.setAttribute("data-features", String(drawn.getLayers().length));
  var bounds = drawn.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds, { maxZoom: 15, padding: [12, 12] });
  } else if (data.bbox) {
    map.fitBounds([[data.bbox[1], data.bbox[0]], [data.bbox[3], data.bbox[2]]]);
  } else {
    map.setView([0, 0], 1);
  }
  holder.setAttribute("data-ready", "true");
}());
