"""Count-aware tests for API channels, on the raw calls rather than per-minute aggregates (pure).

A channel's minute metrics rest on a handful of calls at night: one slow call makes a minute's p95, two
errors in three calls a 67 % error rate. So a channel's ``error_rate``, ``latency_ms_p95`` and ``cost_usd``
are judged on the calls of a trailing ``window`` (15 min), each with the test that fits its kind of data:

- errors (``error`` or ``timeout``): the binomial tail of the window's errors given its calls, against the
  error rate of the ``error_baseline`` (24 h) before the window (plus a weak prior, so a quiet channel
  is not certain of a 0 % rate);
- latency (ok calls) and cost per ok call: a z-test of the window's mean log value against the mean and
  spread of the ``baseline`` (2 h) of calls before it: latencies and token counts are log-normal.

Every test gives a z (a binomial p as the normal z of the same tail); the score is z / ``zbar``, so one
5-sigma bar holds for all three, a false-alarm budget rather than a fit. Only rises count. A point at
minute ``m`` sees the calls before ``m`` + 1 minute, as its minute metric does: causal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, norm

CHANNEL_TESTS = {"error_rate": "errors", "latency_ms_p95": "latency", "cost_usd": "cost"}  # metric: test
MINUTE = pd.Timedelta("1min")


def _ends(grid: pd.DatetimeIndex) -> np.ndarray:
    """Each point's first instant it does not see: the end of its minute."""
    return (pd.DatetimeIndex(grid).floor("min") + MINUTE).as_unit("ns").asi8


def _cumsum(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values, dtype="float64")])


def _bounds(t: np.ndarray, ends: np.ndarray, window: int, baseline: str) -> tuple[np.ndarray, ...]:
    """Per point, indices into the sorted call times ``t``: the baseline's start, the window's start, the
    last minute's start and the end (calls [b0, lo) are the baseline, [lo, hi) the window)."""
    at = lambda times: np.searchsorted(t, times, side="left")  # noqa: E731
    return at(ends - window - pd.Timedelta(baseline).value), at(ends - window), at(ends - MINUTE.value), at(ends)


@dataclass(frozen=True)
class ChannelTests:
    window: str = "15min"
    baseline: str = "2h"
    error_baseline: str = "24h"
    zbar: float = 5.0
    min_calls: int = 3  # in the window
    min_baseline_calls: int = 20
    prior_rate: float = 0.01  # the error rate a channel is assumed to have before it is seen...
    prior_calls: float = 100.0  # ...worth this many calls

    def scores(self, calls: pd.DataFrame, grid: pd.DatetimeIndex, metric: str) -> np.ndarray:
        """Scores (z / zbar) at every point of ``grid`` for ``metric`` (a key of ``CHANNEL_TESTS``), from
        ``calls`` of one channel@region (columns ts, status, latency_ms, cost_usd)."""
        test = CHANNEL_TESTS[metric]
        calls = calls.sort_values("ts", kind="stable")
        t = pd.DatetimeIndex(calls["ts"]).as_unit("ns").asi8
        ends = _ends(grid)
        window = pd.Timedelta(self.window).value
        if test == "errors":
            z = self._error_z(t, (calls["status"] != "ok").to_numpy(dtype="float64"), ends, window)
        else:
            ok = (calls["status"] == "ok").to_numpy()
            v = calls["latency_ms" if test == "latency" else "cost_usd"].to_numpy(dtype="float64")
            keep = ok & np.isfinite(v) & (v > 0)
            z = self._mean_z(t[keep], np.log(v[keep]), ends, window)
        return np.clip(z, 0.0, None) / self.zbar

    def _error_z(self, t: np.ndarray, errors: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
        cum = _cumsum(errors)
        b0, lo, last, hi = _bounds(t, ends, window, self.error_baseline)
        n, e = hi - lo, cum[hi] - cum[lo]
        now = cum[hi] - cum[last]  # errors in the last minute
        p0 = (cum[lo] - cum[b0] + self.prior_rate * self.prior_calls) / (lo - b0 + self.prior_calls)
        tail = binom.sf(e - 1, n, p0)  # P(at least e errors in n calls)
        z = norm.isf(np.clip(tail, 1e-300, 1.0))
        return np.where((n >= self.min_calls) & (now > 0), np.nan_to_num(z, nan=0.0, posinf=40.0), 0.0)

    def _mean_z(self, t: np.ndarray, v: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
        s1, s2 = _cumsum(v), _cumsum(v * v)
        b0, lo, last, hi = _bounds(t, ends, window, self.baseline)
        n, nb = hi - lo, lo - b0
        mean = (s1[hi] - s1[lo]) / np.maximum(n, 1)
        base = (s1[lo] - s1[b0]) / np.maximum(nb, 1)
        var = ((s2[lo] - s2[b0]) - nb * base * base) / np.maximum(nb - 1, 1)
        se = np.sqrt(np.maximum(var, 1e-6) / np.maximum(n, 1))
        z = (mean - base) / se
        now = (s1[hi] - s1[last]) / np.maximum(hi - last, 1)  # the last minute's mean
        still = (hi > last) & (now > base)
        return np.where((n >= self.min_calls) & (nb >= self.min_baseline_calls) & still, z, 0.0)
