"""Value-range and gap rules behind the asset checks."""

from __future__ import annotations

import pandas as pd

from rhythm_pipelines.metrics.quality import expected_range, range_violations, series_gaps
from rhythm_pipelines_tests.conftest import T0


def test_ranges_by_metric_name():
    assert expected_range("cpu_percent") == (0.0, 100.0)
    assert expected_range("error_rate") == (0.0, 1.0)
    assert expected_range("latency_ms_p95")[0] == 0.0
    points = pd.DataFrame(
        {
            "ts": T0,
            "source": "h",
            "metric": ["cpu_percent", "cpu_percent", "error_rate", "latency_ms_p95", "load1"],
            "value": [100.0, 100.5, 1.2, -3.0, 0.0],
        }
    )
    assert range_violations(points)["value"].tolist() == [100.5, 1.2, -3.0]


def test_gaps_over_three_median_steps():
    ts = list(pd.date_range(T0, periods=30, freq="10s"))
    ts = ts[:10] + ts[14:]  # 40 s missing after the 10th point: a 50 s step, median 10 s
    even = pd.DataFrame({"ts": pd.date_range(T0, periods=30, freq="10s"), "source": "b", "metric": "m", "value": 1.0})
    points = pd.concat([pd.DataFrame({"ts": ts, "source": "a", "metric": "m", "value": 1.0}), even])
    gaps = series_gaps(points)
    assert gaps[["source", "median_step_s", "largest_gap_s"]].values.tolist() == [["a", 10.0, 50.0]]
    assert gaps["gap_after"].iloc[0] == T0 + pd.Timedelta("90s")


def test_process_series_are_not_held_to_host_ranges_or_gaps():
    assert expected_range("proc_cpu_percent") == (0.0, float("inf"))
    ts = list(pd.date_range(T0, periods=30, freq="10s"))
    proc = pd.DataFrame({"ts": ts[:5] + ts[20:], "source": "h/proc/42", "metric": "proc_rss_bytes", "value": 1.0})
    assert series_gaps(proc).empty
    shuffled = pd.DataFrame({"ts": ts[::-1], "source": "h", "metric": "m", "value": 1.0})
    assert series_gaps(shuffled).empty  # unsorted input is sorted first
