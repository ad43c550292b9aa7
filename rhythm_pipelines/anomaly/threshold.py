"""Data-driven thresholds: a point is flagged when it beats the series' own record, by a margin.

``RecordThreshold`` looks at every channel of a detector (``base.Channels``) and flags a point when, on
some channel, both hold:

- its deviation exceeds ``factor`` × the channel's record: the largest deviation before it, each past
  deviation discounted by half every ``half_life_days`` of time since it (a scale-free bar in the series'
  own units that forgets an old incident gradually, whatever the sampling rate). A channel whose feature
  spans several points (a mean of 12, a rise over 120) takes its record from before that span, so a
  slow excursion does not raise its own bar as it grows;
- its z is at least ``zmin`` (it is far out in robust spreads, so a record in plain noise is not enough).

Its score is ``min(deviation / bar, z / zmin)`` on the best channel: above 1 means past the bar. Flags
then keep one point per ``refractory`` points and none in the first ``warmup``. Nothing comes from
labels: every series sets its own bar from its own past, and the rule is causal like the channels. The
constants are chosen by leave-one-category-out on NAB (``anomaly.tuning``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.base import lag

DAY_NS = 86_400 * 10**9
NO_TIMESTAMPS_STEP_DAYS = 1 / 1440  # without timestamps, points are taken one minute apart


def elapsed_days(timestamps: pd.DatetimeIndex | None, n: int) -> np.ndarray:
    """Days since the first point (without timestamps: one minute per point)."""
    if timestamps is None:
        return np.arange(n, dtype="float64") * NO_TIMESTAMPS_STEP_DAYS
    ns = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
    return (ns - ns[0]) / DAY_NS if n else np.zeros(0)


def decay_rate(half_life_days: float) -> float:
    """λ of ``exp(-λ t)`` (t in days) for a half-life; 0 for an infinite one (nothing fades)."""
    return math.log(2) / half_life_days if math.isfinite(half_life_days) else 0.0


def decayed_record(dev: np.ndarray, days: np.ndarray, span: int, half_life_days: float) -> np.ndarray:
    """Batch: ``max_j dev_j · 2^-(t_i - t_j)/half_life`` over ``j <= i - span`` (0 before any), as
    ``exp(cummax(log dev_j + λ t_j) - λ t_i)``: one pass, no window."""
    lam = decay_rate(half_life_days)
    with np.errstate(divide="ignore"):
        logged = np.log(np.maximum(np.nan_to_num(dev, nan=0.0), 0.0)) + lam * days
    best = lag(np.maximum.accumulate(logged) if len(logged) else logged, span)
    return np.nan_to_num(np.exp(best - lam * days), nan=0.0)


def refractory_flags(scores: np.ndarray, refractory: int, warmup: int) -> np.ndarray:
    """Scores above 1, at most one flag per ``refractory`` points and none in the first ``warmup``."""
    scores = np.asarray(scores, dtype="float64")
    out = np.zeros(len(scores), dtype=bool)
    last = -(10**18)
    for i in np.flatnonzero(scores > 1.0):
        if i >= warmup and i - last > refractory:
            out[i] = True
            last = i
    return out


class Bar(ABC):
    """What every threshold shares: a score per point (above 1 = past the bar), then at most one flag per
    ``refractory`` points and none in the first ``warmup``, the same in batch and streaming."""

    refractory: int
    warmup: int

    @abstractmethod
    def scores(
        self,
        dev: np.ndarray,
        z: np.ndarray,
        spans: tuple[int, ...] | None = None,
        timestamps: pd.DatetimeIndex | None = None,
    ) -> np.ndarray:
        """Batch: the score of every point from channels of shape (channels, n) (or (n,))."""

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Batch: scores above 1, at most one per ``refractory`` points, none in the warm-up."""
        return refractory_flags(scores, self.refractory, self.warmup)

    def _flag(self, score: float, i: int) -> bool:
        """Streaming: the flag of point ``i`` with ``score`` (call once per point, in order)."""
        last = getattr(self, "_last", -(10**18))
        flag = score > 1.0 and i >= self.warmup and i - last > self.refractory
        if flag:
            self._last = i
        return flag


class RecordThreshold(Bar):
    def __init__(
        self,
        half_life_days: float = math.inf,
        factor: float = 1.1,
        zmin: float = 6.0,
        refractory: int = 50,
        warmup: int = 100,
    ):
        if not half_life_days > 0:
            raise ValueError(f"half_life_days must be positive, got {half_life_days}")
        self.half_life_days, self.factor, self.zmin = float(half_life_days), factor, zmin
        self.refractory, self.warmup = refractory, warmup

    def __repr__(self) -> str:
        return (
            f"RecordThreshold(half_life_days={self.half_life_days:g}, factor={self.factor}, zmin={self.zmin}, "
            f"refractory={self.refractory}, warmup={self.warmup})"
        )

    def channel_scores(self, dev: np.ndarray, z: np.ndarray, record: np.ndarray) -> np.ndarray:
        """Per channel: min(deviation / (factor × record), z / zmin)."""
        bar = self.factor * record
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bar > 0, dev / np.where(bar > 0, bar, 1.0), np.where(dev > 0, np.inf, 0.0))
        return np.minimum(ratio, z / self.zmin)

    def scores(
        self,
        dev: np.ndarray,
        z: np.ndarray,
        spans: tuple[int, ...] | None = None,
        timestamps: pd.DatetimeIndex | None = None,
    ) -> np.ndarray:
        """Batch: the score of every point, from channels of shape (channels, n) (or (n,)) whose features
        span ``spans`` points (1 each by default), at ``timestamps`` (for the record's decay)."""
        dev, z = np.atleast_2d(dev), np.atleast_2d(z)
        n = dev.shape[1]
        if n == 0:
            return np.zeros(0)
        spans = spans or (1,) * len(dev)
        days = elapsed_days(timestamps, n)
        record = np.vstack(
            [decayed_record(d, days, span, self.half_life_days) for d, span in zip(dev, spans, strict=True)]
        )
        return self.channel_scores(dev, z, record).max(axis=0)

    def reset(self) -> None:
        self._best: list[float] = []  # per channel: max of log dev_j + λ t_j over the counted points
        self._pending: list[deque[tuple[int, float]]] = []  # per channel: devs not yet old enough to count
        self._i, self._last, self._t0 = 0, -(10**18), None

    def update(
        self,
        dev: np.ndarray,
        z: np.ndarray,
        spans: tuple[int, ...] | None = None,
        ts: pd.Timestamp | None = None,
    ) -> tuple[float, bool]:
        """Streaming: the next point's score and flag from its channels (shape (channels,)) at ``ts``."""
        if not hasattr(self, "_best"):
            self.reset()
        dev, z = np.atleast_1d(dev), np.atleast_1d(z)
        spans = spans or (1,) * len(dev)
        while len(self._best) < len(dev):
            self._best.append(-math.inf)
            self._pending.append(deque())
        i = self._i
        if ts is None:
            day = i * NO_TIMESTAMPS_STEP_DAYS  # as elapsed_days: float(i) times the step
        else:
            ns = pd.Timestamp(ts).as_unit("ns").value
            self._t0 = ns if self._t0 is None else self._t0
            day = (ns - self._t0) / DAY_NS
        lam = decay_rate(self.half_life_days)
        record = np.zeros(len(dev))
        for c, pending in enumerate(self._pending):
            while pending and pending[0][0] <= i - spans[c]:  # old enough: it joins the record
                self._best[c] = max(self._best[c], pending.popleft()[1])
            record[c] = float(np.exp(self._best[c] - lam * day)) if self._best[c] > -math.inf else 0.0
        score = float(self.channel_scores(dev, z, record).max())
        flag = self._flag(score, i)
        for c, pending in enumerate(self._pending):
            d = float(dev[c])
            logged = float(np.log(d)) + lam * day if d > 0 else -math.inf  # NaN dev counts as 0, as in batch
            pending.append((i, logged))
        self._i += 1
        return score, flag


class FixedBar(Bar):
    """A fixed bar on the robust z: a point is flagged when some channel's z reaches ``zbar``.

    For series whose meaning is known (a host's CPU, memory, zombies), where incidents recur: a record bar
    goes blind for a day after the first one, a z bar does not. Pair it with ``spread="mad"`` detectors so
    an earlier incident does not widen the spread either. Score: the best channel's z / ``zbar``.
    """

    def __init__(self, zbar: float = 6.0, refractory: int = 50, warmup: int = 100):
        self.zbar, self.refractory, self.warmup = zbar, refractory, warmup

    def __repr__(self) -> str:
        return f"FixedBar(zbar={self.zbar}, refractory={self.refractory}, warmup={self.warmup})"

    def scores(
        self,
        dev: np.ndarray,
        z: np.ndarray,
        spans: tuple[int, ...] | None = None,
        timestamps: pd.DatetimeIndex | None = None,
    ) -> np.ndarray:
        z = np.atleast_2d(z)
        return z.max(axis=0) / self.zbar if z.shape[1] else np.zeros(0)

    def reset(self) -> None:
        self._i, self._last = 0, -(10**18)

    def update(
        self, dev: np.ndarray, z: np.ndarray, spans: tuple[int, ...] | None = None, ts: pd.Timestamp | None = None
    ) -> tuple[float, bool]:
        if not hasattr(self, "_i"):
            self.reset()
        score = float(np.max(np.atleast_1d(z))) / self.zbar
        flag = self._flag(score, self._i)
        self._i += 1
        return score, flag
