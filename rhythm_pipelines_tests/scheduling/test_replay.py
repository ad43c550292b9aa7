"""The scheduling replay: same workload, three policies; the predictive one keeps the load under target
where the static cron does not, learning the peak only from what came before."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.scheduling.planner import Run
from rhythm_pipelines.scheduling.replay import (
    STEP,
    Backlog,
    World,
    cron_concurrency,
    forecast_peaks,
    forecasts,
    replay,
    score,
    workload,
)

START = pd.Timestamp("2026-03-09", tz="UTC")  # a Monday


def background(days: int, start: pd.Timestamp) -> pd.DataFrame:
    """Two hosts at 40 % CPU with a 70 % peak every day from 14:00 to 15:00."""
    idx = pd.date_range(start, periods=days * 288, freq=STEP)
    cpu = 40.0 + 30.0 * (idx.hour == 14)
    return pd.DataFrame({"h1": cpu, "h2": cpu}, index=idx)


def history(days: int) -> pd.DataFrame:
    bg = background(days, START - pd.Timedelta(days=days))
    return (
        bg.reset_index(names="ts")
        .melt(id_vars="ts", var_name="source", value_name="value")
        .assign(metric="cpu_percent")
    )


def test_the_predictive_policy_moves_batch_work_out_of_the_learned_peak():
    days = 2
    runs = [
        Run(
            f"batch@{h}",
            h,
            START + pd.Timedelta(days=d, hours=14),
            pd.Timedelta(minutes=45),
            cpu=25.0,
            deadline=START + pd.Timedelta(days=d, hours=20),
        )  # fmt: skip
        for h in ("h1", "h2")
        for d in range(days)
    ] + [
        Run(f"check@{h}", h, START + pd.Timedelta(days=d, hours=14), pd.Timedelta(minutes=5), cpu=2.0, priority="high")
        for h in ("h1", "h2")
        for d in range(days)
    ]
    world = World(background(days, START), runs, slots=4, backlog=Backlog(cpu=5.0))
    past = history(7)
    assert cron_concurrency(world, past) == {"h1": 2, "h2": 2}  # (80 - 70) / 5 at the busiest hour
    expected = forecasts(world, past)
    peaks = forecast_peaks(world, past, expected)
    assert {t.hour for _, t in peaks} == {14}  # 70 + cron's 10 + the batch: over 80, forecast from the past alone
    static, predictive = (score(world, replay(world, p, past, expected), peaks) for p in ("static", "predictive"))
    assert static["hours_above_target"] > 0 and static["peaks_preempted"] == 0.0
    assert predictive["hours_above_target"] == 0 and predictive["deadline_misses"] == 0
    assert predictive["peaks_preempted"] == 1.0
    assert predictive["hp_p95_wait_s"] == static["hp_p95_wait_s"] == 0.0  # high priority still runs on time
    assert predictive["utilisation"] > static["utilisation"]  # the backlog fills the hours off the peak
    scheduled = {r.key for r in runs}
    for policy in ("static", "predictive"):
        assert scheduled <= set(replay(world, policy, past, expected).started)  # every scheduled run ran


def test_the_replay_is_deterministic_and_the_workload_has_every_kind():
    runs = workload(["h1", "h2"], START, 2, seed=3)
    assert runs == workload(["h1", "h2"], START, 2, seed=3)
    kinds = {r.job.split("@")[0].split("_")[0] for r in runs}
    assert kinds == {"health", "batch", "adhoc"}
    world = World(background(2, START), runs, slots=3)
    a, b = replay(world, "reactive", history(7)), replay(world, "reactive", history(7))
    assert a.started == b.started and np.array_equal(a.cpu.to_numpy(), b.cpu.to_numpy())
