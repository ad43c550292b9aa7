// Shared by every page: polling, number formats, links into the Dagster UI, URL-held filters.
"use strict";
const RHYTHM = {
  // plotly.js (4 MB) loads while the page fetches its data: figures show first, charts when it is ready
  ready: new Promise((resolve) => {
    if (window.Plotly) resolve();
    else document.getElementById("plotly-js").addEventListener("load", () => resolve());
  }),
  dagster: () => document.body.dataset.dagster,
  refreshMs: () => Number(document.body.dataset.refreshMs || 5000),
  params: () => new URLSearchParams(window.location.search),
  setParam(name, value) {
    const p = RHYTHM.params();
    if (value === null || value === "" || value === undefined) p.delete(name); else p.set(name, value);
    history.replaceState(null, "", window.location.pathname + (p.toString() ? "?" + p : ""));
  },
  async json(path) {
    const r = await fetch(path, { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  },
  // poll `load` now and every refresh interval; errors are shown, not thrown
  poll(load) {
    const run = async () => {
      try {
        await load();
        await RHYTHM.ready;  // the charts queued by load() are drawn before this resolves
        document.body.dataset.drawn = String(Number(document.body.dataset.drawn || 0) + 1);
        document.getElementById("error").hidden = true;
        document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      } catch (e) {
        const box = document.getElementById("error");
        box.textContent = "could not load data: " + e.message;
        box.hidden = false;
      }
    };
    run();
    return setInterval(run, RHYTHM.refreshMs());
  },
  pct: (x, digits = 1) => (x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + " %"),
  num: (x, digits = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits)),
  unit: (text, unit) => (text === "–" ? text : `${text} ${unit}`),
  usd: (x) => (x === null || x === undefined ? "–" : "$" + Number(x).toLocaleString("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 })),
  time: (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "–"),
  esc: (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])),
  runLink: (runId) => (runId && !String(runId).startsWith("replay:") && !String(runId).startsWith("sim-")
    ? `<a href="${RHYTHM.dagster()}/runs/${encodeURIComponent(runId)}" target="_blank" rel="noopener">run ↗</a>` : ""),
  assetLink: (key, label) => `<a href="${RHYTHM.dagster()}/assets/${key.split("/").map(encodeURIComponent).join("/")}" target="_blank" rel="noopener">${RHYTHM.esc(label || key)} ↗</a>`,
  partitionLink: (key, partition, label) => `<a href="${RHYTHM.dagster()}/assets/${key.split("/").map(encodeURIComponent).join("/")}?view=partitions&partition=${encodeURIComponent(partition)}" target="_blank" rel="noopener">${RHYTHM.esc(label || partition)} ↗</a>`,
  layout: (extra) => Object.assign({
    margin: { l: 50, r: 10, t: 30, b: 35 }, font: { size: 11 }, showlegend: true,
    legend: { orientation: "v", x: 1.02, y: 1, font: { size: 10 } }, xaxis: { type: "date" },
  }, extra || {}),
  plot(id, traces, layout, config) {
    RHYTHM.ready.then(() => Plotly.react(id, traces, layout === null ? {} : RHYTHM.layout(layout),
      config || { displaylogo: false, responsive: true }));
  },
};
