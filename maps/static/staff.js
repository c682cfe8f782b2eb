/* voirie staff pages: what every page shares. Writes go through VoirieStaff.send, which
 * adds the session's anti-forgery token (from <meta name="csrf-token">) and sends the
 * session cookie; a 401 (session over) goes back to the sign-in page.
 */
(function (global) {
  "use strict";

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function toLogin() {
    const here = location.pathname + location.search;
    const root = document.documentElement.getAttribute("data-root") || "";
    location.assign(root + "/staff/login?next=" + encodeURIComponent(here));
  }

  /** fetch() JSON with the session: GET when body is undefined, else POST. */
  function send(url, body, method) {
    const options = {credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (body !== undefined || method) {
      options.method = method || "POST";
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = csrf();
      options.body = JSON.stringify(body === undefined ? {} : body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) { toLogin(); throw new Error("401"); }
      return response.text().then(function (text) {
        const payload = text ? JSON.parse(text) : null;
        if (!response.ok) {
          const error = new Error(global.voirie.problemText(payload, String(response.status)));
          error.status = response.status;
          error.payload = payload;
          throw error;
        }
        return payload;
      });
    });
  }

  /** An instant shown in the city's time zone, in the page's language. */
  function when(iso, zone, lang) {
    if (!iso) return "";
    return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "fr-FR", {
      timeZone: zone, dateStyle: "short", timeStyle: "short"}).format(new Date(iso));
  }

  global.VoirieStaff = {send: send, csrf: csrf, when: when};
})(window);
