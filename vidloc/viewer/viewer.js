// Seek on click, describe on hover, follow playback with a playhead. No dependencies.
(function () {
  "use strict";
  var player = document.getElementById("player");
  var tip = document.getElementById("tip");
  var span = parseFloat(document.body.getAttribute("data-span")) || 1;
  var heads = document.querySelectorAll(".playhead");

  function fmt(s) { return s.toFixed(1) + " s"; }

  function seek(start, el) {
    document.querySelectorAll(".bar.active").forEach(function (b) {
      b.classList.remove("active");
    });
    if (el) { el.classList.add("active"); }
    if (player) {
      player.currentTime = start;
      player.pause();
    }
    document.body.setAttribute("data-last-seek", String(start));
  }

  // Bars and rows a live stream adds later are wired the same way, so read values on use.
  function wire(el) {
    function start() { return parseFloat(el.getAttribute("data-start")); }
    el.addEventListener("click", function () {
      seek(start(), el.classList.contains("bar") ? el : null);
    });
    if (!el.classList.contains("bar")) { return; }
    el.addEventListener("mouseenter", function () {
      var conf = el.getAttribute("data-confidence");
      tip.textContent = "";
      var head = document.createElement("b");
      head.textContent = el.getAttribute("data-label") + "  " +
        fmt(start()) + " \u2013 " + fmt(parseFloat(el.getAttribute("data-end"))) +
        (conf ? "  (confidence " + conf + ")" : "");
      var body = document.createElement("div");
      body.textContent = el.getAttribute("data-description") || "(no description)";
      var thumb = el.getAttribute("data-thumbnail");
      if (thumb) {
        var picture = document.createElement("img");
        picture.className = "thumb";
        picture.alt = "";
        picture.src = thumb;
        tip.appendChild(picture);
      }
      tip.appendChild(head);
      tip.appendChild(body);
      tip.style.display = "block";
    });
    el.addEventListener("mousemove", function (ev) {
      tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 370) + "px";
      tip.style.top = (ev.clientY + 14) + "px";
    });
    el.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  }
  document.querySelectorAll("[data-start]").forEach(wire);

  if (player) {
    player.addEventListener("timeupdate", function () {
      var pct = Math.max(0, Math.min(100, 100 * player.currentTime / span));
      heads = document.querySelectorAll(".playhead");  // a live stream may add tracks
      heads.forEach(function (h) { h.style.left = pct + "%"; });
    });
  }

  // A live stream (docs/streams.md): the timeline grows while the page is open. Opened
  // directly, the page polls its own timeline route; framed by the keyed shell (which holds
  // the key this page must never see), it takes the timelines the shell posts in.
  var body = document.body;
  var COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];  // layout.py's
  var MIN_WIDTH_PCT = 0.4;

  function num(v) { return String(Math.round(v * 10000) / 10000); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function place(bar) {
    var s = parseFloat(bar.getAttribute("data-start"));
    var e = parseFloat(bar.getAttribute("data-end"));
    bar.style.left = num(Math.min(100 - MIN_WIDTH_PCT, 100 * s / span)) + "%";
    bar.style.width = num(Math.max(MIN_WIDTH_PCT, 100 * (e - s) / span)) + "%";
  }
  function find(selector, attr, value) {
    var all = document.querySelectorAll(selector);
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute(attr) === value) { return all[i]; }
    }
    return null;
  }
  function trackFor(label) {
    var found = find(".lanes .track", "data-label", label);
    if (found) { return found; }
    var lanes = document.querySelector(".lanes");
    var tracks = lanes.querySelectorAll(".track");
    var row = el("div", "row track");
    row.setAttribute("data-label", label);
    row.setAttribute("data-colour", COLOURS[tracks.length % COLOURS.length]);
    var name = el("div", "name", label);
    name.title = label;
    var lane = el("div", "lane");
    lane.appendChild(el("div", "playhead"));
    row.appendChild(name);
    row.appendChild(lane);
    var empty = lanes.querySelector(".empty");
    if (empty) { empty.remove(); }
    var before = null;  // tracks are sorted by label, as the server lays them out
    tracks.forEach(function (t) {
      if (!before && t.getAttribute("data-label") > label) { before = t; }
    });
    lanes.insertBefore(row, before);
    return row;
  }
  function colourOf(track) {
    var bar = track.querySelector(".bar");
    return track.getAttribute("data-colour") || (bar ? bar.style.background : COLOURS[0]);
  }
  function setBar(bar, e) {
    var conf = e.confidence === null || e.confidence === undefined ? "" : e.confidence.toFixed(2);
    bar.setAttribute("data-start", num(e.start_s));
    bar.setAttribute("data-end", num(e.end_s));
    bar.setAttribute("data-confidence", conf);
    bar.setAttribute("data-description", e.description || "");
    bar.setAttribute("aria-label", e.label + " " + fmt(e.start_s) + "-" + fmt(e.end_s) +
      ": " + (e.description || ""));
  }
  function ticks() {
    var raw = span / 10, step = null, steps = [];
    for (var exp = -1; exp <= 5; exp++) {
      [1, 2, 5].forEach(function (m) { steps.push(m * Math.pow(10, exp)); });
    }
    step = steps.filter(function (s) { return s >= raw; })[0] || steps[steps.length - 1];
    var lane = document.querySelector(".ruler .lane");
    lane.textContent = "";
    for (var i = 0; i <= Math.floor(span / step); i++) {
      var t = Math.round(i * step * 1e6) / 1e6;
      var tick = el("span", "tick", String(t));
      tick.style.left = num(100 * t / span) + "%";
      lane.appendChild(tick);
    }
  }
  function table(events) {
    var old = document.querySelector("body > table, body > p.empty");
    var fresh;
    if (!events.length) {
      fresh = el("p", "empty", "No events were found in this video.");
    } else {
      fresh = el("table");
      var head = el("tr");
      ["label", "start", "end", "conf.", "description"].forEach(function (h) {
        head.appendChild(el("th", "", h));
      });
      fresh.appendChild(head);
      events.slice().sort(function (a, b) {
        return a.start_s - b.start_s || a.end_s - b.end_s || (a.label < b.label ? -1 : 1);
      }).forEach(function (e) {
        var row = el("tr", "ev");
        row.setAttribute("data-start", num(e.start_s));
        row.appendChild(el("td", "", e.label));
        row.appendChild(el("td", "t", fmt(e.start_s)));
        row.appendChild(el("td", "t", fmt(e.end_s)));
        row.appendChild(el("td", "", e.confidence === null || e.confidence === undefined
          ? "" : e.confidence.toFixed(2)));
        row.appendChild(el("td", "", e.description || ""));
        wire(row);
        fresh.appendChild(row);
      });
    }
    if (old) { old.replaceWith(fresh); }
  }
  function applyTimeline(doc) {
    var events = doc.events || [];
    var latest = events.reduce(function (m, e) { return Math.max(m, e.end_s); }, 0);
    span = Math.max(doc.video.duration_s, latest, 1e-3);
    body.setAttribute("data-span", num(span));
    body.setAttribute("data-duration", num(doc.video.duration_s));
    // Only the latest update's news is marked.
    document.querySelectorAll(".bar.new, .bar.grew").forEach(function (b) {
      b.classList.remove("new", "grew");
    });
    events.forEach(function (e) {
      var bar = find(".bar", "data-event-id", e.id);
      if (!bar) {
        var track = trackFor(e.label);
        bar = el("button", e.source === "stream" ? "bar gap new" : "bar new");
        bar.type = "button";
        bar.setAttribute("data-event-id", e.id);
        bar.setAttribute("data-label", e.label);
        bar.style.background = colourOf(track);
        var lane = track.querySelector(".lane");
        lane.insertBefore(bar, lane.querySelector(".playhead"));
        wire(bar);
      } else if (bar.getAttribute("data-end") !== num(e.end_s)) {
        bar.classList.add("grew");
      }
      setBar(bar, e);
    });
    document.querySelectorAll(".bar").forEach(place);
    ticks();
    table(events);
    var count = document.querySelector(".sub .count");
    if (count) { count.textContent = String(events.length); }
    var s = doc.stream;
    var line = document.getElementById("live");
    if (s && line) {
      line.textContent = (s.ended ? "stream ended" : "live") + " \u00b7 " + fmt(s.covered_s) +
        " covered \u00b7 lag " + fmt(s.lag_s || 0) + " \u00b7 segment " + s.last_seq;
    }
    if (s && s.ended) { body.setAttribute("data-live", "0"); }
    body.setAttribute("data-updates", String((parseInt(body.getAttribute("data-updates"), 10)
      || 0) + 1));
  }

  function follow() {
    if (body.getAttribute("data-live") !== "1") { return; }
    var id = body.getAttribute("data-video-id");
    if (window.parent !== window) {
      window.addEventListener("message", function (ev) {
        var doc = ev.data;
        if (ev.source === window.parent && doc && doc.video_id === id) { applyTimeline(doc); }
      });
      return;
    }
    if (location.protocol === "file:") { return; }  // an export is a snapshot
    var every = parseInt(body.getAttribute("data-poll-ms"), 10) || 2000;
    function tick() {
      fetch("timeline", { cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) {
          if (doc && doc.video_id === id) { applyTimeline(doc); }
          if (body.getAttribute("data-live") === "1") { setTimeout(tick, every); }
        })
        .catch(function () { setTimeout(tick, 2 * every); });
    }
    setTimeout(tick, every);
  }
  follow();

  // Another analysis of this video: opened directly, its link goes there; framed by the keyed
  // shell (which alone holds the key), the shell is asked to fetch that analysis' page.
  document.querySelectorAll("a.analysis").forEach(function (link) {
    link.addEventListener("click", function (ev) {
      if (window.parent === window) { return; }
      ev.preventDefault();
      window.parent.postMessage(
        { vidloc: "analysis", id: link.getAttribute("data-analysis-id") }, "*");
    });
  });
})();
