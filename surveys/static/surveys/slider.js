// Sliders as progressive enhancement: without this script a slider question is a number
// box (the value that is submitted); with it, a range control appears beside the box and
// the two follow each other. The range has no name, so only the box is ever submitted,
// and an untouched question stays empty (unanswered) rather than taking the midpoint.
(function () {
  "use strict";
  var sliders = document.querySelectorAll("[data-slider]");
  Array.prototype.forEach.call(sliders, function (slider) {
    var range = slider.querySelector("[data-slider-range]");
    var box = slider.querySelector('input[type="number"]');
    if (!range || !box) {
      return;
    }
    range.hidden = false;
    if (box.value !== "") {
      range.value = box.value;
    }
    range.addEventListener("input", function () {
      box.value = range.value;
    });
    box.addEventListener("input", function () {
      if (box.value !== "") {
        range.value = box.value;
      }
    });
  });
})();
