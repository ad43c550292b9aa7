"""The simulator: deterministic, and every labelled incident really shows in its data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.metrics.calls import read_call_log
from rhythm_pipelines.metrics.landing import read_metric_file
from rhythm_pipelines.simulate import SimConfig, simulate
from rhythm_pipelines_tests.conftest import T0


def series(sim, source, metric):
    m = sim.metrics
    return m[(m.source == source) & (m.metric == metric)].set_index("ts")["value"]


def channel_calls(sim, source):
    channel, region = source.split("@")
    c = sim.calls
    return c[(c.channel == channel) & (c.region == region)].set_index("ts").sort_index()


def before(s, start, hours=2):
    return s[(s.index >= start - pd.Timedelta(hours=hours)) & (s.index < start)]


def during(s, inc):
    return s[(s.index >= inc.start) & (s.index <= inc.end)]


def test_deterministic_by_seed():
    cfg = SimConfig(hosts=3, channels=2, regions=1, days=1, seed=5, start=T0)
    a, b = simulate(cfg), simulate(cfg)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.calls, b.calls)
    pd.testing.assert_frame_equal(a.incidents, b.incidents)
    c = simulate(SimConfig(hosts=3, channels=2, regions=1, days=1, seed=6, start=T0))
    assert not a.metrics["value"].equals(c.metrics["value"])


def test_shape_and_rhythm(small_sim):
    sim = small_sim
    assert sim.metrics["ts"].min() == T0 and len(sim.hosts) == 4
    assert sim.calls["channel"].nunique() == 2 and sim.calls["region"].nunique() == 2
    cpu = series(sim, sim.hosts[0], "cpu_percent")
    quiet = set(sim.incidents[sim.incidents.source == sim.hosts[0]]["start"].dt.floor("D"))
    day = cpu[cpu.index.floor("D") == T0]
    if T0 not in quiet:  # daily rhythm: afternoon busier than the night
        assert day.between_time("13:00", "15:00").mean() > day.between_time("01:00", "03:00").mean() + 8


def test_every_kind_is_labelled_with_varied_magnitudes(small_sim):
    inc = small_sim.incidents
    assert set(inc["kind"]) == {
        "cpu_spike",
        "memory_leak",
        "latency_surge",
        "error_burst",
        "zombie_process",
        "hung_process",
        "cascade",
        "cost_surge",
    }
    assert (inc["end"] > inc["start"]).all()
    assert inc["start"].min() >= T0 + pd.Timedelta(days=2) * 0.2  # after the warm-up
    spikes = inc[inc.kind.isin(["cpu_spike"])]["magnitude"]
    assert spikes.max() - spikes.min() > 3


def test_each_incident_shows_in_its_data(small_sim):
    sim = small_sim
    for inc in sim.incidents.itertuples():
        if inc.kind in ("cpu_spike", "cascade"):
            s = series(sim, inc.source, "cpu_percent")
            assert during(s, inc).mean() > before(s, inc.start).mean() + 10, inc
            if inc.kind == "cpu_spike":  # gradual onset: the first minute is below the plateau
                assert s[inc.start] < during(s, inc).iloc[len(during(s, inc)) // 2]
        elif inc.kind == "memory_leak":
            s = during(series(sim, inc.source, "mem_percent"), inc)
            slope = np.polyfit(np.arange(len(s)), s.to_numpy(), 1)[0]
            assert slope > 0 and s.iloc[-30:].mean() - s.iloc[:30].mean() > 5, inc
        elif inc.kind == "zombie_process":
            s = series(sim, inc.source, "zombie_count")
            assert during(s, inc).max() >= 1 and before(s, inc.start).max() == 0, inc
        elif inc.kind == "hung_process":
            s = series(sim, inc.source, "heartbeat_age_s")
            assert during(s, inc).max() > 5 * 60 and before(s, inc.start).max() < 10, inc
        else:
            c = channel_calls(sim, inc.source)
            now, then = during(c, inc), before(c, inc.start)
            if inc.kind == "latency_surge":
                ok_now, ok_then = now[now.status == "ok"], then[then.status == "ok"]
                assert ok_now.latency_ms.quantile(0.95) > 1.3 * ok_then.latency_ms.quantile(0.95), inc
            elif inc.kind == "error_burst":
                assert (now.status == "error").mean() > 0.1 > (then.status == "error").mean(), inc
            elif inc.kind == "cost_surge":
                assert now.cost_usd.mean() > 1.4 * then.cost_usd.mean(), inc


def test_cascades_start_at_the_root_and_spread_to_dependents(small_sim):
    cascades = small_sim.incidents[small_sim.incidents.kind == "cascade"]
    assert len(cascades) >= 2
    for root, group in cascades.groupby("root"):
        root_rows = group[group.source == root]
        for start in root_rows["start"]:
            followers = group[
                (group.source != root) & (group.start > start) & (group.start <= start + pd.Timedelta("10min"))
            ]
            assert set(followers["source"]) == set(small_sim.dependencies[root])


def test_written_files_read_back_through_ingestion(tmp_path):
    sim = simulate(SimConfig(hosts=2, channels=1, regions=1, days=0.25, seed=3, start=T0, incidents_per_day=4))
    paths = sim.write(tmp_path)
    window = (T0, T0 + pd.Timedelta(days=1))
    metrics, bad = read_metric_file(paths["metrics"], *window)
    assert not bad and len(metrics) == len(sim.metrics)
    pd.testing.assert_series_equal(metrics["value"], sim.metrics["value"], rtol=1e-5, check_names=False)
    calls, bad = read_call_log(paths["calls"], *window)
    assert not bad and len(calls) == len(sim.calls)
    assert calls["call_id"].tolist() == sim.calls["request_id"].tolist()
    incidents = pd.read_csv(paths["incidents"])
    assert list(incidents.columns) == ["start", "end", "source", "metric", "kind", "magnitude", "root", "cause"]


@pytest.mark.parametrize("step", ["10s", "5min"])
def test_other_steps(step):
    sim = simulate(SimConfig(hosts=2, channels=1, regions=1, days=0.5, seed=1, step=step, start=T0))
    cpu = series(sim, sim.hosts[0], "cpu_percent")
    assert (cpu.index[1] - cpu.index[0]) == pd.Timedelta(step)
    assert len(cpu) == int(pd.Timedelta(days=0.5) / pd.Timedelta(step))
