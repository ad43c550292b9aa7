// Cost and ROI: spend against budgets, spend by channel/region/class, the frontier, the plan and its savings.
"use strict";
function skeleton() {
  const p = RHYTHM.params();
  document.getElementById("content").innerHTML = `
    <div class="filters"><label>range <select id="hours">${[6, 24, 72, 168].map((h) => `<option value="${h}">${h} h</option>`).join("")}</select></label>
      <span class="muted">prices: logged cost where calls carry one, else the catalog's; spend, frontier and savings
      as of <span id="computed-at">…</span> (recomputed each minute), budgets live</span></div>
    <div class="tiles" id="roi"></div>
    <section><h2>Budgets <span class="muted">(spent, and projected to the period's end at the last day's rate)</span></h2><div id="budgets"></div></section>
    <div class="grid2">
      <section><div id="by-channel" class="chart" data-testid="by-channel"></div></section>
      <section><div id="hourly" class="chart"></div></section>
      <section><div id="by-region" class="chart"></div></section>
      <section><div id="by-class" class="chart"></div></section>
    </div>
    <section><h2>Cost / latency frontier of the range's routes <span class="muted">(on the frontier: no route is both cheaper and faster)</span>
      · ${RHYTHM.assetLink("cost_pareto_frontier", "frontier asset")} · ${RHYTHM.assetLink("routing_plan", "routing plan asset")}</h2>
      <div id="frontier" class="chart" data-testid="frontier" style="height:360px"></div></section>
    <section><h2>Routing plan in force</h2><div id="plan"></div></section>`;
  document.getElementById("hours").value = p.get("hours") || "24";
  document.getElementById("hours").addEventListener("change", (e) => { RHYTHM.setParam("hours", e.target.value); refresh(); });
}

function bar(id, title, by) {
  RHYTHM.plot(id, [{ type: "bar", x: by ? by.labels : [], y: by ? by.usd : [], hovertemplate: "%{x}: $%{y:.2f}<extra></extra>" }],
    { title: { text: title, font: { size: 12 } }, xaxis: { type: "category" }, yaxis: { title: { text: "USD" } }, showlegend: false });
}

function draw(d) {
  document.getElementById("computed-at").textContent = RHYTHM.time(d.computed_at);
  const s = d.savings;
  const tiles = [
    ["Spend in range", RHYTHM.usd(d.total_usd), "priced calls"],
    ["Plan in force", d.plan ? d.plan.plan_id : "none", d.plan ? d.plan.mode : "materialize routing_plan"],
    ["Saved by the plan (replayed)", s && !s.error ? RHYTHM.usd(s.saving) : "–",
      s && !s.error ? `${RHYTHM.pct(s.saving_share)} of ${RHYTHM.usd(s.observed_cost)} since ${RHYTHM.time(s.since)}; latency ${s.latency_change >= 0 ? "+" : ""}${RHYTHM.pct(s.latency_change)}` : (s && s.error) || "no calls since the plan"],
  ];
  document.getElementById("roi").innerHTML = tiles.map(([l, v, t]) => `<div class="tile ${l.startsWith("Saved") && s && !s.error ? (s.saving > 0 ? "green" : "red") : "grey"}">
    <div class="label" title="${l.startsWith("Saved") ? "the default plan (cheapest no slower than observed) fitted on the plan's day, replayed on the calls since, against what they cost; a plan fitted with a budget or SLO differs" : ""}">${RHYTHM.esc(l)}</div><div class="value" data-testid="roi-${l.split(" ")[0].toLowerCase()}">${RHYTHM.esc(v)}</div><div class="target">${RHYTHM.esc(t)}</div></div>`).join("");
  document.getElementById("budgets").innerHTML = `<table data-testid="budgets"><tr><th>budget</th><th>period</th><th>scope</th><th>spent</th><th>projected</th><th>amount</th><th>used</th><th>projected</th></tr>
    ${d.budgets.map((b) => `<tr><td>${RHYTHM.esc(b.name)}</td><td>${RHYTHM.esc(b.period)} (to ${RHYTHM.time(b.period_end)})</td><td>${RHYTHM.esc(b.scope)}</td>
      <td>${RHYTHM.usd(b.spent)}</td><td>${RHYTHM.usd(b.projected)}</td><td>${RHYTHM.usd(b.amount)}</td>
      <td><span class="badge ${b.used >= 1 ? "red" : b.used >= 0.85 ? "amber" : "green"}">${RHYTHM.pct(b.used, 0)}</span></td>
      <td><span class="badge ${b.projected_used >= 1 ? "red" : b.projected_used >= 0.85 ? "amber" : "green"}">${RHYTHM.pct(b.projected_used, 0)}</span></td></tr>`).join("")}</table>`;
  bar("by-channel", "spend by channel", d.by.channel);
  bar("by-region", "spend by region", d.by.region);
  bar("by-class", "spend by request class", d.by.class);
  RHYTHM.plot("hourly", d.hourly.map((h) => ({ type: "bar", x: h.ts, y: h.usd, name: h.channel })),
    { barmode: "stack", title: { text: "spend per hour by channel", font: { size: 12 } }, yaxis: { title: { text: "USD" } } });
  const f = d.frontier || [];
  const pts = (on) => f.filter((r) => r.pareto === on);
  RHYTHM.plot("frontier", [true, false].map((on) => ({
    type: "scatter", mode: "markers+text", name: on ? "on the frontier" : "dominated",
    x: pts(on).map((r) => r.cost_per_call), y: pts(on).map((r) => r.p95_latency_ms), text: pts(on).map((r) => r.route),
    textposition: "top center", marker: { size: 11, color: on ? "#1a7f37" : "#8c959f" },
    customdata: pts(on).map((r) => [r.error_rate, r.mean_latency_ms]),
    hovertemplate: "%{text}<br>$%{x:.5f}/call, p95 %{y:.0f} ms, mean %{customdata[1]:.0f} ms, errors %{customdata[0]:.2%}<extra></extra>",
  })), { xaxis: { title: { text: "cost per call (USD)" }, type: "linear", tickformat: "$.4f" }, yaxis: { title: { text: "p95 latency (ms)" } } });
  const plan = d.plan;
  document.getElementById("plan").innerHTML = plan ? `<p>${RHYTHM.esc(plan.mode)}; fitted on ${RHYTHM.time(plan.fitted_on)}
      (${RHYTHM.partitionLink("routing_plan", plan.plan_id, "its run")}, ${RHYTHM.partitionLink("cost_report_daily", plan.plan_id, "that day's cost report")}); expected
      ${RHYTHM.usd(plan.expected.cost_usd)}/day, mean ${RHYTHM.num(plan.expected.mean_latency_ms, 0)} ms, p95 ${RHYTHM.num(plan.expected.p95_latency_ms, 0)} ms</p>
    <table data-testid="plan"><tr><th>class</th><th>route: share of the day</th></tr>${Object.entries(plan.shares).map(([cls, routes]) =>
      `<tr><td>${RHYTHM.esc(cls)}</td><td>${Object.entries(routes).map(([r, v]) => `${RHYTHM.esc(r)}: ${RHYTHM.pct(v)}`).join(" · ")}</td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="plan">No routing plan yet: materialize routing_plan in Dagster.</p>`;
}

async function refresh() {
  draw(await RHYTHM.json("/api/cost?hours=" + (RHYTHM.params().get("hours") || "24")));
}
skeleton();
RHYTHM.poll(refresh);
