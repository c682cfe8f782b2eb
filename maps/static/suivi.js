/* The private tracking page: follow or stop following the report's incident by email.
 * Everything else on the page is drawn by the server.
 */
(function () {
  "use strict";
  const v = window.voirie;
  const data = v.pageData();
  const labels = data.labels;
  const form = document.getElementById("voirie-follow");
  const message = document.getElementById("voirie-message");
  const url = data.api + "/incidents/" + data.incident_id + "/followers";

  function subscription(method, done) {
    const email = form.elements.email.value.trim();
    v.sendJson(method, url, {email: email}).then(function (result) {
      message.classList.toggle("voirie-error", !result.ok);
      message.textContent = result.ok ? done :
        labels.error + " (" + result.status + ")" + labels.colon + v.refusal(labels, result);
    });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    subscription("POST", labels.followed);
  });
  document.getElementById("voirie-unfollow-button").addEventListener("click", function () {
    subscription("DELETE", labels.unfollowed);
  });
  form.dataset.ready = "true";
})();
