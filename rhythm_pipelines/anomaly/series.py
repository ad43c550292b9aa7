"""One series in, scores and flags out: input validation and the detect pipeline used by the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.detectors import DETECTORS, make_detector
from rhythm_pipelines.anomaly.threshold import RecordThreshold
from rhythm_pipelines.metrics.schema import ValidationError

METHODS = tuple(DETECTORS)


def read_series(path: Path, timestamp_col: str = "timestamp", value_col: str = "value") -> pd.DataFrame:
    """A CSV series as ``timestamp`` (UTC), ``value`` and ``duplicate`` (a repeat of an earlier timestamp).

    Errors name the file, the data row (from 1) and the field: a missing column, an unparsable timestamp
    or value, or a timestamp earlier than the one before it. Repeated timestamps are allowed: the first
    occurrence is the one scored (documented rule: duplicates keep the first).
    """
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
    back = np.flatnonzero(np.diff(ns) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise ValidationError(
            origin, i + 1, timestamp_col, f"timestamps must not go back in time ({ts.iloc[i]} after {ts.iloc[i - 1]})"
        )
    return pd.DataFrame({"timestamp": ts, "value": values.astype("float64"), "duplicate": ts.duplicated().to_numpy()})


def detect(
    values: np.ndarray,
    method: str = "ensemble",
    timestamps: pd.DatetimeIndex | None = None,
    direction: str = "both",
) -> tuple[np.ndarray, np.ndarray]:
    """Causal scores and flags of one series: a detector's channels through the record threshold.

    Scores are relative to the alert bar (above 1 = past it). ``timestamps`` (one per value) let the
    seasonal detector find the time of day; the others ignore them. ``direction`` ``up`` scores only
    rises (a CPU dip or a memory drop after a restart is no incident), ``down`` only falls.
    """
    detector = make_detector(method, direction)
    threshold = RecordThreshold()
    scores = threshold.scores(*detector.deviations(np.asarray(values, dtype="float64"), timestamps), detector.spans)
    return scores, threshold.flags(scores)


def detect_streaming(
    values: np.ndarray,
    method: str = "ensemble",
    timestamps: pd.DatetimeIndex | None = None,
    direction: str = "both",
) -> tuple[np.ndarray, np.ndarray]:
    """The same as ``detect``, one point at a time through ``update`` (what a live feed does)."""
    detector, threshold = make_detector(method, direction), RecordThreshold()
    stamps = [None] * len(values) if timestamps is None else list(pd.DatetimeIndex(timestamps))
    spans = detector.spans
    out = [threshold.update(*detector.update(float(v), t), spans) for v, t in zip(values, stamps, strict=True)]
    return np.array([s for s, _ in out], dtype="float64"), np.array([f for _, f in out], dtype=bool)


def detect_frame(series: pd.DataFrame, method: str = "ensemble", direction: str = "both") -> pd.DataFrame:
    """One output row per input row, in input order; a repeated timestamp gets the first's score, no flag."""
    first = ~series["duplicate"].to_numpy()
    scores, flags = detect(
        series["value"].to_numpy()[first], method, pd.DatetimeIndex(series["timestamp"][first]), direction
    )
    position = np.cumsum(first) - 1  # each row's index among the first occurrences
    return pd.DataFrame(
        {
            "timestamp": series["timestamp"],
            "value": series["value"],
            "score": scores[position],
            "is_anomaly": np.where(first, flags[position], False).astype(int),
        }
    )
