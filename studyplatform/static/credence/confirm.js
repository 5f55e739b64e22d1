// Asks before submitting a form marked data-confirm="question" (e.g. closing a live
// study). A file, not an onsubmit attribute: the Content-Security-Policy runs no inline code.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
