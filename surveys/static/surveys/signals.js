// Copy and paste counts on an article page, and a marker that JavaScript ran, as
// progressive enhancement: the page works without this script, and the server counts a
// participation whose answers never carried the marker as "no JavaScript".
// Counts only, never what was copied or pasted (surveys/fraud.py). The hidden inputs start
// at what the server already knows (a page re-rendered after a validation error carries
// the earlier counts), and this script adds to them.
(function () {
  "use strict";
  var form = document.querySelector("form[data-signals]");
  if (!form) {
    return;
  }
  var copiesInput = form.querySelector('input[name="credence_copies"]');
  var pastesInput = form.querySelector('input[name="credence_pastes"]');
  var jsInput = form.querySelector('input[name="credence_js"]');
  if (!copiesInput || !pastesInput || !jsInput) {
    return;
  }
  var copies = parseInt(copiesInput.value, 10) || 0;
  var pastes = parseInt(pastesInput.value, 10) || 0;

  function isFreeText(element) {
    if (!element || !element.tagName) {
      return false;
    }
    if (element.tagName === "TEXTAREA") {
      return true;
    }
    return element.tagName === "INPUT" && (element.type === "text" || element.type === "search");
  }

  // A copy anywhere in the article (the event's target is where the selection starts).
  var article = document.querySelector("article");
  if (article) {
    article.addEventListener("copy", function () {
      copies += 1;
    });
  }
  // A paste into any free-text answer of the form.
  form.addEventListener("paste", function (event) {
    if (isFreeText(event.target)) {
      pastes += 1;
    }
  });
  form.addEventListener("submit", function () {
    copiesInput.value = String(copies);
    pastesInput.value = String(pastes);
    jsInput.value = "1";
  });
})();
