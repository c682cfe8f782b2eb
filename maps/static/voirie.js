/* voirie page helpers shared by the dispatch map and the citizen page.
 * Every text from data goes into the page through textContent, never innerHTML.
 */
(function (global) {
  "use strict";

  /** An element with an optional class and text (set as text, never parsed as HTML). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** HTML-escaped text, for the few Leaflet APIs that only take HTML strings. */
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  /** A template such as "{shown} of {total}" with its values filled in. */
  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return key in values ? String(values[key]) : whole;
    });
  }

  /** The page's JSON data block. */
  function pageData() {
    return JSON.parse(document.getElementById("voirie-data").textContent);
  }

  /** The message of a problem+json (or FastAPI validation) error body, as plain text. */
  function problemText(payload, fallback) {
    if (!payload) return fallback;
    if (typeof payload.detail === "string") return payload.detail;
    if (Array.isArray(payload.detail)) {
      return payload.detail.map(function (d) {
        return (Array.isArray(d.loc) ? d.loc.slice(1).join(".") + ": " : "") + d.msg;
      }).join("; ");
    }
    return fallback;
  }

  /** An API refusal in the page's words where its labels have some (``err_<field>`` for
   * the field at fault, else ``err_<status>``, 5xx as ``err_500``), filled with
   * ``values``; else the API's own words (it answers in English). */
  function refusal(labels, result, values) {
    const field = result.payload && result.payload.field;
    const own = (field && labels["err_" + field]) ||
      labels["err_" + (result.status >= 500 ? 500 : result.status)];
    return own ? format(own, values || {}) : problemText(result.payload, result.statusText);
  }

  /** fetch() with a JSON body; resolves to {ok, status, payload} whatever the outcome. */
  function sendJson(method, url, body, headers) {
    const allHeaders = Object.assign({"Content-Type": "application/json"}, headers || {});
    return fetch(url, {method: method, headers: allHeaders, body: JSON.stringify(body || {})})
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (payload) {
          return {ok: response.ok, status: response.status, payload: payload,
                  statusText: response.statusText};
        });
      });
  }

  /** Grey outlines of the city's zones, for bearings without background tiles. */
  function addOutlines(map, geojson) {
    if (!geojson) return null;
    const layer = L.geoJSON(geojson, {
      interactive: false,
      style: {color: "#777777", weight: 1, fill: false},
    });
    layer.addTo(map);
    return layer;
  }

  global.voirie = {
    el: el, escapeHtml: escapeHtml, format: format, pageData: pageData,
    problemText: problemText, refusal: refusal, sendJson: sendJson, addOutlines: addOutlines,
  };
})(window);
