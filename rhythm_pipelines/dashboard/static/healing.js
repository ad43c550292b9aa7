// Healing: a timeline of events -> actions -> verification -> resolution or escalation, filterable.
"use strict";
function skeleton() {
  const p = RHYTHM.params();
  document.getElementById("content").innerHTML = `
    <div class="filters">
      <label>kind <select id="kind"><option value="">all</option></select></label>
      <label>target <input id="target" placeholder="host or channel@region" value="${RHYTHM.esc(p.get("target") || "")}"></label>
      <label>level <select id="level"><option value="">all</option><option>soft</option><option>hard</option><option>critical</option></select></label>
      <label>range <select id="hours">${[1, 6, 24, 72, 168].map((h) => `<option value="${h}">${h} h</option>`).join("")}</select></label>
    </div>
    <section><div id="timeline" class="chart" data-testid="healing-timeline"></div></section>
    <section><h2>Events</h2><div id="events"></div></section>`;
  document.getElementById("level").value = p.get("level") || "";
  document.getElementById("hours").value = p.get("hours") || "24";
  for (const id of ["kind", "target", "level", "hours"]) {
    document.getElementById(id).addEventListener("change", (e) => { RHYTHM.setParam(id, e.target.value); refresh(); });
  }
}

const COLOR = { resolved: "#1a7f37", escalated: "#cf222e", open: "#b7791f", suppressed: "#9a6700",
  "already resolved": "#8c959f", "dry run": "#8c959f", reported: "#8c959f" };
function draw(d) {
  const kind = document.getElementById("kind");
  const chosen = RHYTHM.params().get("kind") || "";
  const kinds = [...new Set(d.kinds.concat(chosen ? [chosen] : []))];
  kind.innerHTML = `<option value="">all</option>` + kinds.map((k) => `<option>${RHYTHM.esc(k)}</option>`).join("");
  kind.value = chosen;
  const ev = d.events;
  const traces = Object.keys(COLOR).map((ended) => {
    const mine = ev.filter((e) => e.ended === ended);
    return { type: "scatter", mode: "markers", name: ended, marker: { color: COLOR[ended], size: 9 },
      x: mine.map((e) => e.detected), y: mine.map((e) => `${e.kind} · ${e.target}`),
      text: mine.map((e) => `${e.level}: ${e.steps.map((s) => s.step + (s.action ? " " + s.action : "") + " → " + s.outcome).join(", ")} (${e.seconds} s)`),
      hovertemplate: "%{x}<br>%{y}<br>%{text}<extra></extra>" };
  });
  const rows = new Set(ev.map((e) => `${e.kind} · ${e.target}`)).size;
  document.getElementById("timeline").style.height = Math.max(200, 22 * rows + 80) + "px";
  RHYTHM.plot("timeline", traces, { yaxis: { automargin: true, type: "category", dtick: 1 }, margin: { l: 10, r: 10, t: 10, b: 30 } });
  document.getElementById("events").innerHTML = ev.length ? `<table data-testid="healing-events">
    <tr><th>detected</th><th>kind</th><th>target</th><th>level</th><th>steps</th><th>ended</th><th>took</th><th></th></tr>
    ${ev.map((e) => `<tr><td>${RHYTHM.time(e.detected)}</td><td>${RHYTHM.esc(e.kind)}</td><td>${RHYTHM.esc(e.target)}</td>
      <td><span class="badge ${RHYTHM.esc(e.level)}">${RHYTHM.esc(e.level || "?")}</span></td>
      <td>${e.steps.map((s) => RHYTHM.esc(s.step + (s.action ? " " + s.action : "") + " → " + s.outcome)).join("<br>")}</td>
      <td><span class="badge ${RHYTHM.esc(e.ended.replace(" ", "-"))}">${RHYTHM.esc(e.ended)}</span>${e.replayed ? " (replay)" : ""}</td>
      <td>${RHYTHM.num(e.seconds)} s</td><td>${RHYTHM.runLink(e.run_id)}
        ${RHYTHM.partitionLink("healing_report", e.detected.slice(0, 10), "day report")}</td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="healing-events">No healing event in this range.</p>`;
}

async function refresh() {
  const p = RHYTHM.params();
  const q = new URLSearchParams({ hours: p.get("hours") || "24" });
  for (const k of ["kind", "target", "level"]) if (p.get(k)) q.set(k, p.get(k));
  draw(await RHYTHM.json("/api/healing?" + q));
}
skeleton();
RHYTHM.poll(refresh);
