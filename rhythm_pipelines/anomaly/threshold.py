"""Data-driven thresholds: a point is flagged when it beats the series' own record, by a margin.

``RecordThreshold`` looks at every channel of a detector (``base.Channels``) and flags a point when, on
some channel, both hold:

- its deviation exceeds ``factor`` × the largest deviation of that channel over ``memory`` points before
  it (the series' own recent record, in the series' units: a scale-free bar). A channel whose feature
  spans several points (a mean of 12, a rise over 120) takes its record from before that span, so a
  slow excursion does not raise its own bar as it grows;
- its z is at least ``zmin`` (it is far out in robust spreads, so a record in plain noise is not enough).

Its score is ``min(deviation / bar, z / zmin)`` on the best channel: above 1 means past the bar. Flags
then keep one point per ``refractory`` points and none in the first ``warmup``. Nothing comes from
labels: every series sets its own bar from its own past, and the rule is causal like the channels.
"""

from __future__ import annotations

from collections import deque

import bottleneck as bn
import numpy as np

from rhythm_pipelines.anomaly.base import lag


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


class RecordThreshold:
    def __init__(
        self,
        memory: int = 1500,
        factor: float = 1.1,
        zmin: float = 6.0,
        refractory: int = 50,
        warmup: int = 100,
    ):
        self.memory, self.factor, self.zmin = memory, factor, zmin
        self.refractory, self.warmup = refractory, warmup

    def __repr__(self) -> str:
        return (
            f"RecordThreshold(memory={self.memory}, factor={self.factor}, zmin={self.zmin}, "
            f"refractory={self.refractory}, warmup={self.warmup})"
        )

    def _score(self, dev: np.ndarray, z: np.ndarray, record: np.ndarray) -> np.ndarray:
        bar = self.factor * record
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bar > 0, dev / np.where(bar > 0, bar, 1.0), np.where(dev > 0, np.inf, 0.0))
        return np.minimum(ratio, z / self.zmin)

    def scores(self, dev: np.ndarray, z: np.ndarray, spans: tuple[int, ...] | None = None) -> np.ndarray:
        """Batch: the score of every point, from channels of shape (channels, n) (or (n,)) whose features
        span ``spans`` points (1 each by default)."""
        dev, z = np.atleast_2d(dev), np.atleast_2d(z)
        n = dev.shape[1]
        if n == 0:
            return np.zeros(0)
        spans = spans or (1,) * len(dev)
        record = np.vstack(
            [
                np.nan_to_num(lag(bn.move_max(d, min(self.memory, n), min_count=1), span), nan=0.0)
                for d, span in zip(dev, spans, strict=True)
            ]
        )
        return self._score(dev, z, record).max(axis=0)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Batch: scores above 1, at most one per ``refractory`` points, none in the warm-up."""
        return refractory_flags(scores, self.refractory, self.warmup)

    def reset(self) -> None:
        self._records: list[deque[tuple[int, float]]] = []  # per channel: (index, dev), decreasing devs
        self._pending: list[deque[tuple[int, float]]] = []  # per channel: devs not yet old enough to count
        self._i, self._last = 0, -(10**18)

    def update(self, dev: np.ndarray, z: np.ndarray, spans: tuple[int, ...] | None = None) -> tuple[float, bool]:
        """Streaming: the next point's score and flag from its channels (shape (channels,))."""
        if not hasattr(self, "_records"):
            self.reset()
        dev, z = np.atleast_1d(dev), np.atleast_1d(z)
        spans = spans or (1,) * len(dev)
        while len(self._records) < len(dev):
            self._records.append(deque())
            self._pending.append(deque())
        i = self._i
        record = np.zeros(len(dev))
        for c, (window, pending) in enumerate(zip(self._records, self._pending, strict=True)):
            while pending and pending[0][0] <= i - spans[c]:  # old enough: it joins the record window
                j, d = pending.popleft()
                while window and window[-1][1] <= d:
                    window.pop()
                window.append((j, d))
            while window and window[0][0] <= i - spans[c] - self.memory:
                window.popleft()
            record[c] = window[0][1] if window else 0.0
        score = float(self._score(dev, z, record).max())
        flag = score > 1.0 and i >= self.warmup and i - self._last > self.refractory
        if flag:
            self._last = i
        for c, pending in enumerate(self._pending):
            pending.append((i, float(dev[c])))
        self._i += 1
        return score, flag


class FixedBar:
    """A fixed bar on the robust z: a point is flagged when some channel's z reaches ``zbar``.

    For series whose meaning is known (a host's CPU, memory, zombies), where incidents recur: a record bar
    goes blind for a day after the first one, a z bar does not. Pair it with ``spread="mad"`` detectors so
    an earlier incident does not widen the spread either. Score: the best channel's z / ``zbar``.
    """

    def __init__(self, zbar: float = 6.0, refractory: int = 50, warmup: int = 100):
        self.zbar, self.refractory, self.warmup = zbar, refractory, warmup

    def __repr__(self) -> str:
        return f"FixedBar(zbar={self.zbar}, refractory={self.refractory}, warmup={self.warmup})"

    def scores(self, dev: np.ndarray, z: np.ndarray, spans: tuple[int, ...] | None = None) -> np.ndarray:
        z = np.atleast_2d(z)
        return z.max(axis=0) / self.zbar if z.shape[1] else np.zeros(0)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return refractory_flags(scores, self.refractory, self.warmup)

    def reset(self) -> None:
        self._i, self._last = 0, -(10**18)

    def update(self, dev: np.ndarray, z: np.ndarray, spans: tuple[int, ...] | None = None) -> tuple[float, bool]:
        if not hasattr(self, "_i"):
            self.reset()
        score = float(np.max(np.atleast_1d(z))) / self.zbar
        flag = score > 1.0 and self._i >= self.warmup and self._i - self._last > self.refractory
        if flag:
            self._last = self._i
        self._i += 1
        return score, flag
