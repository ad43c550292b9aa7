"""One series in, scores and flags out: input validation and the detect pipeline used by the CLI."""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.detectors import DETECTORS, make_detector
from rhythm_pipelines.anomaly.tuning import DEFAULT, Tuning
from rhythm_pipelines.metrics.schema import ValidationError

METHODS = tuple(DETECTORS)


DISORDER = ("warn", "drop", "error")  # what to do with a timestamp earlier than one before it


def read_series(
    path: Path, timestamp_col: str = "timestamp", value_col: str = "value", on_disorder: str = "warn"
) -> pd.DataFrame:
    """A CSV series as ``timestamp`` (UTC), ``value``, ``duplicate`` (a repeat of an earlier timestamp:
    the first occurrence is the one scored) and ``out_of_order`` (earlier than a timestamp above it).

    Errors name the file, the data row (from 1) and the field: a missing column, an unparsable timestamp
    or value. Real exports step back in time (a clock adjustment, a replayed hour); the rows out of order are
    the fewest whose removal leaves the rest in order (:func:`out_of_order`). ``on_disorder`` says what to do:
    ``warn`` keeps them (every row is scored in time order, see :func:`disorder_note`), ``drop`` leaves them
    out, ``error`` refuses the file naming the first.
    """
    if on_disorder not in DISORDER:
        raise ValueError(f"on_disorder must be one of {', '.join(DISORDER)}, got {on_disorder!r}")
    origin = str(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValidationError(origin, None, None, f"not a readable CSV file: {exc}") from exc
    for col in (timestamp_col, value_col):
        if col not in raw.columns:
            raise ValidationError(origin, None, col, f"missing column (columns: {', '.join(raw.columns)})")
    ts = pd.to_datetime(raw[timestamp_col], utc=True, errors="coerce", format="mixed")
    values = pd.to_numeric(raw[value_col].str.strip(), errors="coerce")
    for mask, field, reason in (
        (ts.isna().to_numpy(), timestamp_col, "not a parsable timestamp"),
        (~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan)), value_col, "not a finite number"),
    ):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValidationError(origin, i + 1, field, f"{reason}: {raw[field].iloc[i]!r}")
    ns = ts.astype("int64").to_numpy()
    back = out_of_order(ns)
    if back.any() and on_disorder == "error":
        i = int(np.flatnonzero(back)[0])
        raise ValidationError(origin, i + 1, timestamp_col, f"timestamps must be in time order ({_where(ts, back)})")
    frame = pd.DataFrame(
        {
            "timestamp": ts,
            "value": values.astype("float64"),
            "duplicate": repeats(ns, back),
            "out_of_order": back,
        }
    )
    frame.attrs["dropped"] = 0
    if back.any() and on_disorder == "drop":
        frame = frame[~back].copy()
        frame["duplicate"] = frame["timestamp"].duplicated().to_numpy()
        frame.attrs["dropped"] = int(back.sum())
        frame.attrs["dropped_rows"] = (np.flatnonzero(back) + 1).tolist()
    return frame


def out_of_order(ns: np.ndarray) -> np.ndarray:
    """The fewest rows whose removal leaves the timestamps in order (ties: the earlier rows stay): a row that
    jumped ahead is one row out of order, not every row after it; a replayed hour is the replay."""
    out = np.zeros(len(ns), dtype=bool)
    if len(ns) < 2 or not (np.diff(ns) < 0).any():
        return out
    # longest non-decreasing subsequence of the reversed, negated times (patience sorting), so earlier rows win
    rev = -ns[::-1]
    tails: list[int] = []
    tail_at: list[int] = []
    prev = np.full(len(rev), -1)
    for i, v in enumerate(rev.tolist()):
        k = bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = v, i
        prev[i] = tail_at[k - 1] if k else -1
    out[:] = True
    i = tail_at[-1]
    while i != -1:
        out[len(ns) - 1 - i] = False
        i = prev[i]
    return out


def repeats(ns: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Rows repeating an earlier timestamp: of several rows at one time the first row in order is the one
    kept (a row out of order never displaces an in-order row at its time), else the first in the file."""
    order = np.lexsort((np.arange(len(ns)), back))  # in-order rows first, each group in file order
    out = np.zeros(len(ns), dtype=bool)
    out[order] = pd.Series(ns[order]).duplicated().to_numpy()
    return out


def _where(ts: pd.Series, back: np.ndarray) -> str:
    """The first row out of order and the in-order rows around it, for a message."""
    i = int(np.flatnonzero(back)[0])
    kept = np.flatnonzero(~back)
    around = [f"{ts.iloc[j]} (row {j + 1})" for j in (kept[kept < i][-1:].tolist() + kept[kept > i][:1].tolist())]
    return f"row {i + 1} at {ts.iloc[i]}, out of order between {' and '.join(around)}"


def _row_ranges(rows: list[int], most: int = 5) -> str:
    """1, 2, 3, 7 -> '1–3, 7' (the first ``most`` ranges, then how many more)."""
    ranges: list[list[int]] = []
    for r in rows:
        if ranges and r == ranges[-1][1] + 1:
            ranges[-1][1] = r
        else:
            ranges.append([r, r])
    text = ", ".join(f"{a}–{b}" if b > a else f"{a}" for a, b in ranges[:most])
    return text + (f" and {len(ranges) - most} more ranges" if len(ranges) > most else "")


def disorder_note(series: pd.DataFrame, origin: str) -> str | None:
    """What ``read_series`` did about rows that step back in time, for a warning (None: nothing to say)."""
    if series.attrs.get("dropped"):
        rows = series.attrs["dropped_rows"]
        return f"{origin}: dropped {len(rows)} row(s) out of time order (data rows {_row_ranges(rows)})"
    back = np.flatnonzero(series["out_of_order"].to_numpy()) if "out_of_order" in series else []
    if len(back) == 0:
        return None
    rows = (back + 1).tolist()
    repeated = int((series["out_of_order"] & series["duplicate"]).sum())
    return (
        f"{origin}: {len(rows)} row(s) out of time order (data rows {_row_ranges(rows)}; first: "
        f"{_where(series['timestamp'], series['out_of_order'].to_numpy())}): scored in time order"
        + (f"; {repeated} of them repeat the time of an in-order row, whose value is kept" if repeated else "")
        + " (--on-disorder drop leaves them out, error refuses the file)"
    )


def scoring_order(series: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows to score, in time order: the first occurrence of each timestamp; for every row, the position of
    its timestamp among them). Scores computed on the first map back to every row by the second."""
    ts = pd.DatetimeIndex(series["timestamp"]).asi8
    order = np.argsort(ts, kind="stable")
    first = ~series["duplicate"].to_numpy()
    scored = order[first[order]]
    return scored, np.searchsorted(ts[scored], ts)


def detect(
    values: np.ndarray,
    method: str = "ensemble",
    timestamps: pd.DatetimeIndex | None = None,
    direction: str = "both",
    tuning: Tuning = DEFAULT,
) -> tuple[np.ndarray, np.ndarray]:
    """Causal scores and flags of one series: a detector's channels through the record threshold.

    Scores are relative to the alert bar (above 1 = past it). ``timestamps`` (one per value) give the
    seasonal detector the time of day and the record its decay (without them: one minute per point).
    ``direction`` ``up`` scores only rises (a CPU dip or a memory drop after a restart is no incident),
    ``down`` only falls. ``tuning``: the constants chosen by leave-one-category-out (``anomaly.tuning``).
    """
    detector = make_detector(method, direction, tuning.min_rhythm)
    threshold = tuning.threshold()
    dev, z = detector.deviations(np.asarray(values, dtype="float64"), timestamps)
    scores = threshold.scores(dev, z, detector.spans, timestamps)
    return scores, threshold.flags(scores)


def detect_streaming(
    values: np.ndarray,
    method: str = "ensemble",
    timestamps: pd.DatetimeIndex | None = None,
    direction: str = "both",
    tuning: Tuning = DEFAULT,
) -> tuple[np.ndarray, np.ndarray]:
    """The same as ``detect``, one point at a time through ``update`` (what a live feed does)."""
    detector, threshold = make_detector(method, direction, tuning.min_rhythm), tuning.threshold()
    stamps = [None] * len(values) if timestamps is None else list(pd.DatetimeIndex(timestamps))
    spans = detector.spans
    out = [threshold.update(*detector.update(float(v), t), spans, t) for v, t in zip(values, stamps, strict=True)]
    return np.array([s for s, _ in out], dtype="float64"), np.array([f for _, f in out], dtype=bool)


def detect_frame(
    series: pd.DataFrame, method: str = "ensemble", direction: str = "both", tuning: Tuning = DEFAULT
) -> pd.DataFrame:
    """One output row per row of ``series`` (``read_series``), in its order, scored in time order; a repeated
    timestamp gets the first's score and no flag."""
    scored, position = scoring_order(series)
    scores, flags = detect(
        series["value"].to_numpy()[scored],
        method,
        pd.DatetimeIndex(series["timestamp"]).take(scored),
        direction,
        tuning,
    )
    first = ~series["duplicate"].to_numpy()
    return pd.DataFrame(
        {
            "timestamp": series["timestamp"].reset_index(drop=True),
            "value": series["value"].to_numpy(),
            "score": scores[position],
            "is_anomaly": np.where(first, flags[position], False).astype(int),
        }
    )
