// The search page: GET /search with the tab's API key, each hit with its thumbnail, a click
// plays the event's clip. Texts from the API go in as text (textContent), never as HTML.
(function () {
  "use strict";
  var STORE = "vidloc-api-key";  // the keyed viewer's (shell.js): one key per tab
  var body = document.body;
  var searchForm = document.getElementById("searchform");
  var query = document.getElementById("q");
  var keyForm = document.getElementById("keyform");
  var keyInput = document.getElementById("key");
  var note = document.getElementById("note");
  var results = document.getElementById("results");
  var more = document.getElementById("more");
  var video = document.getElementById("clip");
  var caption = document.getElementById("caption");
  var cursor = null;
  var lastQuery = "";
  var thumbs = [];  // blob: URLs to release when the list is replaced
  var pending = null;  // the search to run again once a key is given

  function say(text) { note.textContent = text; }

  function headers(extra) {
    var out = extra || {};
    var key = sessionStorage.getItem(STORE);
    if (key) { out.Authorization = "Bearer " + key; }
    return out;
  }

  function call(path, extra) {
    return fetch(path, { headers: headers(extra), cache: "no-store", credentials: "omit" });
  }

  // The API's one error shape; a 401 forgets the key and asks for one.
  function failed(response, retry) {
    return response.json().catch(function () { return {}; }).then(function (doc) {
      var message = (doc.error && doc.error.message) || response.statusText;
      body.setAttribute("data-state", "error-" + response.status);
      if (response.status === 401) {
        sessionStorage.removeItem(STORE);
        pending = retry;
        keyForm.style.display = "block";
        keyInput.focus();
      }
      say(response.status + ": " + message);
    });
  }

  function seconds(value) { return Number(value).toFixed(1); }

  function thumbnail(hit, holder) {
    if (!hit.thumbnail_url) { return; }
    // An <img> cannot send the key: fetch the picture with it and show the bytes.
    call(".." + hit.thumbnail_url).then(function (response) {
      if (!response.ok) { return; }
      return response.blob().then(function (blob) {
        var img = document.createElement("img");
        var url = URL.createObjectURL(blob);
        thumbs.push(url);
        img.src = url;
        img.alt = hit.label;
        img.className = "thumb";
        holder.replaceWith(img);
      });
    }).catch(function () {});
  }

  function row(hit) {
    var li = document.createElement("li");
    li.className = "hit";
    li.tabIndex = 0;
    li.setAttribute("data-video-id", hit.video_id);
    li.setAttribute("data-event-id", hit.event_id);
    var holder = document.createElement("div");
    holder.className = "nothumb";
    var text = document.createElement("div");
    var label = document.createElement("div");
    label.className = "label";
    label.textContent = hit.label;
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = hit.video_id + " \u00b7 " + seconds(hit.start_s) + "\u2013" +
      seconds(hit.end_s) + " s \u00b7 score " + Number(hit.score).toFixed(2);
    var desc = document.createElement("div");
    desc.className = "desc";
    desc.textContent = hit.description;
    text.appendChild(label);
    text.appendChild(meta);
    text.appendChild(desc);
    li.appendChild(holder);
    li.appendChild(text);
    li.addEventListener("click", function () { play(hit, li); });
    li.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { play(hit, li); }
    });
    thumbnail(hit, holder);
    return li;
  }

  function search(text, after) {
    var params = new URLSearchParams({ q: text, limit: "20" });
    if (after) { params.set("cursor", after); }
    body.setAttribute("data-state", "searching");
    say("searching\u2026");
    call("../search?" + params.toString()).then(function (response) {
      if (!response.ok) { return failed(response, function () { search(text, after); }); }
      return response.json().then(function (page) {
        if (!after) {
          thumbs.forEach(function (url) { URL.revokeObjectURL(url); });
          thumbs = [];
          results.textContent = "";
        }
        page.results.forEach(function (hit) { results.appendChild(row(hit)); });
        cursor = page.next_cursor;
        more.style.display = cursor ? "inline-block" : "none";
        var shown = results.children.length;
        body.setAttribute("data-state", "results");
        body.setAttribute("data-count", String(shown));
        say(shown ? "" : "nothing found for \u201c" + text + "\u201d" +
          (page.index && !page.index.ready ? " (the index is still being built)" : ""));
      });
    }).catch(function (err) {
      body.setAttribute("data-state", "error-network");
      say("cannot reach the API: " + err);
    });
  }

  // The clip route answers its presigned URL as JSON when asked to: a <video> cannot send
  // the key, and a redirect followed by fetch would hide where it went.
  // clip_url names the analysis too: a later analysis' event lives under /analyses/{id}.
  function play(hit, li) {
    var path = ".." + hit.clip_url;
    Array.prototype.forEach.call(results.querySelectorAll(".playing"), function (el) {
      el.classList.remove("playing");
    });
    li.classList.add("playing");
    body.setAttribute("data-state", "cutting");
    say("preparing the clip\u2026");
    call(path, { Accept: "application/json" }).then(function (response) {
      if (!response.ok) { return failed(response, function () { play(hit, li); }); }
      return response.json().then(function (clip) {
        video.src = clip.url;
        video.style.display = "block";
        body.setAttribute("data-playing", hit.video_id + "/" + hit.event_id);
        body.setAttribute("data-clip-mode", clip.mode);
        caption.textContent = hit.label + " \u00b7 " + hit.video_id + " \u00b7 " +
          seconds(hit.start_s) + "\u2013" + seconds(hit.end_s) + " s (" + clip.mode + ")";
        body.setAttribute("data-state", "playing");
        say("");
        var started = video.play();
        if (started && started.catch) { started.catch(function () {}); }  // autoplay refused
      });
    }).catch(function (err) {
      body.setAttribute("data-state", "error-network");
      say("cannot reach the API: " + err);
    });
  }

  searchForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    lastQuery = query.value.trim();
    if (!lastQuery) { say("type what to find"); return; }
    search(lastQuery, null);
  });

  more.addEventListener("click", function () { if (cursor) { search(lastQuery, cursor); } });

  keyForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var key = keyInput.value.trim();
    keyInput.value = "";
    if (!key) { return; }
    sessionStorage.setItem(STORE, key);
    keyForm.style.display = "none";
    var again = pending;
    pending = null;
    if (again) { again(); }
  });
})();
