/* voirie staff queue (/staff/): the incidents table beside the map, filters in the URL,
 * live refresh by polling, bulk actions on a selection. Texts go in with textContent. */
(function () {
  "use strict";
  const v = window.voirie;
  const staff = window.VoirieStaff;
  const data = v.pageData();
  const L10N = data.labels;
  const form = document.getElementById("voirie-filters");
  const body = document.querySelector("#voirie-queue tbody");
  const message = document.getElementById("voirie-message");
  const statusLabel = {};
  const statusColour = {};
  data.statuses.forEach(function (s) { statusLabel[s.code] = s.label; statusColour[s.code] = s.colour; });
  const PAGE = 50;
  let offset = 0;
  let seen = null;  // ids shown by the previous answer of the same query
  let queryKey = "";
  const selected = new Set();
  const table = document.getElementById("voirie-queue");
  let loads = 0;

  const map = L.map("voirie-map");
  const outlines = v.addOutlines(map, data.background);
  if (outlines) map.fitBounds(outlines.getBounds()); else map.setView([48.8566, 2.3522], 12);
  const markers = L.layerGroup().addTo(map);

  // Filters come from the URL (a team's view is one link: /staff/?team=CODE).
  const params = new URLSearchParams(location.search);
  Array.from(form.elements).forEach(function (field) {
    if (!field.name || !params.has(field.name)) return;
    if (field.type === "checkbox") field.checked = params.get(field.name) === "true";
    else field.value = params.get(field.name);
  });
  offset = parseInt(params.get("offset") || "0", 10) || 0;

  function filters() {
    const query = new URLSearchParams();
    Array.from(form.elements).forEach(function (field) {
      if (!field.name) return;
      if (field.type === "checkbox") { if (field.checked) query.set(field.name, "true"); }
      else if (field.value) query.set(field.name, field.value);
    });
    if (data.lang !== "fr") query.set("lang", data.lang);
    return query;
  }

  function cell(row, text, className) {
    const td = v.el("td", className, text);
    row.appendChild(td);
    return td;
  }

  function draw(answer, fresh) {
    const counts = document.getElementById("voirie-counts");
    counts.textContent = "";
    data.statuses.forEach(function (s) {
      const item = v.el("li", "", s.label + " : " + (answer.counts[s.code] || 0));
      item.setAttribute("data-status", s.code);
      counts.appendChild(item);
    });
    body.textContent = "";
    markers.clearLayers();
    const lang = data.lang;
    answer.incidents.forEach(function (incident) {
      const id = incident.incident_id;
      const row = document.createElement("tr");
      row.id = "incident-" + id;
      row.setAttribute("data-id", id);
      if (incident.overdue) row.classList.add("overdue");
      if (fresh.has(id)) row.classList.add("highlight");
      const pick = v.el("td");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = id;
      box.checked = selected.has(id);
      box.setAttribute("aria-label", L10N.select + " " + id);
      box.addEventListener("change", function () {
        if (box.checked) selected.add(id); else selected.delete(id);
        showSelection();
      });
      pick.appendChild(box);
      row.appendChild(pick);
      const link = v.el("a", "", "#" + id);
      link.href = data.root + "/staff/incidents/" + id + (lang !== "fr" ? "?lang=" + lang : "");
      const idCell = v.el("td");
      idCell.appendChild(link);
      row.appendChild(idCell);
      cell(row, incident.service_name);
      cell(row, incident.street_name || "");
      cell(row, statusLabel[incident.status] || incident.status, "status");
      const teamCell = v.el("td");
      const teamLink = v.el("a", "", data.teams[incident.team] || incident.team);
      teamLink.href = "?team=" + encodeURIComponent(incident.team) +
        (data.lang !== "fr" ? "&lang=" + data.lang : "");  // one click to the team's view
      teamCell.appendChild(teamLink);
      row.appendChild(teamCell);
      cell(row, staff.when(incident.first_reported_at, data.zone, lang));
      const due = cell(row, staff.when(incident.due_at, data.zone, lang));
      if (incident.overdue) due.appendChild(v.el("strong", "voirie-error", " " + L10N.late));
      cell(row, incident.priority);
      cell(row, incident.report_count);
      body.appendChild(row);
      const marker = L.circleMarker([incident.lat, incident.lon], {
        radius: 7, color: incident.overdue ? "#000" : "#fff", weight: incident.overdue ? 3 : 1,
        fillColor: statusColour[incident.status], fillOpacity: 0.9,
      });
      marker.bindTooltip("#" + id + " " + v.escapeHtml(incident.service_name));
      marker.on("click", function () {
        row.scrollIntoView({block: "center"});
        row.classList.add("highlight");
      });
      marker.addTo(markers);
    });
    if (!answer.incidents.length) message.textContent = L10N.none;
    const last = Math.min(answer.offset + answer.incidents.length, answer.total);
    document.getElementById("voirie-shown").textContent = answer.total
      ? v.format(L10N.shown, {first: answer.offset + 1, last: last, total: answer.total}) : "";
    document.getElementById("voirie-previous").disabled = answer.offset === 0;
    document.getElementById("voirie-next").disabled = last >= answer.total;
  }

  function load(quiet) {
    const query = filters();
    const key = query.toString();
    if (key !== queryKey) { seen = null; queryKey = key; }
    if (offset) query.set("offset", offset);
    history.replaceState(null, "", "?" + query.toString());
    query.delete("lang");
    query.set("limit", PAGE);
    if (!quiet) message.textContent = L10N.loading;
    return staff.send(data.api + "/queue?" + query.toString()).then(function (answer) {
      const fresh = new Set();
      answer.incidents.forEach(function (i) {
        if (seen !== null && !seen.has(i.incident_id)) fresh.add(i.incident_id);
      });
      seen = new Set(answer.incidents.map(function (i) { return i.incident_id; }));
      const time = new Intl.DateTimeFormat(data.lang === "en" ? "en-GB" : "fr-FR",
        {timeZone: data.zone, timeStyle: "medium"}).format(new Date());
      message.textContent = v.format(L10N.refreshed, {time: time}) +
        (fresh.size ? " — " + v.format(L10N.new_rows, {count: fresh.size}) : "");
      draw(answer, fresh);
      loads += 1;
      table.setAttribute("data-loads", loads);  // one more answer drawn (tests wait on it)
    }).catch(function (error) {
      message.textContent = L10N.error + " : " + error.message;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    offset = 0;
    load(false);
  });
  document.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () {
      const sort = form.elements.sort;
      const order = form.elements.order;
      if (sort.value === button.getAttribute("data-sort")) {
        order.value = order.value === "asc" ? "desc" : "asc";
      } else {
        sort.value = button.getAttribute("data-sort");
      }
      offset = 0;
      load(false);
    });
  });
  document.getElementById("voirie-previous").addEventListener("click", function () {
    offset = Math.max(0, offset - PAGE); load(false);
  });
  document.getElementById("voirie-next").addEventListener("click", function () {
    offset += PAGE; load(false);
  });
  document.getElementById("voirie-select-all").addEventListener("change", function (event) {
    body.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      box.checked = event.target.checked;
      const id = parseInt(box.value, 10);
      if (box.checked) selected.add(id); else selected.delete(id);
    });
    showSelection();
  });

  const bulk = document.getElementById("voirie-bulk");
  function showSelection() {
    if (bulk) {
      document.getElementById("voirie-selected").textContent =
        v.format(L10N.selected, {count: selected.size});
    }
  }
  if (bulk) {
    showSelection();
    // Only the fields of the chosen action are shown.
    const showFields = function () {
      const action = bulk.elements.action.value;
      bulk.elements.status.hidden = action !== "status";
      if (bulk.elements.team) bulk.elements.team.hidden = action !== "assign";
    };
    bulk.elements.action.addEventListener("change", showFields);
    showFields();
    bulk.addEventListener("submit", function (event) {
      event.preventDefault();
      const action = bulk.elements.action.value;
      const payload = {action: action, ids: Array.from(selected), reason: bulk.elements.reason.value};
      if (action === "status") payload.status = bulk.elements.status.value;
      if (action === "assign") payload.team = bulk.elements.team.value;
      staff.send(data.api + "/bulk", payload).then(function (answer) {
        selected.clear();
        showSelection();
        return load(true).then(function () {
          message.textContent = v.format(L10N.done, {count: answer.changed.length});
        });
      }).catch(function (error) {
        message.textContent = L10N.error + " : " + error.message;
      });
    });
  }

  load(false);
  setInterval(function () { if (!document.hidden) load(true); }, data.refresh_s * 1000);
})();
