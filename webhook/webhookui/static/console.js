// webhook-bridge console: the only script. It checks a subscription as it
// is typed (debounced) and says the verdict in an aria-live region. Every
// form works without it.
(function () {
  "use strict";
  var form = document.querySelector("form[data-check]");
  if (!form) { return; }
  var out = document.getElementById("check-result");
  var timer = null;
  var seq = 0;
  function check() {
    var mine = ++seq;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.getAttribute("data-check"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": body.get("csrf") || "" }
    }).then(function (r) { return r.json(); }).then(function (j) {
      if (mine !== seq) { return; }
      out.textContent = j.ok ? "Valid." : j.error;
      out.className = "check " + (j.ok ? "ok" : "bad");
    }).catch(function () {
      if (mine !== seq) { return; }
      out.textContent = "Could not check now; the server checks on save.";
      out.className = "check";
    });
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
})();
