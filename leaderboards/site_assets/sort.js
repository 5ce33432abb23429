// gsbench leaderboard site: sortable tables (no dependencies; the page works offline).
// A header cell <th data-sort="num|text" data-better="higher|lower"> holds a <button>; clicking it
// sorts the table body by that column. Numeric columns sort best-first on the first click (the metric's
// arrow says which way is better), then flip; empty cells always go last. Ties keep the page's order.
"use strict";
(function () {
  function cellKey(row, index, numeric) {
    const cell = row.cells[index];
    const raw = cell ? (cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim()) : "";
    if (!numeric) return raw === "" ? null : raw.toLowerCase();
    const value = parseFloat(raw);
    return Number.isFinite(value) ? value : null;
  }

  function sortBy(table, th) {
    const headers = Array.from(th.parentNode.cells);
    const index = headers.indexOf(th);
    const numeric = th.dataset.sort === "num";
    const bestFirst = numeric && th.dataset.better === "higher" ? "descending" : "ascending";
    const current = th.getAttribute("aria-sort");
    const order = current === bestFirst ? (bestFirst === "ascending" ? "descending" : "ascending") : bestFirst;
    const sign = order === "ascending" ? 1 : -1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).map(function (row, position) {
      return { row: row, key: cellKey(row, index, numeric), position: position };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) return a.position - b.position;
        return a.key === null ? 1 : -1;
      }
      if (a.key < b.key) return -sign;
      if (a.key > b.key) return sign;
      return a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", order);
  }

  function setUp() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead th[data-sort]").forEach(function (th) {
        const button = th.querySelector("button");
        (button || th).addEventListener("click", function () { sortBy(table, th); });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
