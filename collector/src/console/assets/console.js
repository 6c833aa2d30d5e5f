// auditloop console: the live alert feed. The server renders every row; this only inserts the rows it
// streams (server-sent events from /alerts/feed) at the top of the alerts table, replacing a row whose
// alert changed. Everything else on the console works without script.
(function () {
  var table = document.getElementById("alerts-body");
  if (!table || !window.EventSource) return;
  var params = table.getAttribute("data-feed");
  var source = new EventSource("/alerts/feed?" + params);
  source.addEventListener("alert", function (e) {
    var holder = document.createElement("tbody");
    holder.innerHTML = e.data;
    var row = holder.firstElementChild;
    if (!row) return;
    var old = document.getElementById(row.id);
    if (old) old.remove();
    row.classList.add("new");
    table.insertBefore(row, table.firstChild);
    var empty = document.getElementById("alerts-empty");
    if (empty) empty.remove();
  });
  source.addEventListener("status", function (e) {
    var badge = document.getElementById("feed-status");
    if (badge) badge.textContent = e.data;
  });
})();
