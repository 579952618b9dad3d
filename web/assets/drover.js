// drover's page script: follows an operation live and refreshes the
// stages when it ends. Without it the page still works; it just does not
// update by itself.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var panel = document.getElementById("operation");
  if (!panel || !window.EventSource) return;
  var progress = panel.querySelector(".progress");
  var state = progress && progress.getAttribute("data-state");
  if (state === "succeeded" || state === "failed") return;
  var es = new EventSource(panel.getAttribute("data-events"));
  es.addEventListener("progress", function (e) {
    // The server renders the block with the page's own template.
    panel.innerHTML = e.data;
  });
  es.addEventListener("done", function () {
    es.close();
    fetch("/?fragment=pipelines", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var board = document.getElementById("pipelines");
        if (board) board.innerHTML = html;
        document.body.setAttribute("data-refreshed", "1");
      })
      .catch(function () { location.reload(); });
  });
  es.addEventListener("failure", function () { es.close(); });
  es.onerror = function () {
    // The stream ends with the operation; a broken one is retried by the
    // browser unless it was closed above.
  };
});
