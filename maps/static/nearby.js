/* The citizens' page: find where I am (geolocation or a street), list the open issues
 * around with distance and age, and say "me too" or follow one. Every text from the
 * server goes in with textContent.
 */
(function () {
  "use strict";
  const v = window.voirie;
  const data = v.pageData();
  const labels = data.labels;

  function explain(result) { return v.refusal(labels, result); }
  const SUPPORTED_KEY = "voirie.supported";
  const form = document.getElementById("voirie-search");
  const message = document.getElementById("voirie-message");
  const list = document.getElementById("voirie-list");
  const pager = document.getElementById("voirie-pager");
  const previous = document.getElementById("voirie-previous");
  const next = document.getElementById("voirie-next");

  const map = L.map("voirie-map", {maxZoom: 19});
  L.control.scale({imperial: false}).addTo(map);
  const outlines = v.addOutlines(map, data.background);
  if (outlines) map.fitBounds(outlines.getBounds()); else map.setView([0, 0], 2);
  const results = L.layerGroup().addTo(map);

  function supported() {
    try { return JSON.parse(localStorage.getItem(SUPPORTED_KEY) || "[]"); }
    catch (error) { return []; }
  }
  function remember(id) {
    const ids = supported();
    if (ids.indexOf(id) < 0) ids.push(id);
    localStorage.setItem(SUPPORTED_KEY, JSON.stringify(ids));
  }

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("voirie-error", Boolean(isError));
  }

  function age(days) {
    if (days <= 0) return labels.age_0;
    if (days === 1) return labels.age_1;
    return v.format(labels.age_n, {days: days});
  }

  function getJson(url) {
    return fetch(url, {headers: {Accept: "application/json"}}).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (payload) {
        return {ok: response.ok, status: response.status, payload: payload,
                statusText: response.statusText};
      });
    });
  }

  function supportersText(count) {
    return v.format(labels.supporters, {count: count});
  }

  function item(incident) {
    const li = v.el("li", "voirie-item");
    li.dataset.incident = String(incident.incident_id);
    const status = data.statuses[incident.status] || {label: incident.status};
    li.appendChild(v.el("h2", null, incident.service_name));
    li.appendChild(v.el("p", "meta", [
      status.label, v.format(labels.distance, {distance: Math.round(incident.distance_m)}),
      age(incident.age_days),
    ].join(" · ")));
    if (incident.street_name) li.appendChild(v.el("p", "meta street", incident.street_name));
    if (incident.description) li.appendChild(v.el("p", "text", incident.description));
    const counts = v.el("p", "meta counts");
    counts.appendChild(v.el("span", "reports",
                            v.format(labels.reports, {count: incident.report_count})));
    counts.appendChild(document.createTextNode(" · "));
    const supporters = v.el("span", "supporters", supportersText(incident.supporters));
    supporters.dataset.count = String(incident.supporters);
    counts.appendChild(supporters);
    li.appendChild(counts);

    const actions = v.el("div", "actions");
    const meToo = v.el("button", "me-too", labels.me_too);
    meToo.type = "button";
    if (supported().indexOf(incident.incident_id) >= 0) {
      meToo.disabled = true;
      meToo.textContent = labels.me_too_done;
    }
    const follow = v.el("div", "follow");
    const email = v.el("input");
    email.type = "email";
    email.name = "email";
    email.placeholder = labels.email;
    email.setAttribute("aria-label", labels.email);
    email.autocomplete = "email";
    const followButton = v.el("button", "secondary follow-button", labels.follow);
    followButton.type = "button";
    const unfollowButton = v.el("button", "secondary unfollow-button", labels.unfollow);
    unfollowButton.type = "button";
    [email, followButton, unfollowButton].forEach(function (n) { follow.appendChild(n); });
    const note = v.el("output", "voirie-message");
    actions.appendChild(meToo);
    actions.appendChild(follow);
    actions.appendChild(note);
    li.appendChild(actions);

    const base = data.api + "/incidents/" + incident.incident_id;
    function failed(result) {
      note.textContent = labels.error + " (" + result.status + ")" + labels.colon +
        explain(result);
      note.classList.add("voirie-error");
    }
    meToo.addEventListener("click", function () {
      const body = email.value.trim() ? {email: email.value.trim()} : {};
      meToo.disabled = true;
      v.sendJson("POST", base + "/supporters", body).then(function (result) {
        if (!result.ok) { meToo.disabled = false; failed(result); return; }
        supporters.textContent = supportersText(result.payload.supporters);
        supporters.dataset.count = String(result.payload.supporters);
        meToo.textContent = labels.me_too_done;
        note.classList.remove("voirie-error");
        note.textContent = result.payload.following ? labels.followed : "";
        remember(incident.incident_id);
      });
    });
    function subscription(method, done) {
      v.sendJson(method, base + "/followers", {email: email.value.trim()}).then(
        function (result) {
          if (!result.ok) { failed(result); return; }
          note.classList.remove("voirie-error");
          note.textContent = done;
        });
    }
    followButton.addEventListener("click", function () {
      subscription("POST", labels.followed);
    });
    unfollowButton.addEventListener("click", function () {
      subscription("DELETE", labels.unfollowed);
    });
    return li;
  }

  function marker(incident, li) {
    const status = data.statuses[incident.status] || {colour: "#555555"};
    const dot = L.circleMarker([incident.lat, incident.lon], {
      radius: 8, color: "#ffffff", weight: 2, fillColor: status.colour, fillOpacity: 0.9,
      className: "voirie-nearby-incident",
    });
    dot.bindPopup(function () {
      const box = v.el("div");
      box.appendChild(v.el("strong", null, incident.service_name));
      if (incident.description) box.appendChild(v.el("p", null, incident.description));
      return box;
    });
    dot.on("click", function () {
      li.scrollIntoView({behavior: "smooth", block: "nearest"});
    });
    return dot;
  }

  /* The list's message says how many it shows of how many there are; the pager moves
   * through pages of ``data.page_size``. */
  function counted(place, radius, answer) {
    const shown = answer.incidents.length;
    const values = {count: shown, radius: radius, place: place.label, total: answer.total,
                    first: answer.offset + 1, last: answer.offset + shown};
    const whole = shown === answer.total;
    say(v.format(!answer.total ? labels.none : whole ? labels.found : labels.found_page, values));
    const pages = Math.ceil(answer.total / data.page_size);
    pager.hidden = pages <= 1;
    document.getElementById("voirie-page").textContent = v.format(
      labels.page, {page: Math.floor(answer.offset / data.page_size) + 1, pages: pages});
    previous.disabled = answer.offset <= 0;
    next.disabled = answer.offset + shown >= answer.total;
    list.dataset.total = String(answer.total);
    list.dataset.offset = String(answer.offset);
  }

  function show(place, radius, answer) {
    const incidents = answer.incidents;
    results.clearLayers();
    list.replaceChildren();
    const centre = L.latLng(place.lat, place.lon);
    const circle = L.circle(centre, {radius: radius, color: "#2b5797", weight: 1,
                                     fillOpacity: 0.05, interactive: false});
    results.addLayer(circle);
    results.addLayer(L.circleMarker(centre, {radius: 6, color: "#2b5797", fillOpacity: 1,
                                             className: "voirie-here", interactive: false}));
    incidents.forEach(function (incident) {
      const li = item(incident);
      list.appendChild(li);
      results.addLayer(marker(incident, li));
    });
    map.fitBounds(circle.getBounds(), {padding: [10, 10], animate: false});
    counted(place, radius, answer);
  }

  function search(place, offset) {
    const radius = Number(form.elements.radius_m.value);
    say(labels.searching);
    const query = "?lat=" + encodeURIComponent(place.lat) + "&lon=" +
      encodeURIComponent(place.lon) + "&radius_m=" + encodeURIComponent(radius) +
      "&limit=" + data.page_size + "&offset=" + (offset || 0);
    getJson(data.api + "/nearby" + query).then(function (result) {
      if (!result.ok) {
        say(labels.error + labels.colon + explain(result), true);
        return;
      }
      show(place, radius, result.payload);
    });
  }
  previous.addEventListener("click", function () {
    search(current, Math.max(0, Number(list.dataset.offset) - data.page_size));
  });
  next.addEventListener("click", function () {
    search(current, Number(list.dataset.offset) + data.page_size);
  });

  let current = null;
  function go(place) { current = place; search(place); }

  document.getElementById("voirie-locate").addEventListener("click", function () {
    if (!navigator.geolocation) { say(labels.geo_denied, true); return; }
    say(labels.locating);
    navigator.geolocation.getCurrentPosition(function (position) {
      go({lon: position.coords.longitude, lat: position.coords.latitude, label: labels.here});
    }, function () { say(labels.geo_denied, true); }, {timeout: 10000, maximumAge: 60000});
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const q = form.elements.q.value.trim();
    if (!q) { if (current) search(current); return; }
    say(labels.searching);
    getJson(data.api + "/geocode?q=" + encodeURIComponent(q)).then(function (result) {
      if (!result.ok) {
        say(labels.error + labels.colon + explain(result), true);
        return;
      }
      const best = result.payload.matches[0];
      go({lon: best.lon, lat: best.lat, label: best.street_name});
    });
  });
  form.elements.radius_m.addEventListener("change", function () {
    if (current) search(current);
  });

  if (data.start) {
    go({lon: data.start.lon, lat: data.start.lat, label: labels.here});
  }
  document.getElementById("voirie-map").dataset.ready = "true";
})();
