// The keyed viewer: ask for the API key once per tab (sessionStorage, never a URL or a cookie),
// fetch the viewer page with it in the Authorization header, show it in a sandboxed frame.
(function () {
  "use strict";
  var STORE = "vidloc-api-key";
  var form = document.getElementById("keyform");
  var input = document.getElementById("key");
  var note = document.getElementById("note");
  var frame = document.getElementById("view");
  var videoId = document.body.getAttribute("data-video-id");

  function say(text) { note.textContent = text; }

  function open(key) {
    say("loading\u2026");
    fetch("../videos/" + encodeURIComponent(videoId) + "/view", {
      headers: { "Authorization": "Bearer " + key },
      cache: "no-store",
      credentials: "omit"
    }).then(function (response) {
      if (response.ok) {
        return response.text().then(function (html) {
          frame.srcdoc = html;
          frame.style.display = "block";
          form.style.display = "none";
          document.body.setAttribute("data-state", "shown");
          say("");
        });
      }
      return response.json().catch(function () { return {}; }).then(function (body) {
        var message = (body.error && body.error.message) || response.statusText;
        if (response.status === 401) { sessionStorage.removeItem(STORE); }
        document.body.setAttribute("data-state", "error-" + response.status);
        form.style.display = "block";
        say(response.status + ": " + message);
      });
    }).catch(function (err) {
      document.body.setAttribute("data-state", "error-network");
      say("cannot reach the API: " + err);
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var key = input.value.trim();
    input.value = "";
    if (!key) { return; }
    sessionStorage.setItem(STORE, key);
    open(key);
  });

  var saved = sessionStorage.getItem(STORE);
  if (saved) { open(saved); } else { form.style.display = "block"; }
})();
