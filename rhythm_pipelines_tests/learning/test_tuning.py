"""The auto-tuner: a timeout over the channel's slowest successful calls, retries within a budget, a breaker
from its error rate; every step bounded; versioned policies rolled back as a new version; and a real client
against the loopback fault server, whose retry budget holds amplification down while the channel is down."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.chaos.fault_server import answer, parse_schedule, regime_at
from rhythm_pipelines.learning.resilient import ResilientClient, http_send
from rhythm_pipelines.learning.tuning import MIN_CALLS, RESILIENCE4J, RETRY_BUDGET, STEP, TIMEOUT_UP, PolicyFile, tune

T0 = pd.Timestamp("2026-01-05", tz="UTC")


def calls(n=2000, median_ms=200.0, error=0.01, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lat = median_ms * np.exp(rng.normal(0, 0.4, n))
    status = np.where(rng.random(n) < error, "error", "ok")
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 600, n)), unit="s")
    return pd.DataFrame({"ts": ts, "latency_ms": lat, "status": status})


def test_a_policy_from_the_call_log():
    c = calls()
    t = tune(c)
    p999 = np.quantile(c.loc[c["status"] == "ok", "latency_ms"], 0.999) / 1000
    assert t.policy.timeout_s == pytest.approx(1.5 * p999, rel=1e-6)
    assert t.policy.retries == 2 and t.policy.retry_budget == RETRY_BUDGET and t.policy.jitter
    assert t.policy.breaker.failure_rate == 0.25  # 3 x a 1 % error rate is below the 25 % floor
    assert any(r.startswith("timeout") for r in t.reasons) and t.calls == len(c)


def test_a_step_is_bounded_and_a_short_history_changes_nothing():
    fast = tune(calls(median_ms=100.0)).policy
    target = tune(calls(median_ms=2000.0)).policy.timeout_s
    slow = tune(calls(median_ms=2000.0), fast)
    assert slow.policy.timeout_s == pytest.approx(fast.timeout_s * TIMEOUT_UP)  # x20 slower, one step: x4
    assert "a step moves it /2 to x4 at most" in slow.reasons[0]
    again = tune(calls(median_ms=2000.0), slow.policy)
    assert again.policy.timeout_s == pytest.approx(min(target, fast.timeout_s * TIMEOUT_UP**2))
    back = tune(calls(median_ms=100.0), again.policy)
    assert back.policy.timeout_s == pytest.approx(again.policy.timeout_s / STEP)  # down: /2 a step
    few = tune(calls(n=MIN_CALLS - 1), fast)
    assert few.policy == fast and "fewer than" in few.reasons[0]


def test_an_outage_does_not_buy_more_retries():
    down = tune(calls(error=0.7), tune(calls()).policy)
    assert down.policy.retries == 1 and down.policy.breaker.failure_rate == 0.5


def test_versions_are_kept_and_a_rollback_is_a_new_version(tmp_path):
    files = PolicyFile(tmp_path / "policies")
    assert files.current() is None and files.policies() == {}
    a = tune(calls()).policy
    v1 = files.write({"gpt@eu": a}, {"gpt@eu": ["first"]})
    b = tune(calls(median_ms=900.0), a).policy
    v2 = files.write({"gpt@eu": b}, {"gpt@eu": ["slower"]})
    assert (v1, v2, files.current()) == (1, 2, 2) and files.policies()["gpt@eu"] == b
    v3 = files.rollback(1)
    assert v3 == 3 and files.current() == 3 and files.policies()["gpt@eu"] == a
    assert files.read(3)["note"] == "rollback to v1" and files.versions() == [1, 2, 3]
    with pytest.raises(ValueError, match="no policy version 9"):
        files.rollback(9)


def test_the_fault_server_plays_its_schedule_the_same_for_everyone():
    s = parse_schedule("normal:10,flapping:10,down:10")
    assert [regime_at(s, t) for t in (0, 9.9, 10, 25, 99)] == ["normal", "normal", "flapping", "down", "down"]
    assert answer(s, 1.0, 7, "r1", 0) == answer(s, 1.0, 7, "r1", 0) != answer(s, 1.0, 7, "r1", 1)
    assert answer(s, 14.5, 7, "r1", 0) == (503, 0.02)  # flapping: the failing half
    with pytest.raises(ValueError, match="regime:seconds"):
        parse_schedule("normal:10,broken")


def test_a_client_against_a_real_fault_server_keeps_retries_within_its_budget():
    proc = subprocess.Popen([sys.executable, "-m", "rhythm_pipelines.chaos.fault_server", "--schedule", "down:60"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = int(proc.stdout.readline())

        async def send(rid, n, timeout):
            return await http_send("127.0.0.1", port, rid, n, timeout)

        async def run(policy):
            client = ResilientClient(policy, send)
            await asyncio.gather(*(client.call(f"r{i}") for i in range(60)))
            return client

        budgeted = asyncio.run(run(tune(calls()).policy))
        unlimited = asyncio.run(run(RESILIENCE4J))
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    amp = lambda c: sum(r["attempts"] for r in c.requests) / len(c.requests)  # noqa: E731
    assert len(budgeted.requests) == len(unlimited.requests) == 60
    assert amp(unlimited) > 2.0 > 1.3 > amp(budgeted), (amp(unlimited), amp(budgeted))
    timed_out = [a for a in budgeted.attempts if a["status"] == "timeout"]
    assert timed_out and max(a["latency_ms"] for a in timed_out) < 5000  # cut at its timeout, not the 5 s hang


def test_the_health_sensor_judges_a_channel_by_its_tuned_breaker():
    from rhythm_pipelines.healing.breaker import BreakerConfig
    from rhythm_pipelines.healing.detectors import DetectorSettings, circuit_breaker_open

    n = 40
    ts = pd.Timestamp.now(tz="UTC").floor("s") - pd.to_timedelta(np.arange(n)[::-1], unit="s")
    log = pd.DataFrame(
        {
            "ts": ts,
            "channel": "gpt",
            "region": "eu",
            "latency_ms": 100.0,
            "status": ["error" if i % 3 == 0 else "ok" for i in range(n)],
        }
    )  # fmt: skip  (a third fail)
    now = ts[-1] + pd.Timedelta(seconds=1)
    assert circuit_breaker_open(log, now, DetectorSettings()) == []  # the default bar: 50 %
    tuned = {"gpt@eu": BreakerConfig(20, 10, 0.25, 5000.0, 0.8, 30.0, 3)}
    (event,) = circuit_breaker_open(log, now, DetectorSettings(), tuned)
    assert event.source == "gpt@eu" and event.kind == "circuit_breaker_open"


def test_timeouts_among_slow_successes_raise_the_timeout_but_hangs_alone_do_not():
    fast = tune(calls(median_ms=100.0)).policy
    slow = calls(median_ms=100.0).assign(latency_ms=lambda f: f["latency_ms"].clip(upper=fast.timeout_s * 1000 * 0.9))
    slow.loc[slow.index[::3], "latency_ms"] = fast.timeout_s * 1000 * 0.8  # a third of calls near the timeout
    slow.loc[slow.index[::20], "status"] = "timeout"  # and 5 % cut by it: censored successes
    raised = tune(slow, fast)
    assert raised.policy.timeout_s == pytest.approx(fast.timeout_s * TIMEOUT_UP)
    assert "the channel is slower than it" in " ".join(raised.reasons)
    hangs = calls(median_ms=100.0)
    hangs.loc[hangs.index[::2], "status"] = "timeout"  # half hang (a channel going down): no slow successes
    assert tune(hangs, fast).policy.timeout_s <= fast.timeout_s * STEP


def test_the_gateway_calls_each_channel_with_its_tuned_timeout(tmp_path, monkeypatch):
    from rhythm_pipelines.chaos.channel import TIMEOUT_S, Gateway

    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))
    gw = Gateway("http://127.0.0.1:9", ["a@x"], tmp_path / "routes.json", f"sqlite:///{tmp_path / 'm.db'}")
    assert gw.timeout_for("gpt-4o@eu-west-1") == TIMEOUT_S  # no policy yet
    files = PolicyFile.at_home()
    tuned = tune(calls()).policy
    files.write({"gpt-4o@eu-west-1": tuned}, {"gpt-4o@eu-west-1": ["tuned"]})
    gw._policies = (-1.0, {})  # re-read now rather than within the second
    assert gw.timeout_for("gpt-4o@eu-west-1") == tuned.timeout_s and gw.timeout_for("other@x") == TIMEOUT_S
    (files.root / "v0001.json").write_text("{not json")
    gw._policies = (-1.0, {})
    assert gw.timeout_for("gpt-4o@eu-west-1") == TIMEOUT_S  # a damaged file: the default, not a crash
