import socket

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.probe import LocalProbe
from rhythm_pipelines.healing.routing import set_route

HOST = socket.gethostname()
NOW = pd.Timestamp.now(tz="UTC")


def calls(source: str, latency: float, status: str = "ok", n: int = 12) -> pd.DataFrame:
    channel, region = source.split("@")
    return pd.DataFrame(
        {
            "ts": pd.date_range(pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=n), periods=n, freq="1s"),
            "channel": channel,
            "region": region,
            "latency_ms": np.full(n, latency),
            "status": status,
        }
    )


def test_a_host_leak_is_over_when_memory_gave_back_part_of_its_rise(tmp_path):
    mem = 61.0  # injected: the machine's own memory moves while other tests run
    probe = LocalProbe(DetectorSettings(), HOST, tmp_path / "routes.json", mem_percent=lambda: mem)
    freed = HealthEvent("memory_leak", HOST, NOW, "mem_percent", mem + 5, {"rise": 6.0})
    assert probe.resolved(freed, NOW)[0]
    still = HealthEvent("memory_leak", HOST, NOW, "mem_percent", mem + 0.5, {"rise": 6.0})  # 0.5 < 30 % of 6
    assert not probe.resolved(still, NOW)[0]


def test_a_channel_is_healthy_again_when_whoever_serves_it_is(tmp_path):
    routes = tmp_path / "routes.json"
    now = pd.Timestamp.now(tz="UTC")  # not the module's: routes expire on the wall clock
    log = pd.concat([calls("gpt@a", 900.0), calls("gpt@b", 40.0)], ignore_index=True)
    probe = LocalProbe(DetectorSettings(), HOST, routes, calls=lambda a, b: log[(log["ts"] >= a) & (log["ts"] < b)])
    slow = HealthEvent("high_latency", "gpt@a", now - pd.Timedelta(minutes=1))
    ok, detail = probe.resolved(slow, now - pd.Timedelta(minutes=1))
    assert not ok and "gpt@a: p95 900 ms" in detail
    set_route(routes, "gpt@a", "gpt@b", now + pd.Timedelta(minutes=5), slow.event_id)
    ok, detail = probe.resolved(slow, now - pd.Timedelta(minutes=1))
    assert ok and detail.startswith("gpt@b: p95 40 ms")


def test_a_breaker_stays_open_while_its_calls_fail(tmp_path):
    log = calls("gpt@a", 30.0, status="error", n=20)
    probe = LocalProbe(DetectorSettings(), HOST, tmp_path / "routes.json", calls=lambda a, b: log)
    now = pd.Timestamp.now(tz="UTC")
    ok, detail = probe.resolved(HealthEvent("circuit_breaker_open", "gpt@a", now), now - pd.Timedelta(minutes=1))
    assert not ok and "breaker open" in detail  # tripped seconds ago: still open (open_s is 30 s)
    without_data = LocalProbe(DetectorSettings(), HOST, tmp_path / "routes.json")
    assert not without_data.resolved(HealthEvent("circuit_breaker_open", "gpt@a", NOW), NOW)[0]
