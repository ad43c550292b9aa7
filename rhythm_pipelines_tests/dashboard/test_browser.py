"""The dashboard in a real browser (Debian's Chromium): every page draws data with no console error, the KPI
tiles show the figures computed independently from the store, the filters live in the URL, and a new incident
reaches the open Overview within 10 s. Screenshots: test-artefacts/screenshots/dashboard_*.png."""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest

from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines_tests.browser import Console, chromium, screenshot

from .conftest import start_dashboard, stop
from .test_kpis import expected

PLOTTED = """() => [...document.querySelectorAll('.js-plotly-plot')].map(d => ({
    id: d.id, points: (d.data || []).reduce((n, t) => n + ((t.x || t.y || []).length), 0)}))"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = Console(page)
    page.goto(url)
    page.wait_for_function("() => Number(document.body.dataset.drawn || 0) >= 1")  # data in, charts drawn
    return page, console


def test_overview_shows_the_kpis_computed_from_the_store(browser, dashboard, filled):
    page, console = open_page(browser, dashboard.url + "/")
    want = expected(filled)
    for key in ("availability", "auto_recovery_rate", "mttr_s", "task_failure_rate", "spend_today_usd",
                "open_incidents"):  # fmt: skip
        shown = page.get_attribute(f"#tile-{key}", "data-value")
        assert float(shown) == pytest.approx(want[key], rel=1e-6, abs=2e-6), key
        assert page.inner_text(f"[data-testid=kpi-{key}]") not in ("…", "–"), key
    assert page.get_attribute("#tile-open_incidents", "class").endswith("red")  # open incidents: red
    rows = page.locator("[data-testid=open-incidents] tr").count() - 1
    assert rows == want["open_incidents"]
    plotted = page.evaluate(PLOTTED)
    assert {p["id"] for p in plotted} >= {"budgets", "trend-health", "trend-spend", "spark-availability"}
    assert all(p["points"] > 0 for p in plotted), plotted
    screenshot(page, "dashboard_overview")
    assert console.errors == []


def test_hosts_page_draws_every_host_with_anomalies_and_forecasts(browser, dashboard):
    page, console = open_page(browser, dashboard.url + "/hosts?hours=72")
    assert page.locator("[data-testid=hosts-latest] tr").count() - 1 == 6
    plotted = {p["id"]: p["points"] for p in page.evaluate(PLOTTED)}
    assert {"chart-cpu_percent", "chart-mem_percent", "chart-load1"} <= set(plotted)
    assert all(n > 0 for n in plotted.values()), plotted
    names = page.evaluate("() => document.getElementById('chart-cpu_percent').data.map(t => t.name)")
    assert "anomaly events" in names and any(n.endswith("forecast") for n in names)
    screenshot(page, "dashboard_hosts")
    assert console.errors == []


def test_filters_live_in_the_url(browser, dashboard):
    page, console = open_page(browser, dashboard.url + "/hosts?host=db-01&hours=24")
    sources = page.evaluate("() => document.getElementById('chart-cpu_percent').data.map(t => t.name)")
    assert "db-01" in sources and not any(s in sources for s in ("api-01", "web-01"))
    page.select_option("#host", "web-01")
    page.wait_for_function("() => window.location.search.includes('host=web-01')")
    page.wait_for_function(
        "() => document.getElementById('chart-cpu_percent').data.some(t => t.name === 'web-01')", timeout=10_000
    )
    assert console.errors == []


def test_healing_page_shows_the_timeline_filtered_by_kind(browser, dashboard):
    page, console = open_page(browser, dashboard.url + "/healing?hours=72")
    total = page.locator("[data-testid=healing-events] tr").count() - 1
    assert total >= 5
    links = page.locator("[data-testid=healing-events] a[href*='/assets/healing_report?view=partitions&partition=']")
    assert links.count() == total  # each event links to its day's report partition in the Dagster UI
    assert links.first.get_attribute("href").startswith("http://127.0.0.1:3000/assets/")
    assert all(p["points"] > 0 for p in page.evaluate(PLOTTED) if p["id"] == "timeline")
    screenshot(page, "dashboard_healing")
    kind = page.inner_text("[data-testid=healing-events] tr:nth-child(2) td:nth-child(2)")
    page.select_option("#kind", kind)
    page.wait_for_function(f"() => window.location.search.includes('kind={kind}')")
    page.wait_for_function(
        "(k) => [...document.querySelectorAll('[data-testid=healing-events] tr td:nth-child(2)')]"
        ".every(td => td.textContent === k)",
        arg=kind,
        timeout=10_000,
    )
    assert page.locator("[data-testid=healing-events] tr").count() - 1 < total
    assert console.errors == []


def test_a_new_incident_reaches_the_open_overview_within_10_seconds(browser, filled, tmp_path):
    """Live (no --as-of), default refresh: an incident written to the store shows without a reload."""
    shutil.copy(filled.db, tmp_path / "live.db")
    server = start_dashboard(tmp_path / "live.db", filled.landing, tmp_path / "live.log", "--refresh", "5")
    try:
        page, console = open_page(browser, server.url + "/")
        assert "new-host-7" not in page.inner_text("#open")
        now = pd.Timestamp.now(tz="UTC")
        event = f"new-host-7|cpu_spike|{now.isoformat()}"
        rows = [
            {"ts": now, "entry_id": f"live:{step}", "event_id": event, "run_id": "live-run", "kind": "cpu_spike",
             "source": "new-host-7", "level": "critical", "step": step, "action": "", "target": "new-host-7",
             "params": "{}", "outcome": outcome, "detail": "written by the test", "duration_ms": 1.0}
            for step, outcome in (("detect", "detected"), ("assess", "critical"))
        ]  # fmt: skip
        with SQLiteMetricsStore(tmp_path / "live.db") as store:
            store.write_table("healing_log", pd.DataFrame(rows))
        t0 = time.monotonic()
        page.wait_for_function("() => document.getElementById('open').textContent.includes('new-host-7')",
                               timeout=15_000)  # fmt: skip
        took = time.monotonic() - t0
        assert took <= 10.0, f"the incident showed after {took:.1f} s"
        screenshot(page, "dashboard_overview_new_incident")
        assert console.errors == []
    finally:
        stop(server)


@pytest.mark.parametrize(
    ("path", "charts", "tables"),
    [
        ("/channels?hours=6", {"heat-latency", "heat-errors", "chart-latency", "chart-errors", "chart-calls"},
         ("breakers", "routes")),
        ("/cost?hours=24", {"by-channel", "by-region", "by-class", "hourly", "frontier"}, ("budgets", "plan")),
        ("/forecasts?hours=24", {"skill"}, ("forecast-accuracy",)),
    ],
)  # fmt: skip
def test_channels_cost_and_forecasts_pages_draw_their_data(browser, dashboard, path, charts, tables):
    page, console = open_page(browser, dashboard.url + path)
    plotted = {p["id"]: p["points"] for p in page.evaluate(PLOTTED)}
    assert charts <= set(plotted) and all(plotted[c] > 0 for c in charts), plotted
    for t in tables:
        assert page.locator(f"table[data-testid={t}] tr").count() >= 2, t
    screenshot(page, "dashboard_" + path.strip("/").split("?")[0])
    assert console.errors == []
