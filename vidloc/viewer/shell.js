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

  // The page of one analysis of the video (none or "default": its first analysis).
  function viewPath(analysis) {
    var base = "../videos/" + encodeURIComponent(videoId);
    if (!analysis || analysis === "default") { return base + "/view"; }
    return base + "/analyses/" + encodeURIComponent(analysis) + "/view";
  }

  function open(key, analysis) {
    say("loading\u2026");
    following++;  // a live page shown before stops being followed
    fetch(viewPath(analysis), {
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
          if (html.indexOf('data-live="1"') >= 0) { follow(key, html); }
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

  // A live stream: the framed page cannot hold the key, so the shell polls the timeline
  // route with it and posts each timeline in (only the data the page already shows), until
  // the stream ends. One loop per shown page.
  var following = 0;
  function follow(key, html) {
    var loop = ++following;
    var every = parseInt((/data-poll-ms="(\d+)"/.exec(html) || [])[1], 10) || 2000;
    function tick() {
      if (loop !== following) { return; }
      fetch("../videos/" + encodeURIComponent(videoId) + "/timeline", {
        headers: { "Authorization": "Bearer " + key },
        cache: "no-store",
        credentials: "omit"
      }).then(function (response) {
        if (response.status === 401) {
          sessionStorage.removeItem(STORE);
          form.style.display = "block";
          say("401: the key was refused; live updates stopped");
          return;
        }
        if (!response.ok) { setTimeout(tick, 2 * every); return; }
        return response.json().then(function (doc) {
          frame.contentWindow.postMessage(doc, "*");  // the sandboxed frame's origin is opaque
          document.body.setAttribute("data-polls",
            String((parseInt(document.body.getAttribute("data-polls"), 10) || 0) + 1));
          if (doc.stream && doc.stream.ended) {
            document.body.setAttribute("data-live", "ended");
          } else {
            setTimeout(tick, every);
          }
        });
      }).catch(function () { setTimeout(tick, 2 * every); });
    }
    document.body.setAttribute("data-live", "following");
    setTimeout(tick, every);
  }

  // The framed page asks for another analysis of the video (its links cannot carry the key).
  window.addEventListener("message", function (ev) {
    var msg = ev.data;
    if (ev.source !== frame.contentWindow || !msg || msg.vidloc !== "analysis") { return; }
    if (typeof msg.id !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(msg.id)) {
      return;
    }
    var key = sessionStorage.getItem(STORE);
    if (key) {
      document.body.setAttribute("data-analysis-id", msg.id);
      open(key, msg.id);
    }
  });

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
