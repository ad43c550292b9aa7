"""Forecasting speed and accuracy.

1. Fit with selection for a fleet: ``--series`` synthetic series x one week of 5-minute points (daily
   cycle, AR noise, varied levels) in statsforecast's long shape, through ``train_fleet`` on ``--jobs``
   processes.
2. Serving latency of ``Forecaster``: ``predict`` of a loaded model (p50/p99: a slice of the forecast cached
   at the last point, no model work), and ``update`` with one new point + ``predict`` (p50/p99: the model
   follows the point and forecasts: the time a live forecast costs); then update + forecast of every model of
   the zoo, the ensemble included, wall time and CPU time per call.
3. NAB side by side (``--nab-dir``, default ../shared/nab/data/realAWSCloudwatch): the walk-forward backtest
   of each file at 1 h (12 steps), against Naive, and against Prophet when it is installed
   (``pip install -e '.[bench]'``). Prophet cannot follow new points without a refit: it is refitted once a
   day of the test part (the backtest contract's limit) and forecasts each origin from its latest fit.
4. The simulator's channel latency on the latency target's grid, backtested at 1 h (MAPE per channel).

Usage: python benchmarks/bench_forecast.py [--series 1000] [--jobs 2] [--nab-dir DIR] [--skip-nab] [--skip-fleet]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.forecasting.backtest import backtest  # noqa: E402
from rhythm_pipelines.forecasting.fleet import train_fleet  # noqa: E402
from rhythm_pipelines.forecasting.registry import ModelRegistry  # noqa: E402
from rhythm_pipelines.forecasting.selection import actuals, mae  # noqa: E402
from rhythm_pipelines.forecasting.serving import Forecaster, train_series  # noqa: E402

STEP = pd.Timedelta("5min")
WEEK = 2016
H = 12


def fleet_series(i: int, n: int = WEEK) -> np.ndarray:
    rng = np.random.default_rng(i)
    t = np.arange(n)
    level, amp = rng.uniform(10, 80), rng.uniform(0, 25)
    noise = np.zeros(n)
    e = rng.normal(0, rng.uniform(0.5, 4), n)
    for k in range(1, n):
        noise[k] = 0.7 * noise[k - 1] + e[k]
    return level + amp * np.sin(2 * np.pi * (t + rng.integers(0, 288)) / 288) + noise


def fleet_frame(series: int) -> pd.DataFrame:
    """The fleet in statsforecast's long shape."""
    ds = pd.date_range("2026-03-02", periods=WEEK, freq=STEP, tz="UTC")
    return pd.concat(
        [pd.DataFrame({"unique_id": f"s{i:05d}", "ds": ds, "y": fleet_series(i)}) for i in range(series)],
        ignore_index=True,
    )


def bench_fleet(series: int, jobs: int) -> None:
    print(f"== fit with selection: {series} series x {WEEK} points (one week of 5-minute steps), {jobs} processes")
    frame = fleet_frame(series)
    res = train_fleet(frame, H, n_jobs=jobs)
    wall = res.wall_s
    chosen = pd.Series([t.meta["model"] for t in res.trained.values()]).value_counts()
    per = [t.meta["fit_s"] for t in res.trained.values()]
    print(
        f"wall {wall:.1f} s ({wall / series * 1000:.0f} ms of wall time per series on {jobs} processes; "
        f"selection inside a worker, wall p50 {statistics.median(per):.2f} s); {len(res.errors)} series failed"
    )
    print(f"projected for 1000 series: {wall / series * 1000:.0f} s")
    print("chosen:", ", ".join(f"{k} {v}" for k, v in chosen.items()))


def bench_serving(tmp: Path) -> None:
    print("== serving: Forecaster.predict from a loaded model (1 h = 12 steps, 80/95 % intervals)")
    registry = ModelRegistry(tmp)
    for name, models in (("arima", ("arima",)), ("ets", ("ets",)), ("mstl", ("mstl",)), ("theta", ("theta",))):
        y = fleet_series(7)
        ts = pd.date_range("2026-03-02", periods=len(y), freq=STEP, tz="UTC")
        trained = train_series(ts, y, H, models)
        registry.save("bench", name, trained.model, trained.meta)
        f = Forecaster(registry)
        f.load("bench", name)
        lat = []
        for _ in range(2000):
            t = time.perf_counter()
            f.predict("bench", name, H)
            lat.append(time.perf_counter() - t)
        upd = []
        nxt = fleet_series(8, 500)
        for k in range(500):
            t = time.perf_counter()
            f.update("bench", name, [ts[-1] + (k + 1) * STEP], nxt[k : k + 1])
            f.predict("bench", name, H)
            upd.append(time.perf_counter() - t)
        q = lambda v, p: np.percentile(v, p) * 1000  # noqa: E731
        print(
            f"{name:6s} predict (cached slice) p50 {q(lat, 50):.3f} ms p99 {q(lat, 99):.3f} ms | "
            f"update + predict p50 {q(upd, 50):.2f} ms p99 {q(upd, 99):.2f} ms"
        )


def bench_zoo_update() -> None:
    """One new point + a 12-step forecast with 80/95 % intervals, for every model of the zoo (guarded)."""
    from rhythm_pipelines.forecasting.models import DEFAULT_MODELS, EnsembleModel, GuardedModel, SeriesModel

    print("== update + forecast of every zoo model (one new point, 12 steps, 80/95 % intervals), 500 calls each")
    y = fleet_series(7, WEEK + 500)
    seasons = [288]
    names = [m for m in DEFAULT_MODELS if m != "ensemble"] + ["ensemble"]
    for name in names:
        if name == "ensemble":
            parts = [SeriesModel(m, seasons).fit(y[:WEEK]) for m in ("ets", "theta", "arima")]
            model = GuardedModel(EnsembleModel(parts), H).start(y[:WEEK])
        else:
            model = GuardedModel(SeriesModel(name, seasons).fit(y[:WEEK]), H).start(y[:WEEK])
        wall, cpu = [], []
        for v in y[WEEK:]:
            t, c = time.perf_counter(), time.process_time()
            model.update(np.array([v]))
            model.forecast(H)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        q = lambda v, p: np.percentile(v, p) * 1000  # noqa: E731
        print(
            f"{name:15s} wall p50 {q(wall, 50):6.2f} ms p99 {q(wall, 99):6.2f} ms | "
            f"CPU mean {np.mean(cpu) * 1000:6.2f} ms"
        )


def prophet_backtest(ts: pd.Series, y: np.ndarray, n_train: int) -> tuple[np.ndarray, float]:
    """Prophet refitted once a day of the test part; each origin's 12 steps come from the latest fit."""
    import logging

    from prophet import Prophet

    logging.getLogger("cmdstanpy").disabled = True  # a line per chain otherwise
    at = range(n_train, len(y) - H + 1)
    pred = np.empty((len(at), H))
    day = int(pd.Timedelta("1D") / STEP)
    fit_s = 0.0
    frame = pd.DataFrame({"ds": pd.DatetimeIndex(ts).tz_localize(None), "y": y})
    for start in range(n_train, len(y) - H + 1, day):
        t = time.perf_counter()
        m = Prophet(daily_seasonality=True, weekly_seasonality=True, yearly_seasonality=False)
        m.fit(frame.iloc[:start])
        fit_s += time.perf_counter() - t
        fut = m.predict(frame.iloc[start : min(len(y), start + day + H)][["ds"]])["yhat"].to_numpy()
        for o in range(start, min(start + day, len(y) - H + 1)):
            pred[o - n_train] = fut[o - start : o - start + H]
    return pred, fit_s


def bench_nab(nab_dir: Path) -> None:
    files = sorted(nab_dir.glob("*.csv"))
    try:
        import prophet  # noqa: F401

        have_prophet = True
    except ImportError:
        have_prophet = False
        print("prophet is not installed (pip install -e '.[bench]'): the Prophet columns are left out")
    print(f"== NAB {nab_dir} at 1 h (12 steps), walk-forward over the last 20 %")
    rows = []
    for path in files:
        df = pd.read_csv(path)
        ts = pd.to_datetime(df["timestamp"])
        y = df["value"].to_numpy(dtype="float64")
        t = time.perf_counter()
        r = backtest(ts, y, H, 0.2)
        row = {
            "file": path.name[:34],
            "model": r.model,
            "mae": r.metrics["model"]["mae"],
            "naive": r.metrics["naive"]["mae"],
            "skill": r.skill(),
            "fit_s": r.fit_s,
            "total_s": time.perf_counter() - t,
            "cov80": r.coverage["80"],
            "cov95": r.coverage["95"],
        }
        if have_prophet:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred, fit_s = prophet_backtest(ts, y, r.train_points)
            truth = actuals(y, range(r.train_points, len(y) - H + 1), H)
            row["prophet"] = mae(truth, pred)
            row["prophet_skill"] = 1 - row["prophet"] / row["naive"]
            row["prophet_fit_s"] = fit_s
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        f"mean skill vs naive {table['skill'].mean():+.3f} (worst {table['skill'].min():+.3f}); "
        f"mean fit with selection {table['fit_s'].mean():.2f} s per series; interval coverage (conformal, "
        f"walk-forward) 80 %: {table['cov80'].mean():.3f}, 95 %: {table['cov95'].mean():.3f}"
    )
    if have_prophet:
        print(
            f"prophet: mean skill {table['prophet_skill'].mean():+.3f} (worst {table['prophet_skill'].min():+.3f}); "
            f"mean fit {table['prophet_fit_s'].mean():.2f} s per series (all daily refits)"
        )


def bench_sim_latency(days: float = 7.0) -> None:
    """The simulator's channel latency, as the latency target puts it on its grid, backtested at 1 h."""
    from rhythm_pipelines.forecasting.data import regularize
    from rhythm_pipelines.forecasting.targets import TARGETS
    from rhythm_pipelines.metrics.calls import channel_minute_metrics
    from rhythm_pipelines.simulate import SimConfig, simulate

    t = TARGETS["latency"]
    h = int(pd.Timedelta("1h") / pd.Timedelta(t.step))
    print(f"== simulator latency ({days:g} days, {t.metric}, {t.how} per {t.step}) at 1 h, last 20 %")
    sim = simulate(SimConfig(days=days, seed=3, start=pd.Timestamp("2026-03-02", tz="UTC")))
    minute = channel_minute_metrics(sim.calls)
    rows = []
    for source, g in minute[minute["metric"] == t.metric].groupby("source"):
        s = regularize(g["ts"], g["value"].to_numpy(), t.step, t.how)
        r = backtest(s.index, s.to_numpy(), h, 0.2)
        m = r.metrics
        rows.append({"source": source, "model": r.model, "mape": m["model"]["mape"], "naive_mape": m["naive"]["mape"]})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"MAPE mean {table['mape'].mean():.3f}, worst {table['mape'].max():.3f} "
        f"(Naive {table['naive_mape'].mean():.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    default_nab = Path(__file__).resolve().parents[2] / "shared" / "nab" / "data" / "realAWSCloudwatch"
    parser.add_argument("--nab-dir", type=Path, default=default_nab)
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_serving(Path(tmp))
    bench_zoo_update()
    if not args.skip_fleet:
        bench_fleet(args.series, args.jobs)
    bench_sim_latency()
    if not args.skip_nab:
        if args.nab_dir.is_dir():
            bench_nab(args.nab_dir)
        else:
            print(f"no NAB directory at {args.nab_dir}: pass --nab-dir")


if __name__ == "__main__":
    main()
