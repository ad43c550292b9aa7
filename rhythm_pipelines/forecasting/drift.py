"""When a served forecast has drifted: the series whose daily accuracy says its model no longer fits.

From the ``forecast_accuracy`` table (one row per day and series, written by the asset of that name), a series
drifts when its model lost to Naive (skill < 0) on each of its last ``LOSING_DAYS`` scored days in a row, or
when its latest day's MAE jumped to ``JUMP`` times the median of the ``BASELINE_DAYS`` before it (a regime
change the model has not seen). Each drift names the series, why, and where the new regime starts: the
retraining window begins there, so the new model learns the new regime rather than the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LOSING_DAYS = 3
JUMP = 3.0
BASELINE_DAYS = 7
MIN_BASELINE = 3  # days of MAE before a jump can be judged


@dataclass(frozen=True)
class Drift:
    target: str
    source: str
    day: pd.Timestamp  # the last scored day: a drift is acted on once per series and day
    since: pd.Timestamp  # where the new regime starts (the retraining window's start)
    reason: str

    @property
    def series(self) -> str:
        return f"{self.target}:{self.source}"


def drifted(accuracy: pd.DataFrame) -> list[Drift]:
    """The drifting series of ``accuracy`` rows (ts = the day, target, source, skill, mae)."""
    out = []
    for (target, source), g in accuracy.sort_values("ts").groupby(["target", "source"], sort=True):
        days = pd.DatetimeIndex(g["ts"])
        skill = g["skill"].to_numpy(dtype="float64")
        mae = g["mae"].to_numpy(dtype="float64")
        last = days[-1]
        run = days[-LOSING_DAYS:]
        consecutive = len(run) == LOSING_DAYS and (run[-1] - run[0]) == pd.Timedelta(days=LOSING_DAYS - 1)
        if consecutive and (skill[-LOSING_DAYS:] < 0).all():
            shown = ", ".join(f"{s:+.0%}" for s in skill[-LOSING_DAYS:])
            why = f"lost to Naive {LOSING_DAYS} days running (skill {shown})"
            out.append(Drift(target, source, last, run[0], why))
            continue
        before = mae[:-1][days[:-1] >= last - pd.Timedelta(days=BASELINE_DAYS)]
        if len(before) >= MIN_BASELINE and np.isfinite(mae[-1]):
            usual = float(np.median(before))
            if usual > 0 and mae[-1] > JUMP * usual:
                why = (
                    f"MAE jumped to {mae[-1] / usual:.1f}x its {len(before)}-day median ({mae[-1]:.3g} vs {usual:.3g})"
                )
                out.append(Drift(target, source, last, last, why))
    return out
