/* voirie case page (/staff/incidents/{id}): reports, photos, map, history, and the
 * actions the signed-in person may take. Texts go in with textContent. */
(function () {
  "use strict";
  const v = window.voirie;
  const staff = window.VoirieStaff;
  const data = v.pageData();
  const L10N = data.labels;
  const incident = data.incident;
  const id = incident.incident_id;
  const message = document.getElementById("voirie-message");
  const api = data.api + "/incidents/" + id;
  const when = function (iso) { return staff.when(iso, data.zone, data.lang); };

  document.querySelectorAll("time.voirie-when").forEach(function (node) {
    node.textContent = when(node.getAttribute("datetime"));
  });

  function item(list, parts) {
    const li = document.createElement("li");
    parts.forEach(function (part) { if (part) li.appendChild(part); });
    list.appendChild(li);
    return li;
  }

  const reports = document.getElementById("voirie-reports");
  data.reports.forEach(function (r) {
    // Staff read what the citizen sent; moderation says what the public sees instead.
    const moderated = r.moderation || {state: "shown", hidden_photos: []};
    const li = item(reports, [
      v.el("strong", "", "#" + r.report_id + " — " + when(r.requested_at)),
      v.el("p", "text", r.description || L10N.no_description),
      moderated.state === "hidden" ? v.el("div", "voirie-moderated", L10N.hidden_text) : null,
      moderated.state === "edited" ? v.el("div", "voirie-moderated",
        v.format(L10N.edited_text, {text: moderated.public_description || ""})) : null,
    ]);
    const details = [];
    if (r.address) details.push(L10N.address + " : " + r.address);
    if (r.street_name) details.push(L10N.street + " : " + r.street_name);
    if (r.position_m !== null && r.position_m !== undefined) {
      details.push(L10N.position + " : " + v.format(L10N.position_value,
        {position: Math.round(r.position_m), side: L10N["side_" + r.side] || r.side || "?"}));
    }
    details.forEach(function (text) { li.appendChild(v.el("div", "meta", text)); });
    if (r.media_url) {
      const photos = v.el("div", "voirie-photos");
      const link = document.createElement("a");
      // A photo hidden from the public left the public folder: staff get it from theirs.
      const name = r.media_url.replace(/^.*\//, "");
      const hidden = moderated.hidden_photos.indexOf(name) >= 0;
      const url = hidden ? data.root + "/staff/photos/" + name : r.media_url;
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      // A photo stored here has a thumbnail beside it (NAME.thumb.jpg); another site's
      // photo is only linked (the page loads nothing from elsewhere).
      const own = /^(.*\/[0-9a-f]{64})\.jpg$/.exec(new URL(url, location.href).origin ===
        location.origin ? url : "");
      if (own) {
        const img = document.createElement("img");
        img.src = own[1] + ".thumb.jpg";
        img.loading = "lazy";
        img.alt = v.format(L10N.photo, {id: r.report_id});
        link.appendChild(img);
      } else {
        link.textContent = v.format(L10N.photo, {id: r.report_id});
      }
      photos.appendChild(link);
      if (hidden) photos.appendChild(v.el("div", "voirie-moderated", L10N.hidden_photo));
      li.appendChild(photos);
    }
  });

  const assignments = document.getElementById("voirie-assignments");
  data.assignments.forEach(function (a) {
    const who = a.rule_id ? v.format(L10N.rule, {rule: a.rule_id, version: a.rule_version})
      : v.format(L10N.by_hand, {actor: a.actor});
    item(assignments, [
      v.el("strong", "", when(a.assigned_at) + " — " + (data.teams[a.team] || a.team)),
      v.el("div", "meta", who),
      v.el("div", "", a.reason),
    ]);
  });

  const history = document.getElementById("voirie-history");
  data.history.forEach(function (e) {
    item(history, [
      v.el("strong", "", when(e.at) + " — " + (data.kinds[e.kind] || e.kind) + " (" + e.actor + ")"),
      e.reason ? v.el("div", "", e.reason) : null,
    ]);
  });

  // The view is set before any layer is added (Leaflet draws a layer on a map with a view).
  const map = L.map("voirie-map");
  const points = [[incident.lat, incident.lon]].concat(data.reports.map(function (r) {
    return [r.lat, r.lon];
  }));
  map.fitBounds(L.latLngBounds(points).pad(0.5), {maxZoom: 18});
  v.addOutlines(map, data.background);
  // The incident's pin: those who may change its status may drag it where the problem is.
  const pin = L.marker([incident.lat, incident.lon], {
    draggable: Boolean(data.may.status), title: "#" + id, alt: "#" + id,
    icon: L.divIcon({className: "voirie-pin", iconSize: [22, 22]}),  // no image to load
  }).addTo(map);
  pin.getElement().style.background = data.colours[incident.status];
  const moveForm = document.getElementById("voirie-move-form");
  if (moveForm) {
    pin.bindTooltip(L10N.drag);
    pin.on("dragend", function () { moveForm.hidden = false; });
    moveForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const where = pin.getLatLng();
      staff.send(api + "/location", {
        lon: Number(where.lng.toFixed(7)), lat: Number(where.lat.toFixed(7)),
        reason: moveForm.elements.reason.value,
      }).then(function () { reload(); }).catch(failed);
    });
  }
  data.reports.forEach(function (r) {
    L.circleMarker([r.lat, r.lon], {radius: 5, color: "#2b5797", weight: 2})
      .bindTooltip("#" + r.report_id).addTo(map);
  });

  function reload(text) {
    message.textContent = text || L10N.done;
    setTimeout(function () { location.reload(); }, 400);
  }
  function failed(error) {
    message.textContent = L10N.error + " : " + error.message;
    message.classList.add("voirie-error");
  }

  const statusForm = document.getElementById("voirie-status-form");
  if (statusForm) {
    const canned = statusForm.elements.canned;
    if (canned) {
      canned.addEventListener("change", function () {
        if (canned.value !== "") statusForm.elements.reason.value = data.canned[canned.value].text;
      });
    }
    statusForm.addEventListener("submit", function (event) {
      event.preventDefault();
      staff.send(api + "/status", {
        status: statusForm.elements.status.value, reason: statusForm.elements.reason.value,
      }).then(function () { reload(); }).catch(failed);
    });
  }

  const assignForm = document.getElementById("voirie-assign-form");
  if (assignForm) {
    assignForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const team = assignForm.elements.team ? assignForm.elements.team.value : data.triage;
      staff.send(api + "/assignment", {team: team, reason: assignForm.elements.reason.value})
        .then(function () { reload(); }).catch(failed);
    });
  }

  const categoryForm = document.getElementById("voirie-category-form");
  if (categoryForm) {
    categoryForm.addEventListener("submit", function (event) {
      event.preventDefault();
      staff.send(api + "/category", {
        service_code: categoryForm.elements.service_code.value,
        reason: categoryForm.elements.reason.value,
      }).then(function () { reload(); }).catch(failed);
    });
  }

  const commentForm = document.getElementById("voirie-comment");
  if (commentForm) {
    commentForm.addEventListener("submit", function (event) {
      event.preventDefault();
      staff.send(api + "/comments", {text: commentForm.elements.text.value})
        .then(function () { reload(); }).catch(failed);
    });
  }

  // The duplicate score: calibrated on the city's labelled history where it has one; none
  // for an incident staff have marked "not a duplicate" (the decision, not a guess).
  function likeness(d) {
    if (d.not_duplicate) {
      return " — " + L10N.marked_not_duplicate;
    }
    if (d.likelihood !== null) {
      return " — " + v.format(L10N.likelihood, {percent: Math.round(100 * d.likelihood)});
    }
    return d.score !== null ? " — " + v.format(L10N.score, {score: d.score.toFixed(2)}) : "";
  }

  const duplicates = document.getElementById("voirie-duplicates");
  if (!data.duplicates.length) {
    duplicates.appendChild(v.el("li", "", v.format(L10N.no_duplicates, {radius: data.radius_m})));
  }
  data.duplicates.forEach(function (d) {
    const link = v.el("a", "", "#" + d.incident_id);
    link.href = data.root + "/staff/incidents/" + d.incident_id + (data.lang !== "fr" ? "?lang=" + data.lang : "");
    const li = item(duplicates, [
      link,
      v.el("span", "", " " + d.service_name + " — " + (d.street_name || "") + " — " +
        v.format(L10N.distance, {distance: d.distance_m}) + " — " + (data.statuses[d.status] || d.status) +
        likeness(d)),
    ]);
    if (data.may.merge && !d.not_duplicate) {  // a marked pair cannot be merged
      const merge = v.el("button", "", L10N.merge_here);
      merge.type = "button";
      merge.setAttribute("data-merge", d.incident_id);
      merge.addEventListener("click", function () {
        staff.send(data.api + "/incidents/" + d.incident_id + "/merge",
          {into: id, reason: v.format(L10N.merge_reason, {id: id})})
          .then(function () { reload(); }).catch(failed);
      });
      const apart = v.el("button", "secondary", L10N.not_duplicate);
      apart.type = "button";
      apart.setAttribute("data-apart", d.incident_id);
      apart.addEventListener("click", function () {
        staff.send(api + "/not-duplicate",
          {other: d.incident_id, reason: v.format(L10N.not_duplicate_reason, {id: id})})
          .then(function () { reload(); }).catch(failed);
      });
      li.appendChild(document.createTextNode(" "));
      li.appendChild(merge);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(apart);
    }
  });
})();
