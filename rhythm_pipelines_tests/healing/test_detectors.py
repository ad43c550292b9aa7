import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.healing import detectors as d
from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.tracker import EpisodeTracker

T0 = pd.Timestamp("2026-11-22 10:00", tz="UTC")
S = DetectorSettings()


def series(values, metric, source="web-01", step_s=10, start=T0):
    ts = pd.date_range(start, periods=len(values), freq=f"{step_s}s")
    return pd.DataFrame({"ts": ts, "source": source, "metric": metric, "value": np.asarray(values, dtype=float)})


def test_cpu_spike_needs_five_sustained_minutes_and_starts_where_the_run_began():
    quiet = [40.0] * 30
    short = quiet + [95.0] * 20 + [40.0] * 5 + [95.0] * 29  # 200 s, a dip, then 280 s above: never 300 s
    pts = series(short, "cpu_percent")
    assert d.cpu_spike(pts, pts["ts"].iloc[-1], S) == []
    long = quiet + [85.0, 92.0] * 16  # 32 points above: 310 s
    pts = series(long, "cpu_percent")
    (e,) = d.cpu_spike(pts, pts["ts"].iloc[-1], S)
    assert e.kind == "cpu_spike" and e.source == "web-01"
    assert e.start == T0 + pd.Timedelta(seconds=300)  # the first point above 80
    later = series(long + [90.0] * 6, "cpu_percent")
    assert d.cpu_spike(later, later["ts"].iloc[-1], S)[0].event_id == e.event_id  # same incident, same id


def test_cpu_spike_ignores_a_stale_series():
    pts = series([30.0] * 5 + [95.0] * 40, "cpu_percent")
    assert d.cpu_spike(pts, pts["ts"].iloc[-1] + pd.Timedelta(minutes=5), S) == []


def test_memory_leak_is_a_trend_not_a_threshold():
    rng = np.random.default_rng(0)
    n = 360  # an hour at 10 s
    flat_high = series(88 + rng.normal(0, 0.3, n), "mem_percent")  # high but steady: no leak
    assert d.memory_leak(flat_high, flat_high["ts"].iloc[-1], S) == []
    rising = series(60 + np.linspace(0, 8, n) + rng.normal(0, 0.3, n), "mem_percent")  # 8 points/h from 60 %
    (e,) = d.memory_leak(rising, rising["ts"].iloc[-1], S)
    assert e.kind == "memory_leak" and e.detail["slope_per_h"] == pytest.approx(8, rel=0.25)
    assert e.detail["projected"] > S.leak_full_mem_pct
    slow = series(40 + np.linspace(0, 0.5, n) + rng.normal(0, 0.05, n), "mem_percent")  # 0.5 point/h: too slow
    assert d.memory_leak(slow, slow["ts"].iloc[-1], S) == []
    rss = series(2e8 * (1 + np.linspace(0, 1, n)), "proc_rss_bytes", source="web-01/proc/42")  # +100 %/h
    (p,) = d.memory_leak(rss, rss["ts"].iloc[-1], S)
    assert p.source == "web-01/proc/42" and p.metric == "proc_rss_bytes"


def test_a_host_that_would_not_fill_within_the_horizon_has_no_leak():
    steady = series(30 + np.linspace(0, 5, 360), "mem_percent")  # 5 points/h from 30 %: 65 % in 6 h
    assert d.memory_leak(steady, steady["ts"].iloc[-1], S) == []


def test_warm_up_that_levels_off_is_not_a_leak():
    """The code server of the report: 349 → 378 MB over its first half hour, then flat."""
    n = 360
    warm = np.minimum(np.linspace(349e6, 349e6 + 29e6 * 2, n), 378e6)  # rises for 30 min, flat for 30
    rng = np.random.default_rng(1)
    pts = series(warm + rng.normal(0, 2e5, n), "proc_rss_bytes", source="web-01/proc/7")
    assert d.memory_leak(pts, pts["ts"].iloc[-1], S.with_overrides(leak_min_rss_frac_per_h=0.05)) == []
    still = series(
        np.linspace(349e6, 349e6 + 2 * 29e6, n) + rng.normal(0, 2e5, n), "proc_rss_bytes", source="web-01/proc/7"
    )  # the same growth not levelling off: a leak when nothing else limits it
    assert d.memory_leak(still, still["ts"].iloc[-1], S.with_overrides(leak_min_rss_frac_per_h=0.05))


def test_a_small_process_growing_on_a_big_host_is_not_a_leak_a_big_one_is():
    n = 360
    host = pd.concat(
        [series(np.full(n, 25.0), "mem_percent"), series(np.full(n, 0.25 * 24 * 2**30), "mem_used_bytes")]
    )  # a 24 GiB host
    small = series(np.linspace(350e6, 430e6, n), "proc_rss_bytes", source="web-01/proc/7")  # 80 MB/h: 3 % in 6 h
    pts = pd.concat([host, small])
    assert d.memory_leak(pts, pts["ts"].max(), S.with_overrides(leak_min_rss_frac_per_h=0.1)) == []
    big = series(np.linspace(2e9, 2.6e9, n), "proc_rss_bytes", source="web-01/proc/8")  # 600 MB/h: 25 % in 6 h
    (e,) = d.memory_leak(pd.concat([host, big]), pts["ts"].max(), S.with_overrides(leak_min_rss_frac_per_h=0.1))
    assert e.source == "web-01/proc/8" and e.detail["projected_share"] == pytest.approx(6.2e9 / 24 / 2**30, rel=0.01)


def calls(latencies, status="ok", channel="gpt-4o", region="us-east-1", start=T0, step_s=2):
    n = len(latencies)
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq=f"{step_s}s"),
            "channel": channel,
            "region": region,
            "latency_ms": np.asarray(latencies, dtype=float),
            "status": status if isinstance(status, list) else [status] * n,
        }
    )


def test_high_latency_on_the_window_p95():
    ok = calls([200.0] * 300)
    assert d.high_latency(ok, ok["ts"].iloc[-1], S) == []
    slow = pd.concat([ok, calls([900.0] * 20, start=ok["ts"].iloc[-1] + pd.Timedelta(seconds=2))])
    (e,) = d.high_latency(slow, slow["ts"].iloc[-1], S)
    assert e.source == "gpt-4o@us-east-1" and e.value > 500
    assert e.start == slow["ts"].iloc[300]  # the first slow call
    fresh = calls([900.0] * 20)  # a channel with no history of its own is not judged
    assert d.high_latency(fresh, fresh["ts"].iloc[-1], S) == []


def test_high_latency_is_judged_against_the_channels_own_rhythm():
    rng = np.random.default_rng(3)
    llm = calls(rng.normal(2000, 300, 1800).clip(300), step_s=2)  # an LLM: two seconds is its normal
    assert d.high_latency(llm, llm["ts"].iloc[-1], S) == []
    one_timeout = pd.concat([llm, calls([30000.0], start=llm["ts"].iloc[-1] + pd.Timedelta(seconds=2))])
    assert d.high_latency(one_timeout, one_timeout["ts"].iloc[-1], S) == []  # one timeout is not a trend
    slower = pd.concat([llm, calls(rng.normal(6000, 500, 60), start=llm["ts"].iloc[-1] + pd.Timedelta(seconds=2))])
    (e,) = d.high_latency(slower, slower["ts"].iloc[-1], S)
    assert e.detail["bar_ms"] == pytest.approx(2 * e.detail["baseline_p95_ms"]) and e.value > e.detail["bar_ms"]


def test_circuit_breaker_event_starts_when_it_tripped_and_survives_re_opening():
    good = calls([100.0] * 30)
    bad = calls([100.0] * 40, status="error", start=good["ts"].iloc[-1] + pd.Timedelta(seconds=2))
    log = pd.concat([good, bad], ignore_index=True)
    now = log["ts"].iloc[-1]
    (e,) = d.circuit_breaker_open(log, now, S)
    # the window of 20 holds 10 failures after the 10th bad call: 50 % trips it
    assert e.start == bad["ts"].iloc[9]
    later = pd.concat([log, calls([100.0] * 10, status="error", start=now + pd.Timedelta(seconds=40))])
    (again,) = d.circuit_breaker_open(later, later["ts"].iloc[-1], S)
    assert again.event_id == e.event_id  # failed probes re-open it: the same outage
    healed = pd.concat([later, calls([100.0] * 10, start=later["ts"].iloc[-1] + pd.Timedelta(seconds=40))])
    assert d.circuit_breaker_open(healed, healed["ts"].iloc[-1], S) == []


def runs(rows):
    return pd.DataFrame(rows, columns=["run_id", "job", "status", "end"])


def test_task_failure_pattern_counts_failures_of_one_job_in_the_window():
    t = [T0 + pd.Timedelta(minutes=m) for m in (0, 3, 6, 8)]
    r = runs([("a", "etl", "FAILURE", t[0]), ("b", "etl", "FAILURE", t[1]), ("c", "other", "FAILURE", t[2]),
              ("d", "etl", "SUCCESS", t[2])])  # fmt: skip
    assert d.task_failure_pattern(r, t[3], S) == []
    r = pd.concat([r, runs([("e", "etl", "FAILURE", t[3])])])
    (e,) = d.task_failure_pattern(r, t[3], S)
    assert e.source == "etl" and e.value == 3 and e.detail["last_run_id"] == "e" and e.start == t[0]
    assert d.task_failure_pattern(r, t[3] + pd.Timedelta(minutes=20), S) == []  # out of the window


def test_cascade_root_is_the_earliest_failing_upstream():
    upstream = {"raw": [], "clean": ["raw"], "features": ["clean"], "report": ["features"], "other": []}
    f = pd.DataFrame(
        {
            "key": ["clean", "features", "report", "other"],
            "ts": [T0, T0 + pd.Timedelta(seconds=30), T0 + pd.Timedelta(seconds=50), T0 + pd.Timedelta(seconds=5)],
            "run_id": ["r1", "r2", "r3", "r4"],
        }
    )
    (e,) = d.cascade_failure(f, upstream, T0 + pd.Timedelta(minutes=1), S)
    assert e.source == "clean" and e.detail["affected"] == ["clean", "features", "report"]
    assert e.detail["root_run_id"] == "r1"
    assert d.cascade_failure(f[f["key"].isin(["report", "other"])], upstream, T0 + pd.Timedelta(minutes=1), S) == []


def test_anomaly_events_of_major_severity_become_health_events():
    ev = pd.DataFrame(
        {
            "ts": [T0, T0],
            "event_id": ["x", "y"],
            "source": ["db-01", "db-01"],
            "metric": ["cpu_percent", "mem_percent"],
            "severity": ["minor", "critical"],
            "score": [1.2, 4.0],
        }
    )
    (e,) = d.anomaly(ev, T0 + pd.Timedelta(minutes=5), S)
    assert (e.metric, e.detail["alert_id"]) == ("mem_percent", "y")


def test_disk_pressure_on_a_temp_root(tmp_path):
    small = S.with_overrides(temp_max_bytes=10_000)
    assert d.disk_pressure([str(tmp_path)], "h", T0, small) == []
    (tmp_path / "big").write_bytes(b"x" * 20_000)
    (e,) = d.disk_pressure([str(tmp_path)], "h", T0, small)
    assert e.host == "h" and e.value == 20_000


def test_tracker_reports_an_episode_once_until_it_clears():
    tr = EpisodeTracker(clear_after_s=30)
    e = HealthEvent("cpu_spike", "h", T0)
    assert tr.observe([e], T0) == [e]
    assert (
        tr.observe([HealthEvent("cpu_spike", "h", T0 + pd.Timedelta(seconds=10))], T0 + pd.Timedelta(seconds=10)) == []
    )
    assert tr.observe([], T0 + pd.Timedelta(seconds=20)) == []  # a blink: still open
    assert tr.observe([], T0 + pd.Timedelta(seconds=60)) == []  # now closed
    again = HealthEvent("cpu_spike", "h", T0 + pd.Timedelta(seconds=70))
    assert tr.observe([again], T0 + pd.Timedelta(seconds=70)) == [again]
    restored = EpisodeTracker(30, dict(tr.state))  # what a cursor carries across a daemon restart
    assert restored.observe([again], T0 + pd.Timedelta(seconds=80)) == []


def test_settings_from_a_mapping_reject_unknown_and_bad_values():
    assert DetectorSettings.from_mapping({"cpu_percent": 85, "leak_min_points": 20}).cpu_percent == 85.0
    with pytest.raises(ValueError, match="unknown setting"):
        DetectorSettings.from_mapping({"cpu_pct": 85})
    with pytest.raises(ValueError, match="leak_min_points: expected a non-negative integer"):
        DetectorSettings.from_mapping({"leak_min_points": 2.5})


def test_event_round_trips_through_run_config():
    e = HealthEvent("process_hung", "h/proc/7", T0, "heartbeat_age_s", 40.0, {"pid": 7})
    assert HealthEvent.from_config(e.to_config()) == e
    assert e.event_id == "h/proc/7|process_hung|2026-11-22T10:00:00+00:00" and e.host == "h"
    with pytest.raises(ValueError, match="unknown event kind"):
        HealthEvent("meltdown", "h", T0)
