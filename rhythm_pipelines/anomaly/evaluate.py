"""Window-based evaluation of point flags (NAB's labelled windows, simplified and documented).

- A window ``[start, end]`` (both ends inclusive) is a true positive if any flagged point lies inside it,
  else a false negative.
- A false positive is a maximal run of consecutive flagged points outside every window.
- Nothing is scored in the probationary period, the first ``min(floor(0.15 n), 750)`` rows of a file:
  flags there are ignored and windows that end inside it are not counted.
- Aggregates sum the counts over files.

``evaluate_nab`` scores one setting; ``nab_loco`` scores every setting of the grid
(``anomaly.tuning.GRID``) on every file once, and runs leave-one-category-out over NAB's categories (the
first directory of each file's key) to give the held-out figure beside the in-sample one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.profiles import AUTO, detect_stored
from rhythm_pipelines.anomaly.tuning import DEFAULT, GRID, Tuning

if TYPE_CHECKING:
    from rhythm_pipelines.anomaly.loco import LocoResult
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


class WindowIndex:
    """One file's windows as row positions, built once, so many flag sets score fast."""

    def __init__(self, timestamps: Sequence | pd.Series, windows: Iterable[tuple], probation: int | None = None):
        ts = _naive_utc(pd.DatetimeIndex(pd.to_datetime(pd.Series(timestamps)))).to_numpy()
        self.n = n = len(ts)
        self.skip = probation_rows(n) if probation is None else probation
        self.inside = np.zeros(n, dtype=bool)
        self.scored: list[np.ndarray] = []  # the rows of each window that counts
        for start, end in windows:
            lo, hi = (np.datetime64(_naive_utc(pd.DatetimeIndex([pd.Timestamp(t)]))[0]) for t in (start, end))
            in_window = (ts >= lo) & (ts <= hi)
            self.inside |= in_window
            idx = np.flatnonzero(in_window)
            if len(idx) and idx[-1] >= self.skip:
                self.scored.append(idx)

    def score(self, flags: Sequence[bool] | np.ndarray) -> Score:
        flagged = np.asarray(flags, dtype=bool).copy()
        flagged[: self.skip] = False
        tp = sum(1 for idx in self.scored if flagged[idx].any())
        outside = flagged & ~self.inside
        runs = int(outside[0]) + int(np.count_nonzero(outside[1:] & ~outside[:-1])) if self.n else 0
        return Score(tp, runs, len(self.scored) - tp)


def score_flags(
    timestamps: Sequence | pd.Series,
    flags: Sequence[bool] | np.ndarray,
    windows: Iterable[tuple],
    probation: int | None = None,
) -> Score:
    """Score one file's flags against its windows (see the module docstring)."""
    return WindowIndex(timestamps, windows, probation).score(flags)


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


def category_of(key: str) -> str:
    """A NAB file's category: the first directory of its key (``realTweets/x.csv`` -> ``realTweets``)."""
    return key.split("/", 1)[0] if "/" in key else "(top level)"


def _generic(method: str) -> str:
    return "ensemble" if method == AUTO else method  # a NAB file's metric has no known meaning


def evaluate_nab(
    data_dir: str | Path, windows_path: str | Path, method: str = "ensemble", tuning: Tuning = DEFAULT
) -> tuple[pd.DataFrame, Score]:
    """Window P/R/F1 of ``method`` with ``tuning`` on every labelled CSV of a NAB-format directory:
    (per file, total). A NAB file's metric has no known meaning, so ``auto`` is the generic ensemble there."""
    from rhythm_pipelines.anomaly.series import detect_frame, read_series

    windows_by_file, files = nab_files(data_dir, windows_path)
    rows, total = [], Score()
    for key, path in files:
        out = detect_frame(read_series(path), _generic(method), tuning=tuning)
        s = score_flags(out["timestamp"].dt.tz_localize(None), out["is_anomaly"].to_numpy(), windows_by_file[key])
        total = total + s
        rows.append({"file": key, "windows": len(windows_by_file[key]), **s.as_dict()})
    return pd.DataFrame(rows), total


def nab_files(data_dir: str | Path, windows_path: str | Path) -> tuple[dict, list[tuple[str, Path]]]:
    """(windows by file key, [(key, path)] of the labelled CSVs); an error when none is labelled."""
    windows_by_file = load_windows(Path(windows_path))
    files = labelled_files(Path(data_dir), windows_by_file)
    if not files:
        raise ValueError(f"no CSV under {data_dir} is a key of {windows_path}")
    return windows_by_file, files


def nab_keys(data_dir: str | Path, windows_path: str | Path) -> list[str]:
    """The keys of the labelled files under ``data_dir`` (``category/name.csv``)."""
    return [key for key, _ in nab_files(data_dir, windows_path)[1]]


def grid_counts(
    data_dir: str | Path,
    windows_path: str | Path,
    method: str = "ensemble",
    grid: Sequence[Tuning] = GRID,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(file keys, counts of shape (settings, files, 3)): every setting of ``grid`` on every labelled file.

    Each file is read once and its channels computed once per rhythm gate; the settings then differ only
    in the threshold. Scored exactly as ``detect_frame`` scores a file (repeats get no flag)."""
    from rhythm_pipelines.anomaly.detectors import make_detector
    from rhythm_pipelines.anomaly.series import read_series, scoring_order

    windows_by_file, files = nab_files(data_dir, windows_path)
    counts = np.zeros((len(grid), len(files), 3), dtype="int64")
    members = _generic(method).split("+")
    gated = members == ["ensemble"] or (len(members) > 1 and "seasonal" in members)  # else the gate is moot
    for f, (key, path) in enumerate(files):
        series = read_series(path)
        scored, position = scoring_order(series)
        first = ~series["duplicate"].to_numpy()
        x = series["value"].to_numpy(dtype="float64")[scored]
        ts = pd.DatetimeIndex(series["timestamp"]).take(scored)
        index = WindowIndex(series["timestamp"].dt.tz_localize(None), windows_by_file[key])
        channels: dict = {}
        for g, tuning in enumerate(grid):
            gate = tuning.min_rhythm if gated else None
            if gate not in channels:
                detector = make_detector(_generic(method), "both", gate)
                channels[gate] = (*detector.deviations(x, ts), detector.spans)
            dev, z, spans = channels[gate]
            threshold = tuning.threshold()
            flags = threshold.flags(threshold.scores(dev, z, spans, ts))[position] & first
            counts[g, f] = astuple(index.score(flags))
        if progress:
            progress(f + 1, len(files), key)
    return [k for k, _ in files], counts


def by_category(counts: np.ndarray, keys: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(sorted categories, counts summed per category: shape (settings, categories, 3)) from per-file counts."""
    cats = [category_of(k) for k in keys]
    categories = sorted(set(cats))
    members = [[i for i, c in enumerate(cats) if c == cat] for cat in categories]
    return categories, np.stack([counts[:, m].sum(axis=1) for m in members], axis=1)


@dataclass(frozen=True)
class NabLoco:
    """Leave-one-category-out on NAB: the protocol's result, and what it means in settings and files."""

    result: LocoResult
    grid: tuple[Tuning, ...]
    files: pd.DataFrame  # per file: the in-sample choice's counts and the held-out choice's counts

    @property
    def default(self) -> Tuning:
        return self.grid[self.result.in_sample_choice]

    def report(self) -> dict:
        """JSON-ready: in_sample, held_out, by_category (held out), the settings and rules chosen."""
        r = self.result
        return {
            "in_sample": r.in_sample.as_dict(),
            "held_out": r.held_out.as_dict(),
            "by_category": {
                c: {"files": int((self.files["category"] == c).sum()), **r.by_category[c].as_dict()}
                for c in r.categories
            },
            "in_sample_by_category": {c: s.as_dict() for c, s in r.in_sample_by_category.items()},
            "chosen": {c: {"rule": r.rules[c], **self.grid[i].as_dict()} for c, i in r.chosen.items()},
            "in_sample_choice": {"rule": r.in_sample_rule, **self.default.as_dict()},
            "grid_size": len(self.grid),
        }


def nab_loco(
    data_dir: str | Path,
    windows_path: str | Path,
    method: str = "ensemble",
    grid: Sequence[Tuning] = GRID,
    progress: Callable[[int, int, str], None] | None = None,
) -> NabLoco:
    """Score the grid on every file and run leave-one-category-out over the files' categories."""
    from rhythm_pipelines.anomaly.loco import leave_one_category_out

    keys, counts = grid_counts(data_dir, windows_path, method, grid, progress)
    cats = [category_of(k) for k in keys]
    categories, per_category = by_category(counts, keys)
    result = leave_one_category_out(per_category, categories)
    held = [result.chosen[c] for c in cats]
    frame = pd.DataFrame(
        {
            "file": keys,
            "category": cats,
            **{k: counts[result.in_sample_choice, :, i] for i, k in enumerate(("tp", "fp", "fn"))},
            **{f"held_out_{k}": counts[held, range(len(keys)), i] for i, k in enumerate(("tp", "fp", "fn"))},
        }
    )
    return NabLoco(result, tuple(grid), frame)


def nab_report(
    data_dir: str | Path,
    windows_path: str | Path,
    method: str = "ensemble",
    grid: Sequence[Tuning] = GRID,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """JSON-ready NAB evaluation of ``method``: leave-one-category-out when there are two categories or more
    (:meth:`NabLoco.report`), else the shipped default in-sample with ``held_out`` None and a ``note``.
    Both carry ``files``: per file, its counts (and, held out, the held-out choice's)."""
    categories = sorted({category_of(k) for k in nab_keys(data_dir, windows_path)})
    if len(categories) >= 2:
        loco = nab_loco(data_dir, windows_path, method, grid, progress)
        report = loco.report()
        report["shipped_default_is_in_sample_choice"] = loco.default == DEFAULT
        files = loco.files.set_index("file")
    else:
        frame, total = evaluate_nab(data_dir, windows_path, method, DEFAULT)
        report = {"in_sample": total.as_dict(), "held_out": None, "by_category": {}, "in_sample_by_category": {}}
        report["note"] = f"one category ({categories[0]}): nothing to hold out; the shipped default, in-sample"
        files = frame.set_index("file")
    report["files"] = {
        k: {c: int(v) for c, v in row.items() if c in ("tp", "fp", "fn") or c.startswith("held_out_")}
        for k, row in files.iterrows()
    }
    return report
