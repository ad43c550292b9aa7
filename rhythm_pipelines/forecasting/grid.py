"""Putting a series on a regular grid before it is forecast, or saying why it cannot be.

The step is the most common gap between timestamps. Each point is snapped to its nearest grid slot (a
repeated slot keeps its first point); short runs of missing slots, up to ``max_fill`` steps (default: 3 steps
or an hour, whichever is more: a clock change's lost hour is filled), are filled by linear interpolation
between their neighbours; a longer hole is refused with its place and length named, since filling it would
invent the data the forecast is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.models import infer_step, step_name

MAX_FILL = 3  # steps of missing data filled by interpolation (or an hour's worth, if more); longer holes refused
FILL_SPAN = pd.Timedelta("1h")


class GapError(ValueError):
    """A hole too long to fill."""


@dataclass(frozen=True)
class Grid:
    ts: pd.DatetimeIndex
    y: np.ndarray
    step: pd.Timedelta
    filled: int  # slots filled by interpolation
    snapped: int  # points moved to their nearest slot
    dropped: int  # points sharing a slot with an earlier one

    def describe(self) -> dict:
        return {"step": step_name(self.step), "filled": self.filled, "snapped": self.snapped, "dropped": self.dropped}


def regularise(ts: pd.Series | pd.DatetimeIndex, y: np.ndarray, max_fill: int | None = None) -> Grid:
    """``(ts, y)`` on a regular grid of the inferred step (see module doc)."""
    idx = pd.DatetimeIndex(ts)
    y = np.asarray(y, dtype="float64")
    order = np.argsort(idx.asi8, kind="stable")  # time order first: a point out of order is placed, not lost
    idx, y = idx[order], y[order]
    step = infer_step(idx)
    if max_fill is None:
        max_fill = max(MAX_FILL, int(FILL_SPAN // step))
    offsets = (idx - idx[0]) / step
    slots = np.rint(np.asarray(offsets, dtype="float64")).astype("int64")
    snapped = int(np.count_nonzero(np.abs(np.asarray(offsets, dtype="float64") - slots) > 1e-9))
    first = ~pd.Series(slots).duplicated(keep="first").to_numpy()
    slots, values = slots[first], y[first]
    n = int(slots[-1]) + 1
    grid = np.full(n, np.nan)
    grid[slots] = values
    missing = np.isnan(grid)
    if missing.any():
        edges = np.diff(np.concatenate([[0], missing.astype("int8"), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int(np.argmax(ends - starts))
        length = int(ends[longest] - starts[longest])
        if length > max_fill:
            a, b = idx[0] + starts[longest] * step, idx[0] + (ends[longest] - 1) * step
            raise GapError(
                f"a gap of {length} missing steps of {step_name(step)} ({length * step}) from {a} to {b}: "
                f"only gaps of up to {max_fill} steps are filled; cut the series there or fill it yourself"
            )
        known = np.flatnonzero(~missing)
        grid[missing] = np.interp(np.flatnonzero(missing), known, grid[known])
    out_ts = pd.DatetimeIndex(idx[0] + np.arange(n) * step)
    return Grid(out_ts, grid, step, int(missing.sum()), snapped, int((~first).sum()))
