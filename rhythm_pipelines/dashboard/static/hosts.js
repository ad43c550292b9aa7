// Hosts: CPU, memory, load and processes per host, with anomaly markers and the forecasts drawn ahead.
"use strict";
const UNITS = { cpu_percent: "%", mem_percent: "%", load1: "load (1 min)", process_count: "processes", zombie_count: "zombies" };

function skeleton(hosts) {
  const p = RHYTHM.params();
  document.getElementById("content").innerHTML = `
    <div class="filters">
      <label>host <select id="host"><option value="">all</option>${hosts.map((h) => `<option>${RHYTHM.esc(h)}</option>`).join("")}</select></label>
      <label>range <select id="hours">${[1, 6, 24, 72, 168].map((h) => `<option value="${h}">${h} h</option>`).join("")}</select></label>
      <span class="muted">anomaly events marked ✕; forecasts dashed with their 80 % band; a large fleet shows its median and p95 (dotted) and its busiest hosts</span>
    </div>
    <section><h2>Now <span class="muted">(the last 15 minutes)</span></h2><div id="latest"></div></section>
    <section><h2>Watched processes <span class="muted">(hung: a heartbeat older than the health sensor's bar; zombies: the host table)</span></h2><div id="procs"></div></section>
    <div class="grid2" id="charts"></div>`;
  document.getElementById("host").value = p.get("host") || "";
  document.getElementById("hours").value = p.get("hours") || "6";
  for (const id of ["host", "hours"]) {
    document.getElementById(id).addEventListener("change", (e) => { RHYTHM.setParam(id, e.target.value); refresh(); });
  }
}

function draw(d) {
  document.getElementById("latest").innerHTML = `<table data-testid="hosts-latest"><tr><th>host</th>${Object.keys(UNITS).map((m) => `<th>${m}</th>`).join("")}</tr>
    ${d.latest.map((r) => `<tr><td>${RHYTHM.esc(r.host)}</td>${Object.keys(UNITS).map((m) => `<td>${RHYTHM.num(r[m])}</td>`).join("")}</tr>`).join("")}</table>`;
  const procs = d.processes || [];
  document.getElementById("procs").innerHTML = procs.length ? `<table data-testid="processes"><tr><th>process</th><th>CPU %</th><th>RSS (MB)</th><th>heartbeat age (s)</th><th></th></tr>
    ${procs.map((r) => `<tr><td>${RHYTHM.esc(r.process)}</td><td>${RHYTHM.num(r.proc_cpu_percent)}</td><td>${RHYTHM.num(r.proc_rss_bytes === undefined || r.proc_rss_bytes === null ? null : r.proc_rss_bytes / 1e6)}</td>
      <td>${RHYTHM.num(r.heartbeat_age_s)}</td><td>${r.heartbeat_age_s > d.hung_after_s ? '<span class="badge red">hung</span>' : ""}</td></tr>`).join("")}</table>`
    : `<p class="muted">No process reported in the last 15 minutes.</p>`;
  const charts = document.getElementById("charts");
  const metrics = [...new Set(d.series.map((s) => s.metric))];
  charts.innerHTML = metrics.map((m) => `<section><div id="chart-${m}" class="chart" data-testid="chart-${m}"></div></section>`).join("");
  for (const m of metrics) {
    const traces = d.series.filter((s) => s.metric === m).map((s) => ({ x: s.ts, y: s.value, name: s.source, legendgroup: s.source, type: "scatter", mode: "lines",
      line: s.source.startsWith("fleet") ? { width: 3, color: s.source === "fleet p95" ? "#8c959f" : "#24292f", dash: "dot" } : { width: 1 } }));
    for (const f of d.forecasts.filter((f) => f.metric === m)) {
      traces.push({ x: f.ts.concat([...f.ts].reverse()), y: f.hi_80.concat([...f.lo_80].reverse()), fill: "toself", type: "scatter",
        mode: "lines", line: { width: 0 }, fillcolor: "rgba(9,105,218,0.15)", name: `${f.source} ${f.horizon} 80 %`, legendgroup: f.source, showlegend: false, hoverinfo: "skip" });
      traces.push({ x: f.ts, y: f.mean, name: `${f.source} forecast`, legendgroup: f.source, type: "scatter", mode: "lines", line: { dash: "dash", width: 1.5 },
        hovertemplate: `%{x}<br>${RHYTHM.esc(f.source)} ${f.horizon} forecast (${RHYTHM.esc(f.model)}): %{y}<extra></extra>` });
    }
    const marks = d.anomalies.filter((a) => a.metric === m);
    if (marks.length) {
      const lastValue = (a) => { const s = d.series.find((x) => x.source === a.source && x.metric === m); if (!s) return null;
        let best = null; for (let i = 0; i < s.ts.length; i++) if (s.ts[i] <= a.ts) best = s.value[i]; return best; };
      traces.push({ x: marks.map((a) => a.ts), y: marks.map(lastValue), text: marks.map((a) => `${a.source}: ${a.severity} (score ${a.score})`),
        name: "anomaly events", mode: "markers", type: "scatter", marker: { symbol: "x", size: 10, color: "#cf222e" } });
    }
    RHYTHM.plot("chart-" + m, traces, { title: { text: m, font: { size: 12 } }, yaxis: { title: { text: UNITS[m] || "" } } });
  }
}

let hostsKnown = null;
async function refresh() {
  const p = RHYTHM.params();
  const q = new URLSearchParams({ hours: p.get("hours") || "6" });
  if (p.get("host")) q.set("host", p.get("host"));
  const d = await RHYTHM.json("/api/hosts?" + q);
  if (hostsKnown === null) { hostsKnown = d.hosts; skeleton(d.hosts); }
  draw(d);
}
RHYTHM.poll(refresh);
