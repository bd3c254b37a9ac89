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

  document.querySelectorAll("[data-start]").forEach(function (el) {
    var start = parseFloat(el.getAttribute("data-start"));
    el.addEventListener("click", function () {
      seek(start, el.classList.contains("bar") ? el : null);
    });
    if (!el.classList.contains("bar")) { return; }
    el.addEventListener("mouseenter", function () {
      var conf = el.getAttribute("data-confidence");
      tip.textContent = "";
      var head = document.createElement("b");
      head.textContent = el.getAttribute("data-label") + "  " +
        fmt(start) + " \u2013 " + fmt(parseFloat(el.getAttribute("data-end"))) +
        (conf ? "  (confidence " + conf + ")" : "");
      var body = document.createElement("div");
      body.textContent = el.getAttribute("data-description") || "(no description)";
      tip.appendChild(head);
      tip.appendChild(body);
      tip.style.display = "block";
    });
    el.addEventListener("mousemove", function (ev) {
      tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 370) + "px";
      tip.style.top = (ev.clientY + 14) + "px";
    });
    el.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  });

  if (player) {
    player.addEventListener("timeupdate", function () {
      var pct = Math.max(0, Math.min(100, 100 * player.currentTime / span));
      heads.forEach(function (h) { h.style.left = pct + "%"; });
    });
  }
})();
