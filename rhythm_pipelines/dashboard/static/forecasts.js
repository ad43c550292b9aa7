// Forecasts: accuracy per series against Naive, the models serving, their last retraining.
"use strict";
function skeleton() {
  const p = RHYTHM.params();
  document.getElementById("content").innerHTML = `
    <div class="filters"><label>range <select id="hours">${[6, 24, 72, 168].map((h) => `<option value="${h}">${h} h</option>`).join("")}</select></label>
      <span class="muted">MAPE of the forecasts served for the range against the value that came; Naive: the last value known when each was issued</span>
      · ${RHYTHM.assetLink("forecast_accuracy", "forecast accuracy asset")} · ${RHYTHM.assetLink("forecaster_models", "models asset")}</div>
    <section><div id="skill" class="chart" data-testid="forecast-skill" style="height:320px"></div></section>
    <section><h2>Accuracy per series</h2><div id="accuracy"></div></section>
    <section><h2>Models serving</h2><div id="models"></div></section>`;
  document.getElementById("hours").value = p.get("hours") || "24";
  document.getElementById("hours").addEventListener("change", (e) => { RHYTHM.setParam("hours", e.target.value); refresh(); });
}

function draw(d) {
  const a = d.accuracy;
  const names = a.map((r) => `${r.source} ${r.metric} (${r.horizon})`);
  RHYTHM.plot("skill", [
    { type: "bar", x: names, y: a.map((r) => r.mape), name: "served model" },
    { type: "bar", x: names, y: a.map((r) => r.naive_mape), name: "Naive" },
  ], { barmode: "group", title: { text: "MAPE per series (lower is better; target < 15 %)", font: { size: 12 } }, xaxis: { type: "category" },
    yaxis: { title: { text: "MAPE" }, tickformat: ".0%" },
    shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.15, y1: 0.15, line: { color: "#cf222e", dash: "dash" } }] });
  document.getElementById("accuracy").innerHTML = a.length ? `<table data-testid="forecast-accuracy"><tr><th>series</th><th>horizon</th><th>model</th><th>points</th><th>MAPE</th><th>Naive MAPE</th><th>skill vs Naive</th><th>in 80 % band</th></tr>
    ${a.map((r) => `<tr><td>${RHYTHM.esc(r.source)} ${RHYTHM.esc(r.metric)}</td><td>${RHYTHM.esc(r.horizon)}</td><td>${RHYTHM.esc(r.model)}</td><td>${r.points}</td>
      <td><span class="badge ${r.mape < 0.15 ? "green" : r.mape < 0.25 ? "amber" : "red"}">${RHYTHM.pct(r.mape)}</span></td><td>${RHYTHM.pct(r.naive_mape)}</td>
      <td>${RHYTHM.pct(r.skill)}</td><td>${RHYTHM.pct(r.coverage_80, 0)}</td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="forecast-accuracy">No forecast served for this range.</p>`;
  document.getElementById("models").innerHTML = d.models.length ? `<table data-testid="models"><tr><th>series</th><th>model</th><th>version</th><th>trained until</th><th>fit (s)</th></tr>
    ${d.models.map((m) => `<tr><td>${RHYTHM.esc(m.source)} ${RHYTHM.esc(m.metric)}</td><td>${RHYTHM.esc(m.model)}</td><td>${m.version}</td><td>${RHYTHM.esc(RHYTHM.time(m.trained_until))}</td><td>${RHYTHM.num(m.fit_s, 2)}</td></tr>`).join("")}</table>`
    : `<p class="muted" data-testid="models">No model in the registry yet (materialize forecaster_models).</p>`;
}

async function refresh() {
  draw(await RHYTHM.json("/api/forecasts?hours=" + (RHYTHM.params().get("hours") || "24")));
}
skeleton();
RHYTHM.poll(refresh);
