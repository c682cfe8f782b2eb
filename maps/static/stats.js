/* voirie statistics dashboard: three charts drawn with the vendored Chart.js from the
   page's JSON data block (#voirie-stats-data). The tables below them hold every figure. */
(function () {
  "use strict";
  var block = document.getElementById("voirie-stats-data");
  if (!block || typeof Chart === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var L = data.labels, C = data.charts;
  var blue = "#2b5797", red = "#b00020", orange = "#f0a500", grey = "#8a8a8a";
  Chart.defaults.animation = false;  // printed and screenshotted as drawn
  Chart.defaults.maintainAspectRatio = false;

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  }

  draw("voirie-chart-team", {
    type: "bar",
    data: {
      labels: C.team.labels,
      datasets: [
        { label: L.backlog, data: C.team.backlog, backgroundColor: blue },
        { label: L.overdue, data: C.team.overdue, backgroundColor: red }
      ]
    },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true } } }
  });

  draw("voirie-chart-week", {
    data: {
      labels: C.week.labels,
      datasets: [
        { type: "bar", label: L.reported, data: C.week.reported, backgroundColor: blue,
          yAxisID: "count" },
        { type: "line", label: L.sla_pct, data: C.week.sla_pct, borderColor: orange,
          backgroundColor: orange, yAxisID: "pct", spanGaps: true }
      ]
    },
    options: {
      scales: {
        count: { position: "left", beginAtZero: true },
        pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } }
      }
    }
  });

  draw("voirie-chart-zone", {
    type: "bar",
    data: {
      labels: C.zone.labels,
      datasets: [
        { label: L.resolve_median_h, data: C.zone.median, backgroundColor: blue },
        { label: L.resolve_p90_h, data: C.zone.p90, backgroundColor: grey }
      ]
    },
    options: { scales: { y: { beginAtZero: true } } }
  });
})();
