"""`rhythm dashboard` as a real process: the contract other tools call."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import requests

from rhythm_pipelines.dashboard.kpis import kpis

CONTRACT = ("availability", "auto_recovery_rate", "mttr_s", "task_failure_rate", "spend_today_usd", "open_incidents")


def test_root_answers_within_two_seconds_of_start(dashboard):
    assert dashboard.started_in_s < 2.0, f"first 200 after {dashboard.started_in_s:.2f} s"


def test_api_kpis_is_the_domain_figure(dashboard, filled):
    got = requests.get(dashboard.url + "/api/kpis", timeout=30).json()
    with filled.open() as store:
        want = kpis(store, filled.as_of, landing=filled.landing)
    for key in CONTRACT:
        assert got[key] == pytest.approx(want[key]), key
    assert got["now"] == filled.as_of.isoformat()


def test_every_page_is_served_with_local_assets_only(dashboard):
    for path in ("/", "/hosts", "/channels", "/healing", "/cost", "/forecasts"):
        page = requests.get(dashboard.url + path, timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assets = [s for s in sources if s.startswith("/static/")]
        assert "/static/plotly.min.js" in assets
        for s in assets:
            assert requests.get(dashboard.url + s, timeout=10).status_code == 200, s
        external = [s for s in sources if s.startswith(("http://", "https://", "//")) and "127.0.0.1:3000" not in s]
        assert external == [], external  # no CDN: only the Dagster UI link leaves the dashboard


def test_page_apis_answer_and_refuse_bad_ranges(dashboard):
    hosts = requests.get(dashboard.url + "/api/hosts", params={"hours": 6}, timeout=30).json()
    assert len(hosts["hosts"]) == 6 and hosts["series"] and all(s["ts"] for s in hosts["series"])
    one = requests.get(dashboard.url + "/api/hosts", params={"hours": 6, "host": hosts["hosts"][0]}, timeout=30).json()
    assert {s["source"] for s in one["series"]} == {hosts["hosts"][0]}
    healing = requests.get(dashboard.url + "/api/healing", params={"hours": 72}, timeout=30).json()
    assert healing["events"] and all(e["steps"][0]["step"] == "detect" for e in healing["events"])
    kind = healing["events"][0]["kind"]
    only = requests.get(dashboard.url + "/api/healing", params={"hours": 72, "kind": kind}, timeout=30).json()
    assert only["events"] and {e["kind"] for e in only["events"]} == {kind}
    bad = requests.get(dashboard.url + "/api/hosts", params={"hours": "lots"}, timeout=10)
    assert bad.status_code == 400 and "hours" in bad.json()["error"]
    assert requests.get(dashboard.url + "/api/trend", params={"hours": 10_000}, timeout=10).status_code == 400


def test_metrics_speak_prometheus_text_with_rhythm_names(dashboard):
    res = requests.get(dashboard.url + "/metrics", timeout=30)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    names = {line.split("{")[0].split(" ")[0] for line in res.text.splitlines() if line and not line.startswith("#")}
    assert names and all(n.startswith("rhythm_") for n in names)
    for needed in ("rhythm_availability_ratio", "rhythm_open_incidents", "rhythm_spend_today_usd",
                   "rhythm_healing_actions_total", "rhythm_budget_spent_usd"):  # fmt: skip
        assert needed in names, needed
    assert re.search(r'^rhythm_healing_actions_total\{action="\w+",kind="\w+",outcome="\w+"\} \d', res.text, re.M)


def test_channels_api_rates_breakers_routes_and_heat_map(dashboard, filled):
    got = requests.get(dashboard.url + "/api/channels", params={"hours": 6}, timeout=30).json()
    assert len(got["channels"]) == 8 and len(got["series"]) == 8  # 4 channels in 2 regions
    assert {b["state"] for b in got["breakers"]} <= {"closed", "open", "half_open", "no calls"}
    assert got["routes"] == [{"source": "gpt-4o@us-east-1", "to": "gpt-4o@eu-west-1",
                              "until": (filled.as_of + pd.Timedelta(minutes=10)).isoformat(),
                              "event_id": "gpt-4o@us-east-1|high_latency|test"}]  # fmt: skip
    with filled.open() as store:
        hour = store.read_table("channel_calls", filled.as_of - pd.Timedelta(hours=1), filled.as_of)
    heat = got["heat"]
    r, c = heat["regions"].index("eu-west-1"), heat["channels"].index("gpt-4o")
    mine = hour[(hour["region"] == "eu-west-1") & (hour["channel"] == "gpt-4o")]
    assert heat["error_rate"][r][c] == pytest.approx((mine["status"] != "ok").mean(), abs=1e-4)
    for s in got["series"]:
        assert all(0 <= x <= 1 for x in s["error_rate"]) and len(s["ts"]) == len(s["latency_ms_p95"])


def test_cost_api_spend_frontier_and_plan_savings(dashboard, filled):
    got = requests.get(dashboard.url + "/api/cost", params={"hours": 24}, timeout=60).json()
    with filled.open() as store:
        calls = store.read_table("channel_calls", filled.as_of - pd.Timedelta(hours=24), filled.as_of)
    by_channel = dict(zip(got["by"]["channel"]["labels"], got["by"]["channel"]["usd"], strict=True))
    for channel, usd in calls.groupby("channel")["cost_usd"].sum().items():
        assert by_channel[channel] == pytest.approx(usd, abs=1e-3)
    assert got["total_usd"] == pytest.approx(calls["cost_usd"].sum(), abs=1e-3)
    assert any(r["pareto"] for r in got["frontier"]) and len(got["frontier"]) == 8
    assert got["plan"]["plan_id"] == "2026-03-03" and got["plan"]["shares"]
    s = got["savings"]
    assert s["saving"] == pytest.approx(s["observed_cost"] - s["plan_cost"]) and s["observed_cost"] > 0


def test_forecasts_api_beats_naive_where_the_simulated_forecasts_are_good(dashboard):
    got = requests.get(dashboard.url + "/api/forecasts", params={"hours": 24}, timeout=30).json()
    assert len(got["accuracy"]) == 6 and got["models"] == []  # six hosts' CPU; no registry in this home
    for row in got["accuracy"]:
        assert row["points"] == 96 and 0 < row["mape"] < row["naive_mape"]  # 8 % noise beats a 15-min-old value
