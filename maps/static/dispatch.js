/* The dispatch map: markers from the page's columnar data block, clustered
 * (Leaflet.markercluster), one layer-control entry per team, a heatmap (leaflet.heat),
 * filters, and popups built on demand with textContent. Status changes and reassignments
 * go to the staff API with the dispatcher's Bearer token (sessionStorage, this tab only).
 */
(function () {
  "use strict";
  const v = window.voirie;
  const data = v.pageData();
  const labels = data.labels;
  const inc = data.incidents;
  const count = inc.id.length;
  const MINUTES_PER_DAY = 1440;
  const TOKEN_KEY = "voirie.token";
  const mapElement = document.getElementById("voirie-map");
  const markerClass = mapElement.dataset.markerClass;
  const statusIndex = {};
  data.statuses.forEach(function (s, i) { statusIndex[s.code] = i; });
  const statusLabel = {};
  data.statuses.forEach(function (s) { statusLabel[s.code] = s.label; });
  const teamIndex = {};
  data.teams.forEach(function (t, i) { teamIndex[t.code] = i; });

  const map = L.map(mapElement, {maxZoom: 19, zoomControl: true});
  L.control.scale({imperial: false}).addTo(map);
  const outlines = v.addOutlines(map, data.background);
  // On a phone the filters start folded, so the map gets the screen.
  const panel = document.getElementById("voirie-panel");
  const narrow = window.matchMedia("(max-width: 600px)").matches;
  if (narrow) panel.open = false;
  panel.addEventListener("toggle", function () { map.invalidateSize(); });
  // The view first: layers added to a map without one wait for it, then all announce
  // themselves at once.
  if (count) {
    let south = Infinity, west = Infinity, north = -Infinity, east = -Infinity;
    for (let i = 0; i < count; i++) {
      south = Math.min(south, inc.lat[i]); north = Math.max(north, inc.lat[i]);
      west = Math.min(west, inc.lon[i]); east = Math.max(east, inc.lon[i]);
    }
    // Keep the east-most markers clear of the legend (bottom right) on wide screens.
    map.fitBounds([[south, west], [north, east]], {
      paddingTopLeft: [30, 30], paddingBottomRight: [narrow ? 30 : 200, 30], maxZoom: 17,
      animate: false,
    });
  } else if (outlines) {
    map.fitBounds(outlines.getBounds(), {animate: false});
  } else {
    map.setView([0, 0], 2);
  }

  function isOverdue(i) {
    return inc.due[i] !== null && inc.due[i] < data.now && data.statuses[inc.status[i]].open;
  }

  function markerOptions(i) {
    const overdue = isOverdue(i);
    return {
      radius: overdue ? 9 : 7,
      color: overdue ? "#000000" : data.teams[inc.team[i]].colour,
      weight: overdue ? 3 : 2,
      fillColor: data.statuses[inc.status[i]].colour,
      fillOpacity: 0.85,
      className: markerClass + " voirie-status-" + data.statuses[inc.status[i]].code +
        (overdue ? " voirie-overdue" : ""),
    };
  }

  const markers = new Array(count);
  for (let i = 0; i < count; i++) {
    const marker = L.circleMarker([inc.lat[i], inc.lon[i]], markerOptions(i));
    marker.voirieIndex = i;
    markers[i] = marker;
  }

  const cluster = L.markerClusterGroup({
    chunkedLoading: true,
    showCoverageOnHover: false,
    disableClusteringAtZoom: 18,
    maxClusterRadius: 50,
  });
  cluster.addTo(map);
  const heat = L.heatLayer([], {radius: 18, blur: 16, maxZoom: 16});

  // One entry per team in the layer control; each toggles that team's incidents in the
  // single cluster group (separate cluster groups would not cluster across teams).
  const teamShown = data.teams.map(function () { return true; });
  const perTeam = data.teams.map(function () { return 0; });
  for (let i = 0; i < count; i++) perTeam[inc.team[i]] += 1;
  const overlays = {};
  data.teams.forEach(function (team, k) {
    if (!perTeam[k]) return;
    const proxy = L.layerGroup();
    proxy.voirieTeam = k;
    proxy.addTo(map);
    const label = '<span class="voirie-team-swatch" style="background:' + team.colour +
      '"></span>' + v.escapeHtml(team.name) + " (" + perTeam[k] + ")";
    overlays[label] = proxy;
  });
  overlays[v.escapeHtml(labels.heatmap)] = heat;
  L.control.layers(null, overlays, {collapsed: true, sortLayers: false}).addTo(map);
  map.on("overlayadd overlayremove", function (event) {
    const k = event.layer.voirieTeam;
    const shown = event.type === "overlayadd";
    // Leaflet also announces the layers added at start: only a change redraws.
    if (k !== undefined && teamShown[k] !== shown) {
      teamShown[k] = shown;
      refresh();
    }
  });

  const form = document.getElementById("voirie-filters");
  const counter = document.getElementById("voirie-count");

  function filters() {
    const statuses = {};
    form.querySelectorAll('input[name="status"]').forEach(function (box) {
      if (box.checked) statuses[statusIndex[box.value]] = true;
    });
    return {
      service: form.elements.service.value === "" ? null : Number(form.elements.service.value),
      statuses: statuses,
      age: form.elements.age.value,
      overdue: form.elements.overdue.checked,
    };
  }

  function kept(i, f) {
    if (!teamShown[inc.team[i]]) return false;
    if (f.service !== null && inc.service[i] !== f.service) return false;
    if (!f.statuses[inc.status[i]]) return false;
    if (f.overdue && !isOverdue(i)) return false;
    if (f.age) {
      const days = (data.now - inc.first[i]) / MINUTES_PER_DAY;
      if (f.age === "older" ? days <= 30 : days >= Number(f.age)) return false;
    }
    return true;
  }

  function refresh() {
    const f = filters();
    const shown = [];
    for (let i = 0; i < count; i++) if (kept(i, f)) shown.push(markers[i]);
    cluster.clearLayers();
    cluster.addLayers(shown);
    heat.setLatLngs(shown.map(function (m) { return m.getLatLng(); }));
    counter.textContent = v.format(labels.shown, {shown: shown.length, total: count});
    counter.dataset.shown = String(shown.length);
  }
  form.addEventListener("change", refresh);

  function when(minutes) {
    if (minutes === null || minutes === undefined) return "—";
    return new Date(minutes * 60000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function select(name, options, current) {
    const box = v.el("select");
    box.name = name;
    options.forEach(function (option) {
      const item = v.el("option", null, option.label);
      item.value = option.value;
      if (option.value === current) item.selected = true;
      box.appendChild(item);
    });
    return box;
  }

  function actionForm(i, title, field, options, current, path) {
    const formNode = v.el("form", "voirie-action");
    formNode.appendChild(v.el("strong", null, title));
    const choice = select(field, options, current);
    const reason = v.el("input");
    reason.name = "reason";
    reason.placeholder = labels.reason;
    reason.required = true;
    const button = v.el("button", null, title);
    button.type = "submit";
    const message = v.el("output", "voirie-message");
    [choice, reason, button, message].forEach(function (n) { formNode.appendChild(n); });
    formNode.addEventListener("submit", function (event) {
      event.preventDefault();
      const body = {reason: reason.value};
      body[field] = choice.value;
      act(i, path, body, message);
    });
    return formNode;
  }

  function popupContent(i) {
    const root = v.el("div", "voirie-popup");
    root.dataset.incident = String(inc.id[i]);
    const service = data.services[inc.service[i]];
    const rows = [
      [labels.incident, "n° " + inc.id[i]],
      [labels.service, service.name + " (" + service.code + ")"],
      [labels.street, inc.street[i] >= 0 ? data.streets[inc.street[i]] : "—"],
      [labels.team, data.teams[inc.team[i]].name],
      [labels.status, data.statuses[inc.status[i]].label],
      [labels.priority, inc.priority[i] === null ? "—" : inc.priority[i]],
      [labels.reports, inc.reports[i]],
      [labels.supporters, inc.supporters[i]],
      [labels.first, when(inc.first[i])],
      [labels.last, when(inc.last[i])],
      [labels.due, when(inc.due[i]) + (isOverdue(i) ? " — " + labels.overdue : "")],
    ];
    const table = v.el("table");
    rows.forEach(function (row) {
      const tr = v.el("tr");
      const th = v.el("th", null, row[0]);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(v.el("td", null, row[1]));
      table.appendChild(tr);
    });
    root.appendChild(table);
    const statusOptions = data.statuses.map(function (s) {
      return {value: s.code, label: s.label};
    });
    const teamOptions = data.teams.map(function (t) { return {value: t.code, label: t.name}; });
    root.appendChild(actionForm(i, labels.set_status, "status", statusOptions,
                                data.statuses[inc.status[i]].code, "status"));
    root.appendChild(actionForm(i, labels.reassign, "team", teamOptions,
                                data.teams[inc.team[i]].code, "assignment"));
    return root;
  }

  function restyle(i) {
    const old = markers[i];
    const fresh = L.circleMarker(old.getLatLng(), markerOptions(i));
    fresh.voirieIndex = i;
    markers[i] = fresh;
  }

  function act(i, path, body, message) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    message.className = "voirie-message";
    if (!token) {
      message.textContent = labels.token_missing;
      message.classList.add("voirie-error");
      return;
    }
    v.sendJson("POST", data.api + "/incidents/" + inc.id[i] + "/" + path, body,
               {Authorization: "Bearer " + token})
      .then(function (result) {
        if (!result.ok) {
          // A refused status change lists the statuses allowed, in the page's words.
          const allowed = ((result.payload && result.payload.allowed) || []).map(
            function (code) { return statusLabel[code] || code; });
          message.textContent = labels.failed + " (" + result.status + ")" + labels.colon +
            v.refusal(labels, result, {allowed: allowed.join(", ")});
          message.classList.add("voirie-error");
          return;
        }
        // The API answers with the incident as stored: show that, not what was asked.
        const stored = result.payload || {};
        const status = stored.status !== undefined ? stored.status : body.status;
        const team = stored.team !== undefined ? stored.team : body.team;
        if (statusIndex[status] !== undefined) inc.status[i] = statusIndex[status];
        if (teamIndex[team] !== undefined) inc.team[i] = teamIndex[team];
        if (stored.due_at !== undefined) {
          inc.due[i] = stored.due_at === null ? null
            : Math.floor(Date.parse(stored.due_at) / 60000);
        }
        restyle(i);
        refresh();
        openPopup(i, labels.done);  // redrawn with the incident as stored now
      })
      .catch(function (error) {
        message.textContent = labels.failed + ": " + error;
        message.classList.add("voirie-error");
      });
  }

  // One popup, reused: redrawing it after an action never leaves a fading copy behind.
  const popup = L.popup({maxWidth: 380, minWidth: 260});
  function openPopup(i, note) {
    const content = popupContent(i);
    if (note) content.insertBefore(v.el("p", "voirie-done", note), content.firstChild);
    popup.setLatLng(markers[i].getLatLng()).setContent(content);
    if (!popup.isOpen()) popup.openOn(map);
  }
  cluster.on("click", function (event) { openPopup(event.layer.voirieIndex); });

  // A link to one incident (#incident=123, e.g. from a notification) zooms to it and
  // opens its popup, if it is on this map.
  function openLinked() {
    const match = /incident=(\d+)/.exec(window.location.hash);
    if (!match) return;
    const i = inc.id.indexOf(Number(match[1]));
    if (i < 0 || !cluster.hasLayer(markers[i])) return;
    cluster.zoomToShowLayer(markers[i], function () { openPopup(i); });
  }
  window.addEventListener("hashchange", openLinked);

  const tokenForm = document.getElementById("voirie-token");
  const tokenState = tokenForm.querySelector(".voirie-token-state");
  if (sessionStorage.getItem(TOKEN_KEY)) tokenState.textContent = labels.token_saved;
  tokenForm.addEventListener("submit", function (event) {
    event.preventDefault();
    const value = tokenForm.elements.token.value.trim();
    if (value) {
      sessionStorage.setItem(TOKEN_KEY, value);
      tokenState.textContent = labels.token_saved;
    }
    tokenForm.elements.token.value = "";
  });

  refresh();
  openLinked();
  mapElement.dataset.ready = "true";
})();
