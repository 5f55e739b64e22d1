// Reading time on an article page, as progressive enhancement: the page and its form
// work without this script; with it, the form also sends how long the page was visible
// (Page Visibility API) and how many times the reader switched away from the tab.
// Both hidden inputs start at what the server already knows (a page re-rendered after a
// validation error carries the earlier measurement), and this script adds to it.
(function () {
  "use strict";
  var form = document.querySelector("form[data-timing]");
  if (!form || !window.performance || typeof document.visibilityState !== "string") {
    return;
  }
  var visibleInput = form.querySelector('input[name="visible_ms"]');
  var awaysInput = form.querySelector('input[name="tab_aways"]');
  if (!visibleInput || !awaysInput) {
    return;
  }
  var visibleMs = parseInt(visibleInput.value, 10) || 0;
  var tabAways = parseInt(awaysInput.value, 10) || 0;
  var visibleSince = document.visibilityState === "visible" ? performance.now() : null;

  function total() {
    var running = visibleSince === null ? 0 : performance.now() - visibleSince;
    return Math.max(0, Math.round(visibleMs + running));
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      if (visibleSince === null) {
        visibleSince = performance.now();
      }
    } else if (visibleSince !== null) {
      visibleMs += performance.now() - visibleSince;
      visibleSince = null;
      tabAways += 1;
    }
  });

  // Written on submit (not continuously), so the value sent is the time up to the click.
  form.addEventListener("submit", function () {
    visibleInput.value = String(total());
    awaysInput.value = String(tabAways);
  });
})();
