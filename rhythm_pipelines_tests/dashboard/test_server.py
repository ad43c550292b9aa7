"""`rhythm dashboard` as a real process: the contract other tools call."""

from __future__ import annotations

import re

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
    for path in ("/", "/hosts", "/healing"):
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
