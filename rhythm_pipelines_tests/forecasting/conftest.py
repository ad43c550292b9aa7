from __future__ import annotations

import numpy as np
import pandas as pd

STEP = pd.Timedelta("5min")
DAY = 288


def daily_sine(days: float = 3, noise: float = 0.0, seed: int = 0, level: float = 50.0) -> pd.Series:
    """A 5-minute series with a pure daily cycle (amplitude 20) plus optional Gaussian noise."""
    n = int(days * DAY)
    ts = pd.date_range("2026-03-02", periods=n, freq=STEP, tz="UTC")
    y = level + 20 * np.sin(2 * np.pi * np.arange(n) / DAY)
    return pd.Series(y + np.random.default_rng(seed).normal(0, noise, n), index=ts)


def noisy_level(n: int = 800, seed: int = 0) -> pd.Series:
    """A 5-minute AR(1) series around 10: a mean-reverting model beats the last value on it."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1, n)
    y = np.empty(n)
    acc = 0.0
    for i in range(n):
        acc = 0.6 * acc + e[i]
        y[i] = 10 + acc
    return pd.Series(y, index=pd.date_range("2026-03-02", periods=n, freq=STEP, tz="UTC"))
