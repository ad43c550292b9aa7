"""Data-driven thresholds: a point is flagged when its score beats the series' own recent record.

``TrailingMaxThreshold`` flags a point when its score exceeds both an absolute ``floor`` and ``factor`` ×
the largest score of the trailing ``memory`` points (the 100th percentile of the trailing scores), and
at most once per ``refractory`` points. Nothing comes from labels: every series sets its own bar from
its own past, so one configuration serves all series and is causal like the scores.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd


class TrailingMaxThreshold:
    def __init__(
        self, memory: int = 1500, factor: float = 1.15, floor: float = 5.0, refractory: int = 50, warmup: int = 100
    ):
        self.memory, self.factor, self.floor = memory, factor, floor
        self.refractory, self.warmup = refractory, warmup

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Batch: the flags of a whole score series."""
        scores = np.asarray(scores, dtype="float64")
        past_max = pd.Series(scores).rolling(self.memory, min_periods=1).max().shift(1).fillna(0.0).to_numpy()
        bar = np.maximum(self.floor, self.factor * past_max)
        candidates = np.flatnonzero(scores > bar)
        out = np.zeros(len(scores), dtype=bool)
        last = -(10**18)
        for i in candidates[candidates >= self.warmup]:
            if i - last > self.refractory:
                out[i] = True
                last = i
        return out

    def reset(self) -> None:
        self._recent: deque[tuple[int, float]] = deque()  # (index, score), scores decreasing: sliding max
        self._i, self._last = 0, -(10**18)

    def update(self, score: float) -> bool:
        """Streaming: the flag of the next score."""
        if not hasattr(self, "_recent"):
            self.reset()
        i = self._i
        while self._recent and self._recent[0][0] <= i - self.memory - 1:
            self._recent.popleft()
        past_max = self._recent[0][1] if self._recent else 0.0
        flag = bool(
            score > max(self.floor, self.factor * past_max) and i >= self.warmup and i - self._last > self.refractory
        )
        if flag:
            self._last = i
        while self._recent and self._recent[-1][1] <= score:
            self._recent.pop()
        self._recent.append((i, score))
        self._i += 1
        return flag
