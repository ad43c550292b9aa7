"""How strongly a series follows a daily rhythm, measured causally from its own recent past.

The rhythm of a point is ``corr(x_t, x_{t-P}) - corr(x_t, x_{t-P/2})`` over the pairs of the trailing
``window`` (``P`` the period, a day by default; each lagged value is the last sample at or before ``t - lag``
within ``tolerance``). A daily rhythm correlates with yesterday and against half a day ago (a sine scores
2); a trend or a slow drift correlates with both and scores about 0; noise scores 0. It is recomputed at the
first point of every clock hour (the same points in batch and streaming), from running sums, so a long
series costs O(n). Fewer than ``MIN_PAIRS`` pairs for either lag: 0 (no rhythm known yet).

The seasonal detector scores a point against its hour only while the series has a rhythm
(``SeasonalProfile(min_rhythm=...)``): on a series without one, "unusual for its hour" is noise.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

HOUR_NS = 3600 * 10**9
MIN_PAIRS = 48  # two days of hourly points: fewer pairs say nothing about a daily rhythm
_SUMS = 6  # count, Σa, Σb, Σaa, Σbb, Σab


def lagged(x: np.ndarray, ts_ns: np.ndarray, lag_ns: int, tol_ns: int) -> np.ndarray:
    """Batch: each point's last value at or before ``t - lag`` if within ``tol`` of it, else NaN."""
    target = ts_ns - lag_ns
    idx = np.searchsorted(ts_ns, target, side="right") - 1
    ok = (idx >= 0) & (target - ts_ns[np.maximum(idx, 0)] <= tol_ns)
    out = np.full(len(x), np.nan)
    out[ok] = x[idx[ok]]
    return out


def _terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per point: (1, a, b, a², b², ab) where b is known, zeros where not; shape (6, n)."""
    ok = ~np.isnan(b)
    a0, b0 = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    return np.vstack([ok.astype("float64"), a0, b0, a0 * a0, b0 * b0, a0 * b0])


def _corr(s: np.ndarray) -> np.ndarray:
    """Pearson correlation from window sums (rows of ``_terms`` summed); NaN below MIN_PAIRS, 0 when either
    side is flat (a variance below 1e-9 of its mean square is rounding left over from the running sums)."""
    n, sa, sb, saa, sbb, sab = s
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sab / n - (sa / n) * (sb / n)
        va = saa / n - (sa / n) ** 2
        vb = sbb / n - (sb / n) ** 2
        varied = (va > 1e-9 * saa / n) & (vb > 1e-9 * sbb / n)
        r = np.where(varied, cov / np.sqrt(va * vb), 0.0)
    return np.where(n >= MIN_PAIRS, np.clip(r, -1.0, 1.0), np.nan)


def _strength(full: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Day-ago minus half-a-day-ago correlation; 0 (no rhythm known) unless both have enough pairs."""
    return np.where(np.isnan(full) | np.isnan(half), 0.0, full - half)


def rhythm(
    x: np.ndarray, ts_ns: np.ndarray, period_ns: int, window_ns: int, tol_ns: int, origin: float | None = None
) -> np.ndarray:
    """Batch: the rhythm strength of every point (see the module docstring)."""
    x = np.asarray(x, dtype="float64")
    n = len(x)
    if n == 0:
        return np.zeros(0)
    c = x - (x[0] if origin is None else origin)  # centred on the first value: sums stay small
    prefix = [
        np.hstack([np.zeros((_SUMS, 1)), np.add.accumulate(_terms(c, lagged(c, ts_ns, lag, tol_ns)), axis=1)])
        for lag in (period_ns, period_ns // 2)
    ]
    hour = ts_ns // HOUR_NS
    starts = np.flatnonzero(np.r_[True, hour[1:] != hour[:-1]])  # first point of each clock hour
    lo = np.searchsorted(ts_ns, ts_ns[starts] - window_ns, side="right")
    full, half = (_corr(p[:, starts + 1] - p[:, lo]) for p in prefix)
    first = np.zeros(n, dtype=bool)
    first[starts] = True
    return _strength(full, half)[np.cumsum(first) - 1]


class RhythmMeter:
    """Streaming twin of :func:`rhythm`: push each point with its two lagged values, read the strength.
    The running sums are those of the batch prefix sums, added in the same order (plain floats: the same
    IEEE additions as ``np.add.accumulate``), so both agree."""

    def __init__(self, window_ns: int):
        self.window_ns = window_ns
        self._origin: float | None = None
        self._run: list[tuple[float, ...]] = [(0.0,) * _SUMS, (0.0,) * _SUMS]  # running prefix sums per lag
        self._kept: deque[tuple[int, tuple[float, ...], tuple[float, ...]]] = deque()  # (ts, prefixes after it)
        self._base: list[tuple[float, ...]] = [(0.0,) * _SUMS, (0.0,) * _SUMS]  # prefixes before the window
        self._hour: int | None = None
        self.value = 0.0

    def push(self, ts_ns: int, x: float, back_full: float, back_half: float) -> float:
        """Add a point (its values a period and half a period earlier, NaN if unknown); the current strength."""
        if self._origin is None:
            self._origin = x
        a = x - self._origin
        for k, b in enumerate((back_full, back_half)):
            if math.isnan(b):
                terms: tuple[float, ...] = (0.0,) * _SUMS
            else:
                c = b - self._origin
                terms = (1.0, a, c, a * a, c * c, a * c)
            self._run[k] = tuple(r + t for r, t in zip(self._run[k], terms, strict=True))
        self._kept.append((ts_ns, self._run[0], self._run[1]))
        while self._kept and self._kept[0][0] <= ts_ns - self.window_ns:
            _, self._base[0], self._base[1] = self._kept.popleft()
        hour = ts_ns // HOUR_NS
        if hour != self._hour:
            self._hour = hour
            full, half = (_corr((np.array(self._run[k]) - np.array(self._base[k]))[:, np.newaxis]) for k in (0, 1))
            self.value = float(_strength(full, half)[0])
        return self.value
