"""The cost wiring: channel_costs, the frontier, the routing plan and the reports materialised over a real
SQLite store; the budget sensor's run requests and their run keys; budget_alert_job sending one alert."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from rhythm_pipelines.defs.cost import (
    CostResource,
    budget_alert_job,
    budget_sensor,
    channel_costs,
    cost_pareto_frontier,
    cost_report_daily,
    cost_report_weekly,
    routing_plan,
)
from rhythm_pipelines.defs.resources import LandingZone, SQLiteStoreResource
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.simulate import SimConfig, simulate

START = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday


@pytest.fixture(scope="module")
def sim_calls():
    return simulate(SimConfig(hosts=1, days=3, seed=2, start=START)).calls


@pytest.fixture
def cost_resources(tmp_path, sim_calls):
    db = tmp_path / "metrics.db"
    with SQLiteMetricsStore(db) as s:
        calls = sim_calls.rename(columns={"request_id": "call_id"}).assign(origin="sim")
        s.write_table("channel_calls", calls)
    return {
        "store": SQLiteStoreResource(path=str(db)),
        "cost": CostResource(reports_dir=str(tmp_path / "reports")),
        "landing": LandingZone(root=str(tmp_path / "landing")),
    }


def test_the_cost_assets_materialise_a_day_and_rerunning_it_is_idempotent(cost_resources, tmp_path):
    assets = [channel_costs, cost_pareto_frontier, routing_plan, cost_report_daily]
    for _ in range(2):
        result = dg.materialize(assets, partition_key="2026-03-03", resources=cost_resources)
        assert result.success
    with cost_resources["store"].open() as s:
        table = s.read_table("channel_costs")
        plans = s.read_table("routing_plans")
    assert len(table) == 8 and set(table["ts"]) == {pd.Timestamp("2026-03-03", tz="UTC")}  # 4 channels x 2 regions
    assert (table["unpriced"] == 0).all() and (table["cost_mismatches"] == 0).all()
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"costs_match_catalog": True, "every_call_priced": True}
    assert len(plans) == 1
    shares = json.loads(plans["shares"].iloc[0])
    assert set(shares) == {"reasoning", "chat", "extract"}
    assert all(not r.startswith(("mistral", "llama")) for r in shares["reasoning"])
    plan_file = json.loads((tmp_path / "reports" / "plans" / "2026-03-03.json").read_text())
    assert plan_file["shares"] == shares and plan_file["hourly"]
    frontier = result.asset_materializations_for_node("cost_pareto_frontier")[0].metadata
    assert frontier["routes"].value == 8 and "data:image/png;base64" in frontier["plot"].value
    report = (tmp_path / "reports" / "cost" / "daily" / "2026-03-03.md").read_text()
    assert "# Cost report, daily 2026-03-03" in report and "against the previous period" in report
    assert (tmp_path / "reports" / "cost" / "daily" / "2026-03-03.png").stat().st_size > 1000
    meta = result.asset_materializations_for_node("cost_report_daily")[0].metadata
    assert meta["dashboard"].value == "http://127.0.0.1:3001/cost?hours=24.0"
    assert "| availability |" in meta["kpis"].value and "| task failure rate |" in meta["kpis"].value
    assert "spend today" not in meta["kpis"].value  # a period's report: today's spend is not the period's
    page = (tmp_path / "reports" / "cost" / "daily" / "2026-03-03.html").read_text()
    assert meta["html"].value.endswith("2026-03-03.html")
    assert "<h1>Cost report, daily 2026-03-03</h1>" in page and "<table>" in page
    assert 'src="data:image/png;base64,' in page and "http" not in page.replace("http://127.0.0.1", "")  # whole


def test_the_weekly_report_covers_the_week(cost_resources, tmp_path):
    result = dg.materialize([cost_report_weekly], partition_key="2026-03-02", resources=cost_resources)
    meta = result.asset_materializations_for_node("cost_report_weekly")[0].metadata
    assert meta["calls"].value > 10_000 and meta["spend_usd"].value > 0
    assert "fitted in-sample" in meta["report"].value  # no week before this one


def test_an_infeasible_budget_fails_the_plan_with_the_cheapest_budget(cost_resources):
    result = dg.materialize(
        [routing_plan],
        partition_key="2026-03-03",
        resources=cost_resources,
        run_config=dg.RunConfig(ops={"routing_plan": {"config": {"budget_usd_per_day": 0.01}}}),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "cheapest feasible plan costs $" in failure.message


def test_the_budget_sensor_requests_one_run_per_alert_and_the_job_sends_it(cost_resources, tmp_path, monkeypatch):
    now = pd.Timestamp.now(tz="UTC")
    since = max(now.floor("D"), now - pd.Timedelta(hours=2))  # today's, whatever the hour
    calls = pd.DataFrame(  # 120 calls of $0.04 over the last two hours (or since midnight)
        {
            "ts": pd.date_range(since, now - pd.Timedelta(milliseconds=500), periods=120),
            "call_id": [f"b{i}" for i in range(120)],
            "channel": "gpt-4o",
            "region": "us-east-1",
            "latency_ms": 800.0,
            "status": "ok",
            "tokens_in": 8000,
            "tokens_out": 2000,
        }
    )
    with cost_resources["store"].open() as s:
        s.write_table("channel_calls", calls)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: tight, period: daily, amount: 3, channel: gpt-4o}\n"
                       "  - {name: loose, period: monthly, amount: 100000}\n")  # fmt: skip
    resources = {**cost_resources, "cost": CostResource(reports_dir=str(tmp_path / "reports"), budgets=str(budgets))}
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        requests = list(budget_sensor(ctx))
        day = now.strftime("%Y-%m-%d")
        keys = [r.run_key for r in requests]
        spent = 120 * 0.04
        assert spent >= 3  # 160% of the tight budget: every threshold
        assert keys == [f"budget|tight|{day}|85%", f"budget|tight|{day}|95%", f"budget|tight|{day}|100%"]
        again = list(budget_sensor(dg.build_sensor_context(instance=instance, resources=resources)))
        assert [r.run_key for r in again] == keys  # same ids: the daemon launches each key once
        config = requests[-1].run_config
        result = budget_alert_job.execute_in_process(run_config=config, resources=resources, instance=instance)
        assert result.success
        after = list(budget_sensor(dg.build_sensor_context(instance=instance, resources=resources)))
        assert [r.run_key for r in after] == keys[:2]  # the delivered one is not asked for again
        # a webhook that is down: the run fails, the sensor retries under a new key
        port = _closed_port()
        down = {**resources, "cost": CostResource(reports_dir=str(tmp_path / "reports"), budgets=str(budgets),
                                                  webhook_url=f"http://127.0.0.1:{port}/hook")}  # fmt: skip
        failed = budget_alert_job.execute_in_process(
            run_config=requests[0].run_config, resources=down, instance=instance, raise_on_error=False
        )
        assert not failed.success
        retry = list(budget_sensor(dg.build_sensor_context(instance=instance, resources=down)))
        assert [r.run_key for r in retry] == [f"{keys[0]}#retry1", keys[1]]
    alerts = [json.loads(line) for line in (tmp_path / "reports" / "alerts.jsonl").read_text().splitlines()]
    assert alerts[0]["budget"] == "tight" and alerts[0]["threshold"] == "100%" and "crossed 100%" in alerts[0]["text"]
    assert alerts[1]["threshold"] == "85%"  # kept in the file even though the webhook failed
    with cost_resources["store"].open() as s:
        logged = s.read_table("budget_alerts").set_index("alert_id")
    assert logged.loc[f"budget|tight|{day}|100%", "delivered"] == 1
    assert logged.loc[f"budget|tight|{day}|85%", "delivered"] == 0
    assert logged.loc[f"budget|tight|{day}|85%", "attempts"] == 1
    assert "webhook failed" in logged.loc[f"budget|tight|{day}|85%", "detail"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
