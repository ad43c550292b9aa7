"""A real Prometheus (Debian's) scrapes `rhythm dashboard`; PromQL answers what /api/kpis says, and every
query of the Grafana dashboard in deploy/grafana/ returns data."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .conftest import free_port

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "rhythm-overview.json"
KPI_METRICS = {
    "availability": "rhythm_availability_ratio",
    "auto_recovery_rate": "rhythm_auto_recovery_ratio",
    "mttr_s": "rhythm_mttr_seconds",
    "task_failure_rate": "rhythm_task_failure_ratio",
    "spend_today_usd": "rhythm_spend_today_usd",
    "open_incidents": "rhythm_open_incidents",
}


@pytest.fixture(scope="module")
def prometheus(dashboard, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run the tests through `make test` (it installs Debian's prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    target = dashboard.url.removeprefix("http://")
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: rhythm\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    log = (root / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            try:
                up = query(url, 'up{job="rhythm"}')
                scrapes = query(url, 'count_over_time(up{job="rhythm"}[1m])')
                if up and up[0]["value"][1] == "1" and scrapes and float(scrapes[0]["value"][1]) >= 3:
                    break  # three scrapes: rates and increases have points to work on
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            log_tail = (root / "prometheus.log").read_text()[-2000:]
            raise AssertionError(f"prometheus never scraped the dashboard: {log_tail}")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def query(url: str, promql: str) -> list:
    res = requests.get(url + "/api/v1/query", params={"query": promql}, timeout=10).json()
    assert res["status"] == "success", res
    return res["data"]["result"]


def test_promql_returns_the_kpis_of_the_api(prometheus, dashboard):
    api = requests.get(dashboard.url + "/api/kpis", timeout=30).json()
    for key, metric in KPI_METRICS.items():
        result = query(prometheus, metric)
        assert len(result) == 1, metric
        assert float(result[0]["value"][1]) == pytest.approx(api[key]), metric
    actions = query(prometheus, "sum by (outcome) (rhythm_healing_actions_total)")
    assert actions and sum(float(r["value"][1]) for r in actions) > 0
    runs = {(r["metric"]["dagster_job"], r["metric"]["status"]): float(r["value"][1])
            for r in query(prometheus, "rhythm_dagster_runs")}  # fmt: skip
    assert runs == {("__ephemeral_asset_job__", "failed_24h"): 1.0}  # its one failed run; none queued or running
    budgets = query(prometheus, 'rhythm_budget_spent_usd{budget="all-daily"}')
    assert float(budgets[0]["value"][1]) == pytest.approx(api["spend_today_usd"])


def test_grafana_dashboard_is_well_formed_and_every_query_has_data(prometheus):
    board = json.loads(GRAFANA.read_text())
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in board["templating"]["list"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    for p in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["type"] in ("stat", "timeseries", "table", "bargauge")
    for expr in exprs:
        assert query(prometheus, expr.replace("$__rate_interval", "1m")), expr  # each panel would show data
