"""Window-based evaluation of point flags (NAB's labelled windows, simplified and documented).

- A window ``[start, end]`` (both ends inclusive) is a true positive if any flagged point lies inside it,
  else a false negative.
- A false positive is a maximal run of consecutive flagged points outside every window.
- Nothing is scored in the probationary period, the first ``min(floor(0.15 n), 750)`` rows of a file:
  flags there are ignored and windows that end inside it are not counted.
- Aggregates sum the counts over files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.profiles import AUTO, detect_stored

if TYPE_CHECKING:
    from rhythm_pipelines.simulate import Simulation


def probation_rows(n: int) -> int:
    return min(int(np.floor(0.15 * n)), 750)


@dataclass(frozen=True)
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def score_flags(
    timestamps: Sequence | pd.Series,
    flags: Sequence[bool] | np.ndarray,
    windows: Iterable[tuple],
    probation: int | None = None,
) -> Score:
    """Score one file's flags against its windows (see the module docstring)."""
    ts = _naive_utc(pd.DatetimeIndex(pd.to_datetime(pd.Series(timestamps)))).to_numpy()
    flagged = np.asarray(flags, dtype=bool).copy()
    n = len(flagged)
    skip = probation_rows(n) if probation is None else probation
    flagged[:skip] = False
    inside = np.zeros(n, dtype=bool)
    tp = fn = 0
    for start, end in windows:
        lo, hi = (np.datetime64(_naive_utc(pd.DatetimeIndex([pd.Timestamp(t)]))[0]) for t in (start, end))
        in_window = (ts >= lo) & (ts <= hi)
        inside |= in_window
        idx = np.flatnonzero(in_window)
        if len(idx) == 0 or idx[-1] < skip:
            continue
        if flagged[in_window].any():
            tp += 1
        else:
            fn += 1
    outside = flagged & ~inside
    runs = int(outside[0]) + int(np.count_nonzero(outside[1:] & ~outside[:-1])) if n else 0
    return Score(tp, runs, fn)


def _naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Timestamps as naive UTC: NAB's are naive, the simulator's tz-aware; both compare the same way."""
    return index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index


def simulation_points(sim: Simulation) -> pd.DataFrame:
    """The simulator's host metrics and the per-minute channel metrics ingestion derives from its calls."""
    from rhythm_pipelines.metrics.calls import channel_minute_metrics

    return pd.concat([sim.metrics, channel_minute_metrics(sim.calls)], ignore_index=True)


def score_simulation(sim: Simulation, method: str = AUTO) -> tuple[pd.DataFrame, Score]:
    """Score every series of the metrics the simulator's incidents live on, windows = its incidents, as the
    pipeline does (``auto``: by metric profile, channels on their raw calls).

    Series with no incident count their false alarms too.
    """
    incidents = sim.incidents
    points = simulation_points(sim)
    points = points[points["metric"].isin(set(incidents["metric"]))]
    rows, total = [], Score()
    for (source, metric), g in points.groupby(["source", "metric"], sort=True):
        g = g.sort_values("ts")
        mine = incidents[(incidents["source"] == source) & (incidents["metric"] == metric)]
        _, flags = detect_stored(g["value"].to_numpy(), pd.DatetimeIndex(g["ts"]), source, metric, method, sim.calls)
        s = score_flags(g["ts"], flags, list(zip(mine["start"], mine["end"], strict=True)))
        total = total + s
        rows.append({"source": source, "metric": metric, "incidents": len(mine), **s.as_dict()})
    return pd.DataFrame(rows), total


def simulation_example(sim: Simulation, method: str = AUTO) -> tuple[pd.DataFrame, list[tuple], str, str]:
    """The simulated series with the most incidents, scored: (ts/value/score/flagged frame, its incident
    windows, source, metric) for a picture of what the detector sees."""
    counts = sim.incidents.groupby(["source", "metric"]).size().sort_values(ascending=False, kind="stable")
    source, metric = counts.index[0]
    points = simulation_points(sim)
    g = points[(points["source"] == source) & (points["metric"] == metric)].sort_values("ts")
    ts = pd.DatetimeIndex(g["ts"])
    values = g["value"].to_numpy(dtype="float64")
    scores, flags = detect_stored(values, ts, source, metric, method, sim.calls)
    mine = sim.incidents[(sim.incidents["source"] == source) & (sim.incidents["metric"] == metric)]
    frame = pd.DataFrame({"ts": ts, "value": values, "score": scores, "flagged": flags})
    return frame, list(zip(mine["start"], mine["end"], strict=True)), source, metric


def load_windows(path: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    raw = json.loads(Path(path).read_text())
    return {k: [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in v] for k, v in raw.items()}


def labelled_files(data_dir: Path, windows: dict) -> list[tuple[str, Path]]:
    """(key, path) of every CSV under ``data_dir`` whose relative path is a key of ``windows``."""
    data_dir = Path(data_dir)
    found = []
    for path in sorted(data_dir.rglob("*.csv")):
        key = path.relative_to(data_dir).as_posix()
        if key in windows:
            found.append((key, path))
    return found


def nab_paths(data_dir: str | Path, windows_path: str | Path | None = None) -> tuple[Path, Path]:
    """The data directory and its windows file (default: NAB's ``../labels/combined_windows.json``)."""
    data = Path(data_dir)
    return data, Path(windows_path) if windows_path else data.parent / "labels" / "combined_windows.json"


def evaluate_nab(
    data_dir: str | Path, windows_path: str | Path, method: str = "ensemble"
) -> tuple[pd.DataFrame, Score]:
    """Window P/R/F1 of ``method`` on every labelled CSV of a NAB-format directory: (per file, total).

    A NAB file's metric has no known meaning, so ``auto`` is the generic ensemble there."""
    from rhythm_pipelines.anomaly.series import detect_frame, read_series

    method = "ensemble" if method == AUTO else method
    windows_by_file = load_windows(Path(windows_path))
    files = labelled_files(Path(data_dir), windows_by_file)
    if not files:
        raise ValueError(f"no CSV under {data_dir} is a key of {windows_path}")
    rows, total = [], Score()
    for key, path in files:
        out = detect_frame(read_series(path), method)
        s = score_flags(out["timestamp"].dt.tz_localize(None), out["is_anomaly"].to_numpy(), windows_by_file[key])
        total = total + s
        rows.append({"file": key, "windows": len(windows_by_file[key]), **s.as_dict()})
    return pd.DataFrame(rows), total
