// pumpctl ui: read the pump again every few seconds while the page is shown, and show it. The
// server renders (and escapes) the HTML; this only swaps the live part in. A hidden tab reads
// nothing (each read moves the key's counter on the pump). When the pump stops answering, the
// page says so and hides every change; when this server is gone, the page says that.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live");
  var url = body.getAttribute("data-live");
  var every = parseInt(body.getAttribute("data-refresh-ms"), 10) || 10000;
  var timer = null;
  if (!live || !url) { return; }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(tick, every);
  }

  function tick() {
    if (document.hidden) { return; }        // visibilitychange starts it again
    fetch(url, { cache: "no-store", credentials: "omit", redirect: "error" })
      .then(function (r) {
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        body.classList.toggle("gone", live.querySelector("[data-gone]") !== null);
      })
      .catch(function () {
        live.innerHTML = '<section class="gone-msg" data-gone="1" role="alert"><h2>pumpctl ui ' +
          'is not answering</h2><p>The program that serves this page has stopped. Nothing on ' +
          'this page is current, and no change can be made.</p></section>';
        body.classList.add("gone");
      })
      .finally(later);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { tick(); }
  });
  later();
})();
