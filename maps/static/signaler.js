/* The citizens' report form: place the pin, choose the category and answer its questions,
 * describe, add photos (resized here to the server's limits), then see the open problems
 * of the same group around the pin ("is it one of these?") before sending.
 * Every text from the server goes in with textContent.
 */
(function () {
  "use strict";
  const v = window.voirie;
  const data = v.pageData();
  const labels = data.labels;
  const rules = data.photos;

  const form = document.getElementById("voirie-report");
  const message = document.getElementById("voirie-message");
  const placeText = document.getElementById("voirie-place");
  const select = document.getElementById("voirie-service");
  const categorySearch = document.getElementById("voirie-category-search");
  const categoryCount = document.getElementById("voirie-category-count");
  const questions = document.getElementById("voirie-questions");
  const photoInput = document.getElementById("voirie-photos");
  const photoList = document.getElementById("voirie-photo-list");
  const duplicates = document.getElementById("voirie-duplicates");
  const duplicateList = document.getElementById("voirie-duplicate-list");
  const sendButton = document.getElementById("voirie-send");
  const mapBox = document.getElementById("voirie-map");

  const services = {};
  data.groups.forEach(function (group) {
    group.services.forEach(function (service) {
      services[service.code] = Object.assign({group: group.code, groupName: group.name}, service);
    });
  });

  let place = null;
  let checked = false;
  let photos = [];
  let key = newKey();

  function newKey() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("voirie-error", Boolean(isError));
  }

  function failed(result) {
    say(labels.error + " (" + result.status + ")" + labels.colon + v.refusal(labels, result),
        true);
  }

  /* A change of place or category means a new check for problems already reported. */
  function unchecked() {
    checked = false;
    duplicates.hidden = true;
    duplicateList.replaceChildren();
    sendButton.textContent = labels.check;
  }

  // --- 1. where ------------------------------------------------------------------------
  const map = L.map("voirie-map", {maxZoom: 19});
  L.control.scale({imperial: false}).addTo(map);
  const outlines = v.addOutlines(map, data.background);
  if (outlines) map.fitBounds(outlines.getBounds()); else map.setView([0, 0], 2);
  let pin = null;

  function setPlace(lon, lat, label, address) {
    place = {lon: lon, lat: lat, label: label, address: address || null};
    const at = L.latLng(lat, lon);
    if (pin) pin.setLatLng(at);
    else {
      pin = L.circleMarker(at, {radius: 9, color: "#ffffff", weight: 3, fillColor: "#b00020",
                                fillOpacity: 1, className: "voirie-pin", interactive: false});
      pin.addTo(map);
    }
    map.setView(at, Math.max(map.getZoom(), 17), {animate: false});
    placeText.textContent = v.format(labels.place_set, {place: label});
    mapBox.dataset.pinned = "true";
    unchecked();
  }

  map.on("click", function (event) {
    setPlace(event.latlng.lng, event.latlng.lat, labels.on_map);
  });
  mapBox.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target === mapBox) {
      event.preventDefault();
      const centre = map.getCenter();
      setPlace(centre.lng, centre.lat, labels.on_map);
    }
  });

  document.getElementById("voirie-locate").addEventListener("click", function () {
    if (!navigator.geolocation) { say(labels.geo_denied, true); return; }
    say(labels.locating);
    navigator.geolocation.getCurrentPosition(function (position) {
      say("");
      setPlace(position.coords.longitude, position.coords.latitude, labels.here);
    }, function () { say(labels.geo_denied, true); }, {timeout: 10000, maximumAge: 60000});
  });

  function findAddress() {
    const q = form.elements.address.value.trim();
    if (q.length < 2) return;
    say(labels.searching);
    fetch(data.api + "/geocode?q=" + encodeURIComponent(q),
          {headers: {Accept: "application/json"}}).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (payload) {
        const result = {ok: response.ok, status: response.status, payload: payload,
                        statusText: response.statusText};
        if (!result.ok) { failed(result); return; }
        const best = payload.matches[0];
        say("");
        setPlace(best.lon, best.lat, best.street_name, q);
      });
    });
  }
  document.getElementById("voirie-find").addEventListener("click", findAddress);
  form.elements.address.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); findAddress(); }
  });

  // --- 2. what -------------------------------------------------------------------------
  function words(text) {
    return String(text).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function fillCategories(query) {
    const wanted = words(query).split(/[^a-z0-9]+/).filter(Boolean);
    const current = select.value;
    select.replaceChildren();
    const none = v.el("option", null, labels.choose);
    none.value = "";
    select.appendChild(none);
    let count = 0;
    data.groups.forEach(function (group) {
      const matching = group.services.filter(function (service) {
        const haystack = words([group.name, service.name].concat(service.keywords).join(" "));
        return wanted.every(function (word) { return haystack.indexOf(word) >= 0; });
      });
      if (!matching.length) return;
      const optgroup = document.createElement("optgroup");
      optgroup.label = group.name;
      matching.forEach(function (service) {
        const option = v.el("option", null, service.name);
        option.value = service.code;
        optgroup.appendChild(option);
      });
      select.appendChild(optgroup);
      count += matching.length;
    });
    if (count === 1 && wanted.length) select.value = select.options[1].value;
    else if (current) select.value = current;
    if (select.value !== current) showQuestions();
    categoryCount.textContent = wanted.length ? v.format(labels.categories_found, {count: count})
      : "";
  }
  categorySearch.addEventListener("input", function () { fillCategories(categorySearch.value); });
  categorySearch.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); select.focus(); }
  });

  function question(attribute) {
    const id = "voirie-attribute-" + attribute.code;
    const text = attribute.description + (attribute.required ? " (" + labels.required + ")" : "");
    if (attribute.datatype === "multivaluelist") {
      const set = v.el("fieldset", "voirie-question");
      set.appendChild(v.el("legend", null, text));
      attribute.values.forEach(function (value, i) {
        const label = v.el("label", "voirie-choice");
        const box = v.el("input");
        box.type = "checkbox";
        box.id = id + "-" + i;
        box.name = "attribute:" + attribute.code;
        box.value = value.key;
        label.appendChild(box);
        label.appendChild(document.createTextNode(value.name));
        set.appendChild(label);
      });
      return set;
    }
    const label = v.el("label", "voirie-field", text);
    label.htmlFor = id;
    let input;
    if (attribute.datatype === "singlevaluelist") {
      input = v.el("select");
      const none = v.el("option", null, labels.choose);
      none.value = "";
      input.appendChild(none);
      attribute.values.forEach(function (value) {
        const option = v.el("option", null, value.name);
        option.value = value.key;
        input.appendChild(option);
      });
    } else if (attribute.datatype === "text") {
      input = v.el("textarea");
      input.rows = 2;
      input.maxLength = 500;
    } else {
      input = v.el("input");
      input.type = attribute.datatype === "number" ? "number" :
        attribute.datatype === "datetime" ? "datetime-local" : "text";
      if (input.type === "number") input.step = "any";
      input.maxLength = 500;
    }
    input.id = id;
    input.name = "attribute:" + attribute.code;
    if (attribute.required) {
      input.required = true;
      input.setAttribute("aria-required", "true");
    }
    label.appendChild(input);
    return label;
  }

  function showQuestions() {
    questions.replaceChildren();
    unchecked();
    const service = services[select.value];
    if (!service || !service.attributes.length) return;
    const set = v.el("fieldset", "voirie-questions");
    set.appendChild(v.el("legend", null, labels.questions));
    service.attributes.forEach(function (attribute) { set.appendChild(question(attribute)); });
    questions.appendChild(set);
  }
  select.addEventListener("change", showQuestions);

  /* The answers as the API takes them (code -> values), or the first required question
   * left unanswered. */
  function answers() {
    const service = services[select.value];
    const given = {};
    let missing = null;
    service.attributes.forEach(function (attribute) {
      const fields = form.querySelectorAll('[name="attribute:' + attribute.code + '"]');
      const values = [];
      fields.forEach(function (field) {
        if (field.type === "checkbox" ? field.checked : field.value.trim()) {
          values.push(field.value.trim());
        }
      });
      if (values.length) given[attribute.code] = values;
      else if (attribute.required && !missing) missing = {attribute: attribute, field: fields[0]};
    });
    return {given: given, missing: missing};
  }

  // --- 3. photos -----------------------------------------------------------------------
  function toBlob(canvas, quality) {
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", quality); });
  }

  /* A JPEG of the photo within the server's limits: at most max_side_px and max_pixels,
   * and max_bytes (lower quality first, then smaller). */
  function resize(file) {
    return createImageBitmap(file, {imageOrientation: "from-image"}).then(function (bitmap) {
      const area = bitmap.width * bitmap.height;
      let scale = Math.min(1, rules.max_side_px / Math.max(bitmap.width, bitmap.height),
                           Math.sqrt(rules.max_pixels / area));
      function attempt(quality) {
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(bitmap.width * scale));
        canvas.height = Math.max(1, Math.round(bitmap.height * scale));
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        return toBlob(canvas, quality).then(function (blob) {
          if (blob.size <= rules.max_bytes) return {blob: blob, canvas: canvas};
          if (quality > 0.5) return attempt(quality - 0.15);
          scale *= 0.7;
          return attempt(0.85);
        });
      }
      return attempt(0.85);
    });
  }

  function preview(canvas) {
    const small = document.createElement("canvas");
    const ratio = Math.min(1, 160 / Math.max(canvas.width, canvas.height));
    small.width = Math.round(canvas.width * ratio);
    small.height = Math.round(canvas.height * ratio);
    small.getContext("2d").drawImage(canvas, 0, 0, small.width, small.height);
    return small.toDataURL("image/jpeg", 0.7);
  }

  function drawPhotos() {
    photoList.replaceChildren();
    photos.forEach(function (photo, i) {
      const n = i + 1;
      const li = v.el("li", "voirie-photo");
      const img = v.el("img");
      img.src = photo.preview;
      img.alt = v.format(labels.photo_ready, {n: n, size: Math.round(photo.blob.size / 1024)});
      li.appendChild(img);
      li.appendChild(v.el("span", null, img.alt));
      const remove = v.el("button", "secondary", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", v.format(labels.photo_remove, {n: n}));
      remove.addEventListener("click", function () {
        photos.splice(i, 1);
        drawPhotos();
        photoInput.focus();
      });
      li.appendChild(remove);
      photoList.appendChild(li);
    });
    photoList.dataset.count = String(photos.length);
  }

  photoInput.addEventListener("change", function () {
    const files = Array.prototype.slice.call(photoInput.files);
    const room = rules.max_photos - photos.length;
    if (files.length > room) say(labels.photo_too_many, true);
    const chain = files.slice(0, Math.max(0, room)).reduce(function (previous, file) {
      return previous.then(function () {
        return resize(file).then(function (made) {
          photos.push({blob: made.blob, preview: preview(made.canvas)});
        }, function () { say(labels.photo_unreadable, true); });
      });
    }, Promise.resolve());
    chain.then(function () { photoInput.value = ""; drawPhotos(); });
  });

  // --- before sending: is it one of these? ---------------------------------------------
  function duplicateItem(incident) {
    const li = v.el("li", "voirie-item");
    li.dataset.incident = String(incident.incident_id);
    li.appendChild(v.el("h3", null, incident.service_name));
    li.appendChild(v.el("p", "meta", [
      v.format(labels.distance, {distance: Math.round(incident.distance_m)}),
      incident.street_name || "",
    ].filter(Boolean).join(" · ")));
    if (incident.description) li.appendChild(v.el("p", "text", incident.description));
    const meToo = v.el("button", "me-too", labels.me_too);
    meToo.type = "button";
    const note = v.el("p", "voirie-message");
    note.setAttribute("role", "status");
    meToo.addEventListener("click", function () {
      const email = form.elements.email.value.trim();
      meToo.disabled = true;
      v.sendJson("POST", data.api + "/incidents/" + incident.incident_id + "/supporters",
                 email ? {email: email, lang: data.lang} : {}).then(function (result) {
        if (!result.ok) { meToo.disabled = false; failed(result); return; }
        note.textContent = labels.me_too_done;
        li.classList.add("supported");
        say(labels.me_too_done);
      });
    });
    li.appendChild(meToo);
    li.appendChild(note);
    return li;
  }

  function check() {
    say(labels.checking);
    const service = services[select.value];
    const query = "?lat=" + encodeURIComponent(place.lat) + "&lon=" +
      encodeURIComponent(place.lon) + "&radius_m=" + encodeURIComponent(data.radius_m);
    return fetch(data.api + "/nearby" + query, {headers: {Accept: "application/json"}})
      .then(function (response) {
        return response.ok ? response.json() : {incidents: []};
      }).then(function (payload) {
        const same = payload.incidents.filter(function (incident) {
          const other = services[incident.service_code];
          return other && other.group === service.group;
        });
        checked = true;
        if (!same.length) return false;
        duplicateList.replaceChildren();
        same.forEach(function (incident) { duplicateList.appendChild(duplicateItem(incident)); });
        document.getElementById("voirie-duplicates-intro").textContent =
          v.format(labels.duplicates_intro, {count: same.length, radius: data.radius_m});
        duplicates.hidden = false;
        sendButton.textContent = labels.send_anyway;
        say("");
        document.getElementById("voirie-duplicates-title").focus();
        return true;
      });
  }

  function postPhoto(photo, n) {
    say(v.format(labels.sending_photo, {n: n}));
    const body = new FormData();
    body.append("photo", photo.blob, "photo-" + n + ".jpg");
    return fetch(data.api + "/photos", {method: "POST", body: body}).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (payload) {
        return {ok: response.ok, status: response.status, payload: payload,
                statusText: response.statusText};
      });
    });
  }

  function send(given) {
    sendButton.disabled = true;
    const names = [];
    const uploads = photos.reduce(function (previous, photo, i) {
      return previous.then(function (result) {
        if (result && !result.ok) return result;
        return postPhoto(photo, i + 1).then(function (stored) {
          if (stored.ok) names.push(stored.payload.name);
          return stored;
        });
      });
    }, Promise.resolve(null));
    uploads.then(function (last) {
      if (last && !last.ok) return last;
      say(labels.sending);
      const body = {
        service_code: select.value,
        lat: place.lat,
        lon: place.lon,
        description: form.elements.description.value.trim() || null,
        address: place.address,
        attributes: given,
        photos: names,
        name: form.elements.name.value.trim() || null,
        email: form.elements.email.value.trim() || null,
        phone: form.elements.phone.value.trim() || null,
        website: form.elements.website.value || null,
        lang: data.lang,
      };
      return v.sendJson("POST", data.api + "/reports", body, {"Idempotency-Key": key});
    }).then(function (result) {
      sendButton.disabled = false;
      if (!result.ok) { failed(result); return; }
      done(result.payload);
    });
  }

  function done(answer) {
    form.hidden = true;
    const panel = document.getElementById("voirie-done");
    document.getElementById("voirie-done-text").textContent = v.format(
      answer.attached ? labels.done_attached : labels.done_opened,
      {incident: answer.incident_id});
    const link = document.getElementById("voirie-tracking");
    link.href = answer.tracking_url + (data.lang === "fr" ? "" : "?lang=" + data.lang);
    panel.hidden = false;
    panel.dataset.report = String(answer.report_id);
    panel.dataset.incident = String(answer.incident_id);
    document.getElementById("voirie-done-title").focus();
    key = newKey();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!place) { say(labels.need_place, true); mapBox.focus(); return; }
    if (!services[select.value]) { say(labels.need_service, true); select.focus(); return; }
    const found = answers();
    if (found.missing) {
      say(v.format(labels.need_answer, {question: found.missing.attribute.description}), true);
      found.missing.field.focus();
      return;
    }
    if (checked) { send(found.given); return; }
    sendButton.disabled = true;
    check().then(function (shown) {
      sendButton.disabled = false;
      if (!shown) send(found.given);
    });
  });

  fillCategories("");
  mapBox.dataset.ready = "true";
})();
