// Channels and regions: latency p50/p95, error and timeout rates, breaker state, reroutes, and a heat map.
"use strict";
function skeleton(channels) {
  const p = RHYTHM.params();
  document.getElementById("content").innerHTML = `
    <div class="filters">
      <label>channel <select id="channel"><option value="">all</option>${channels.map((c) => `<option>${RHYTHM.esc(c)}</option>`).join("")}</select></label>
      <label>range <select id="hours">${[1, 6, 24, 72, 168].map((h) => `<option value="${h}">${h} h</option>`).join("")}</select></label>
      <span class="muted">rates: errors (or timeouts) over calls per time bucket</span>
    </div>
    <div class="grid2">
      <section><h2>Breakers now <span class="muted">(the last 30 min of calls through the healing breaker)</span></h2><div id="breakers"></div></section>
      <section><h2>Reroutes in force</h2><div id="routes"></div></section>
    </div>
    <section><h2>Region × channel, last hour</h2><div class="grid2"><div id="heat-latency" class="chart" data-testid="heat-latency"></div><div id="heat-errors" class="chart"></div></div></section>
    <div class="grid2">
      <section><div id="chart-latency" class="chart" data-testid="chart-latency"></div></section>
      <section><div id="chart-errors" class="chart"></div></section>
      <section><div id="chart-calls" class="chart"></div></section>
    </div>`;
  document.getElementById("channel").value = p.get("channel") || "";
  document.getElementById("hours").value = p.get("hours") || "6";
  for (const id of ["channel", "hours"]) {
    document.getElementById(id).addEventListener("change", (e) => { RHYTHM.setParam(id, e.target.value); refresh(); });
  }
}

function draw(d) {
  document.getElementById("breakers").innerHTML = `<table data-testid="breakers"><tr><th>channel@region</th><th>state</th></tr>
    ${d.breakers.map((b) => `<tr><td>${RHYTHM.esc(b.source)}</td><td><span class="badge ${b.state === "closed" ? "green" : b.state === "open" ? "red" : "amber"}">${RHYTHM.esc(b.state)}</span></td></tr>`).join("")}</table>`;
  document.getElementById("routes").innerHTML = d.routes.length ? `<table data-testid="routes"><tr><th>from</th><th>to</th><th>until</th><th>event</th></tr>
    ${d.routes.map((r) => `<tr><td>${RHYTHM.esc(r.source)}</td><td>${RHYTHM.esc(r.to)}</td><td>${RHYTHM.time(r.until)}</td><td>${RHYTHM.esc(r.event_id || "")}</td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="routes">No reroute in force: every channel takes its own traffic.</p>`;
  const h = d.heat;
  RHYTHM.plot("heat-latency", [{ type: "heatmap", x: h.channels, y: h.regions, z: h.p95_latency_ms, colorscale: "YlOrRd", reversescale: true,
    colorbar: { title: { text: "ms" } }, hovertemplate: "%{y} · %{x}: p95 %{z} ms<extra></extra>" }],
    { title: { text: "p95 latency (ms)", font: { size: 12 } }, xaxis: { type: "category" }, showlegend: false, margin: { l: 110, r: 10, t: 30, b: 60 } });
  RHYTHM.plot("heat-errors", [{ type: "heatmap", x: h.channels, y: h.regions, z: h.error_rate, colorscale: "Reds", zmin: 0,
    colorbar: { title: { text: "share" }, tickformat: ".0%" }, hovertemplate: "%{y} · %{x}: %{z:.1%} errors<extra></extra>" }],
    { title: { text: "error + timeout rate", font: { size: 12 } }, xaxis: { type: "category" }, showlegend: false, margin: { l: 110, r: 10, t: 30, b: 60 } });
  const lines = (key) => d.series.map((s) => ({ x: s.ts, y: s[key], name: s.source, legendgroup: s.source, type: "scatter", mode: "lines", line: { width: 1 } }));
  const latency = lines("latency_ms_p95");
  for (const f of d.forecasts.filter((f) => f.metric === "latency_ms_p95")) {
    latency.push({ x: f.ts, y: f.mean, name: `${f.source} forecast`, legendgroup: f.source, type: "scatter", mode: "lines", line: { dash: "dash" } });
  }
  RHYTHM.plot("chart-latency", latency.concat(d.series.map((s) => ({ x: s.ts, y: s.latency_ms_p50, name: `${s.source} p50`, legendgroup: s.source,
    type: "scatter", mode: "lines", line: { width: 1, dash: "dot" }, visible: "legendonly" }))),
    { title: { text: "latency p95 (p50 in the legend)", font: { size: 12 } }, yaxis: { title: { text: "ms" } } });
  RHYTHM.plot("chart-errors", lines("error_rate").concat(d.series.map((s) => ({ x: s.ts, y: s.timeout_rate, name: `${s.source} timeouts`,
    legendgroup: s.source, type: "scatter", mode: "lines", line: { width: 1, dash: "dot" }, visible: "legendonly" }))),
    { title: { text: "error rate (timeouts in the legend)", font: { size: 12 } }, yaxis: { title: { text: "share" }, tickformat: ".0%" } });
  RHYTHM.plot("chart-calls", lines("calls"), { title: { text: "calls per minute", font: { size: 12 } }, yaxis: { title: { text: "calls / min" } } });
}

let known = null;
async function refresh() {
  const p = RHYTHM.params();
  const q = new URLSearchParams({ hours: p.get("hours") || "6" });
  if (p.get("channel")) q.set("channel", p.get("channel"));
  const d = await RHYTHM.json("/api/channels?" + q);
  if (known === null) { known = d.channels; skeleton(d.channels); }
  draw(d);
}
RHYTHM.poll(refresh);
