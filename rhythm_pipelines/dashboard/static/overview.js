// Overview: the seed's KPIs against their targets, open incidents, budgets, and the last day's trend.
"use strict";
const TILES = [
  // key in /api/kpis, label, format, target text, trend column (or null)
  ["availability", "Availability (24 h)", (v) => RHYTHM.pct(v, 2), "target ≥ 99.5 %; an escalated incident is down until resolved", "availability"],
  ["auto_recovery_rate", "Auto-recovery rate (24 h)", (v) => RHYTHM.pct(v), "target ≥ 90 % (aim 98 %)", "auto_recovery_rate"],
  ["mttr_p95_s", "Detection → resolution p95", (v) => RHYTHM.unit(RHYTHM.num(v), "s"), "target ≤ 30 s", "mttr_p95_s"],
  ["mttr_s", "MTTR (mean)", (v) => RHYTHM.unit(RHYTHM.num(v), "s"), "resolved incidents, 24 h", null],
  ["task_failure_rate", "Task failure rate (24 h)", (v) => RHYTHM.pct(v, 2), "target < 2 %", "task_failure_rate"],
  ["open_incidents", "Open incidents", (v) => String(v ?? "–"), "unresolved or being handled", "incidents"],
  ["anomaly_precision", "Anomaly precision", (v) => RHYTHM.pct(v), "on labelled incidents, 24 h; target ≥ 90 %", null],
  ["anomaly_recall", "Anomaly recall", (v) => RHYTHM.pct(v), "on labelled incidents, 24 h; target ≥ 90 %", null],
  ["forecast_mape", "Forecast error (MAPE)", (v) => RHYTHM.pct(v), "served forecasts, 24 h; target < 15 %", null],
  ["spend_today_usd", "Spend today", (v) => RHYTHM.usd(v), "since 00:00 UTC", "spend_usd"],
  ["budget_used", "Daily budget used", (v) => RHYTHM.pct(v, 0), "global daily budget", null],
];
const GRADE_OF = { open_incidents: (v) => (v ? "red" : "green"), spend_today_usd: () => "grey", mttr_s: () => "grey" };

function skeleton() {
  document.getElementById("content").innerHTML = `
    <div class="tiles" id="tiles">${TILES.map(([k, label]) => `
      <div class="tile grey" id="tile-${k}" data-kpi="${k}">
        <div class="label">${RHYTHM.esc(label)}</div>
        <div class="value" data-testid="kpi-${k}">…</div>
        <div class="target"></div>
        <div class="spark" id="spark-${k}"></div>
      </div>`).join("")}
    </div>
    <section><h2>Open incidents <span class="muted">(what healing is doing now)</span></h2><div id="open"></div></section>
    <section><h2>Budgets <span class="muted">spent and projected to the end of each period ·
      ${RHYTHM.assetLink("healing_report", "healing report")} · ${RHYTHM.assetLink("detector_scorecard", "detector scorecard")}
      · ${RHYTHM.assetLink("forecast_accuracy", "forecast accuracy")}</span></h2><div id="budgets" class="chart"></div></section>
    <section><h2>Last 24 hours</h2><div class="grid2">
      <div id="trend-health" class="chart"></div><div id="trend-spend" class="chart"></div></div></section>`;
}

function drawTiles(k, trend) {
  for (const [key, , fmt, target, col] of TILES) {
    const tile = document.getElementById("tile-" + key);
    const grade = (GRADE_OF[key] ? GRADE_OF[key](k[key]) : k.grades[key]) || "grey";
    tile.className = "tile " + grade;
    tile.dataset.value = k[key] === null || k[key] === undefined ? "" : String(k[key]);
    tile.querySelector(".value").textContent = fmt(k[key]);
    tile.querySelector(".target").textContent = target;
    if (col && trend && trend.hours[col]) {
      const spark = { margin: { l: 0, r: 0, t: 0, b: 0 }, xaxis: { visible: false }, yaxis: { visible: false }, showlegend: false };
      RHYTHM.ready.then(() => Plotly.react("spark-" + key, [{ x: trend.hours.hour, y: trend.hours[col], type: "scatter",
        mode: "lines", line: { width: 1.5 }, hovertemplate: "%{x|%H:00}: %{y}<extra></extra>" }], spark,
        { displayModeBar: false, responsive: true }));
    }
  }
}

function drawOpen(k) {
  const rows = k.open || [];
  document.getElementById("open").innerHTML = rows.length ? `<table data-testid="open-incidents">
    <tr><th>since</th><th>kind</th><th>target</th><th>severity</th><th>status</th><th>last step</th><th></th></tr>
    ${rows.map((r) => `<tr><td>${RHYTHM.time(r.start)}</td><td>${RHYTHM.esc(r.kind)}</td><td>${RHYTHM.esc(r.source)}</td>
      <td><span class="badge ${RHYTHM.esc(r.level)}">${RHYTHM.esc(r.level || "?")}</span></td><td>${RHYTHM.esc(r.status)}</td>
      <td>${RHYTHM.esc([r.step, r.action, r.outcome].filter(Boolean).join(" · "))} (${RHYTHM.time(r.last)})</td>
      <td><a href="/healing?target=${encodeURIComponent(r.source)}">timeline</a></td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="open-incidents">No open incident.</p>`;
}

function drawBudgets(k) {
  const b = k.budgets || [];
  const names = b.map((x) => `${x.name} (${x.period}, ${x.scope})`);
  const hover = b.map((x) => `spent ${RHYTHM.usd(x.spent)}, projected ${RHYTHM.usd(x.projected)} of ${RHYTHM.usd(x.amount)}`);
  RHYTHM.plot("budgets", [
    { y: names, x: b.map((x) => x.used), name: "spent so far", type: "bar", orientation: "h", marker: { color: "#0969da" },
      text: hover, textposition: "none", hovertemplate: "%{text}<extra></extra>" },
    { y: names, x: b.map((x) => Math.max(0, x.projected_used - x.used)), name: "projected to the period's end", type: "bar",
      orientation: "h", marker: { color: "#a5d6ff" }, text: hover, textposition: "none", hovertemplate: "%{text}<extra></extra>" },
  ], { barmode: "stack", xaxis: { title: { text: "share of the budget" }, tickformat: ".0%", type: "linear" },
    shapes: [{ type: "line", x0: 1, x1: 1, yref: "paper", y0: 0, y1: 1, line: { color: "#cf222e", width: 2 } }],
    margin: { l: 260, r: 10, t: 10, b: 40 } });
}

function drawTrend(trend) {
  const h = trend.hours;
  RHYTHM.plot("trend-health", [
    { x: h.hour, y: h.availability, name: "availability", type: "scatter", mode: "lines+markers" },
    { x: h.hour, y: h.auto_recovery_rate, name: "auto-recovery", type: "scatter", mode: "lines+markers" },
    { x: h.hour, y: h.task_failure_rate, name: "task failure rate", type: "scatter", mode: "lines+markers" },
  ], { title: { text: "health per hour", font: { size: 12 } }, yaxis: { title: { text: "share" }, tickformat: ".0%", range: [0, 1.05] } });
  RHYTHM.plot("trend-spend", [
    { x: h.hour, y: h.spend_usd, name: "spend per hour", type: "bar" },
  ], { title: { text: "spend per hour", font: { size: 12 } }, yaxis: { title: { text: "USD" } } });
}

skeleton();
RHYTHM.poll(async () => {
  const [k, trend] = await Promise.all([RHYTHM.json("/api/kpis"), RHYTHM.json("/api/trend?hours=24")]);
  if (k.stale) throw new Error(`the figures are ${Math.round(k.snapshot_age_s)} s old: the server cannot refresh them (see its log)`);
  drawTiles(k, trend);
  drawOpen(k);
  drawBudgets(k);
  drawTrend(trend);
});
