"""`rhythm forecast backtest / train / predict`, run as real processes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines_tests.forecasting.conftest import daily_sine, noisy_level
from rhythm_pipelines_tests.test_cli import run


def write_csv(path, series: pd.Series, ts_col: str = "timestamp", value_col: str = "value"):
    pd.DataFrame({ts_col: series.index.strftime("%Y-%m-%d %H:%M:%S"), value_col: series.to_numpy()}).to_csv(
        path, index=False
    )
    return path


def test_backtest_json_contract(tmp_path):
    csv = write_csv(tmp_path / "cpu.csv", noisy_level(700, seed=2), "time", "cpu")
    out = run(
        "forecast", "backtest", str(csv), "--timestamp-col", "time", "--value-col", "cpu",
        "--horizon", "6", "--test-fraction", "0.25", "--models", "naive,ets", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["model"] in {"naive", "ets", "ensemble"}
    assert set(report["metrics"]) == {"model", "naive", "seasonal_naive"}
    for m in report["metrics"].values():
        assert set(m) == {"mae", "mape", "mase"} and all(np.isfinite(list(m.values())))
    assert report["fit_s"] > 0 and set(report["predict_ms"]) == {"p50", "p99"}
    assert set(report["coverage"]) == {"80", "95"} and 0 <= report["coverage"]["80"] <= report["coverage"]["95"] <= 1
    assert report["horizon"] == 6 and report["origins"] == 700 - 525 - 6 + 1
    text = run("forecast", "backtest", str(csv), "--timestamp-col", "time", "--value-col", "cpu", "--models", "naive")
    assert text.returncode == 0 and "skill vs naive" in text.stdout and "seasonal_naive" in text.stdout


def test_backtest_bad_files_name_file_row_and_field(tmp_path):
    good = noisy_level(200)
    missing = write_csv(tmp_path / "missing.csv", good, value_col="v")
    out = run("forecast", "backtest", str(missing))
    assert out.returncode == 2 and "missing.csv" in out.stderr and "value" in out.stderr
    frame = pd.DataFrame(
        {"timestamp": good.index.strftime("%Y-%m-%d %H:%M:%S"), "value": good.to_numpy().astype(object)}
    )
    frame.loc[41, "value"] = "n/a"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    out = run("forecast", "backtest", str(tmp_path / "bad.csv"))
    assert out.returncode == 2 and "bad.csv" in out.stderr and "row 42" in out.stderr and "value" in out.stderr
    short = write_csv(tmp_path / "short.csv", good.iloc[:30])
    out = run("forecast", "backtest", str(short))
    assert out.returncode == 2 and "too few" in out.stderr


def test_train_from_the_store_then_predict(tmp_path):
    s = daily_sine(days=3, noise=0.5)
    # stored as 10-second samples (what the host agent writes): training averages them onto 5 minutes
    fine = s.resample("10s").interpolate()
    db = tmp_path / "m.db"
    with SQLiteMetricsStore(db) as store:
        store.write_metrics(
            pd.DataFrame({"ts": fine.index, "source": "web-01", "metric": "cpu_percent", "value": fine.to_numpy()})
        )
    registry = tmp_path / "models"
    end = (s.index[-1] + pd.Timedelta("5min")).isoformat()
    common = ["--source", "web-01", "--metric", "cpu_percent", "--registry", str(registry)]
    out = run("forecast", "train", *common, "--store", f"sqlite:///{db}", "--end", end, "--models", "naive,mstl")
    assert out.returncode == 0, out.stderr
    assert "version 1" in out.stdout
    stale = run("forecast", "predict", *common, "--store", f"sqlite:///{db}", "--horizon", "15min")
    assert stale.returncode == 2 and "its forecast would be in the past" in stale.stderr  # now is days later
    store_arg = ["--store", f"sqlite:///{db}"]
    pred = run("forecast", "predict", *common, *store_arg, "--horizon", "15min", "--at", end, "--json")
    assert pred.returncode == 0, pred.stderr
    report = json.loads(pred.stdout)
    assert report["version"] == 1 and len(report["forecast"]) == 3
    assert report["origin"] == s.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ") and report["behind_s"] == 0
    first = report["forecast"][0]
    assert set(first) == {"ds", "mean", "lo-80", "hi-80", "lo-95", "hi-95"}
    assert first["ds"] == (s.index[-1] + pd.Timedelta("5min")).strftime("%Y-%m-%dT%H:%M:%SZ")
    truth = 50 + 20 * np.sin(2 * np.pi * len(s) / 288)
    assert abs(first["mean"] - truth) < 3
    missing = run("forecast", "predict", "--source", "nope", "--metric", "cpu_percent", "--registry", str(registry))
    assert missing.returncode == 2 and "no model" in missing.stderr
    # two more hours stored after training: predict catches up and forecasts from their end, as the UI does
    later = pd.date_range(s.index[-1] + pd.Timedelta("10s"), periods=720, freq="10s")
    with SQLiteMetricsStore(db) as store:
        store.write_metrics(pd.DataFrame({"ts": later, "source": "web-01", "metric": "cpu_percent", "value": 50.0}))
    at = (later[-1] + pd.Timedelta("10s")).isoformat()
    pred = run("forecast", "predict", *common, "--store", f"sqlite:///{db}", "--horizon", "15min", "--at", at, "--json")
    caught = json.loads(pred.stdout)
    assert caught["caught_up_points"] >= 23 and pd.Timestamp(caught["origin"]) > s.index[-1] + pd.Timedelta("1h")
