"""The one long-format metrics schema and its validation at the boundary.

A metric point is ``ts`` (UTC, tz-aware), ``source`` (host, channel or region id), ``metric`` (name),
``value`` (float) and optional ``tags`` (a dict, stored as compact JSON). Everything that enters the
store passes :func:`validate_metrics`; inside the package the schema is trusted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["ts", "source", "metric", "value", "tags"]
CONTROL_CHARS = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"  # never in an identifier: they break line protocol and logs
MAX_ID_LEN = 256  # characters in a source, metric, channel, region, task or request id
# derived series: the anomaly score of metric M of a source is stored as metric "anomaly_score:M" of that source
SCORE_PREFIX = "anomaly_score:"


def is_derived(metric: str) -> bool:
    """A series computed from other series (an anomaly score), not a measurement."""
    return metric.startswith(SCORE_PREFIX)


class ValidationError(ValueError):
    """A bad input row: names the file (or origin), the 1-based data row and the field."""

    def __init__(self, origin: str, row: int | None, field: str | None, reason: str):
        self.origin, self.row, self.field, self.reason = origin, row, field, reason
        where = origin
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class RowError:
    """One rejected row, as recorded in quarantine."""

    origin: str
    row: int
    field: str
    reason: str
    raw: str
    ts: pd.Timestamp | None = None  # the row's own time, when it could be parsed

    def as_error(self) -> ValidationError:
        return ValidationError(self.origin, self.row, self.field, self.reason)


MAX_RAW = 2000  # characters of a rejected row kept in quarantine


class RowChecks:
    """The one row validator's bookkeeping: the first problem found per row (field, reason), then the
    rejected rows as :class:`RowError` with the row as a person numbers it and its raw content."""

    def __init__(self, n: int):
        self.n = n
        self.reasons: dict[int, tuple[str, str]] = {}

    def flag(self, mask: Any, field: str, reason: str) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.reasons.setdefault(int(i), (field, reason))

    def flag_row(self, i: int, field: str, reason: str) -> None:
        self.reasons.setdefault(int(i), (field, reason))

    def identifier(self, col: pd.Series, field: str, tag: bool = True, optional: bool = False) -> np.ndarray:
        """Check an id column (see :func:`identifiers`); returns its stripped text."""
        text, problems = identifiers(col, tag)
        for mask, reason in problems:
            if not (optional and reason == "empty"):
                self.flag(mask, field, reason)
        return text

    def number(
        self,
        col: pd.Series,
        field: str,
        required: bool = True,
        integer: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> np.ndarray:
        """Check a numeric column: a real number (not true/false), finite, within [minimum, maximum], whole if
        ``integer``; empty is allowed unless ``required``. Returns the values (NaN where unusable)."""
        raw = col.reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):  # fast path: numbers
            given, boolean = raw.notna().to_numpy(), np.zeros(len(raw), dtype=bool)
        else:  # text or mixed (CSV, JSONL): blanks are empty, true/false is no number
            given = (raw.notna() & (raw.astype(str).str.strip() != "")).to_numpy()
            boolean = raw.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        self.flag(boolean, field, "not a number (true/false)")
        if required:
            self.flag(~given, field, "empty")
        values = pd.to_numeric(raw.where(given & ~boolean), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        self.flag(given & ~boolean & np.isnan(values), field, "not a number")
        self.flag(np.isinf(values), field, "not finite")
        finite = np.where(np.isfinite(values), values, np.nan)
        with np.errstate(invalid="ignore"):
            if minimum is not None:
                self.flag(finite < minimum, field, "negative" if minimum == 0 else f"below {minimum:g}")
            if maximum is not None:
                self.flag(finite > maximum, field, f"out of range (above {maximum:g})")
            if integer:
                self.flag(np.isfinite(finite) & (finite != np.round(finite)), field, "not a whole number")
        return finite

    @property
    def good(self) -> np.ndarray:
        ok = np.ones(self.n, dtype=bool)
        ok[list(self.reasons)] = False
        return ok

    def errors(
        self, origin: str, records: pd.DataFrame, rows: np.ndarray, time_of: Callable[[int], pd.Timestamp | None]
    ) -> list[RowError]:
        """One RowError per rejected row: ``rows`` are the numbers a person finds, ``time_of(i)`` row i's time
        (asked of rejected rows only)."""
        out = []
        for i in sorted(self.reasons):
            field, reason = self.reasons[i]
            raw = json.dumps({k: jsonable(v) for k, v in records.iloc[i].items()}, default=str)[:MAX_RAW]
            out.append(RowError(origin, int(rows[i]), field, reason, raw, time_of(i)))
        return out


def tags_to_json(tags: Any) -> str | None:
    """Normalise a tags value (dict, JSON text, None/NaN) to compact, key-sorted JSON or None."""
    if tags is None or (isinstance(tags, float) and math.isnan(tags)) or tags == "" or tags == {}:
        return None
    if isinstance(tags, str):
        parsed = json.loads(tags)
        if not isinstance(parsed, dict):
            raise ValueError("tags must be a JSON object")
        tags = parsed
    if not isinstance(tags, Mapping):
        raise ValueError(f"tags must be a mapping, got {type(tags).__name__}")
    if not tags:
        return None
    return json.dumps({str(k): v for k, v in tags.items()}, sort_keys=True, separators=(",", ":"))


def parse_utc(values: pd.Series | Iterable[Any]) -> pd.Series:
    """Parse timestamps to tz-aware UTC (naive input is taken as UTC; numbers are epoch seconds);
    unparsable become NaT."""
    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s if getattr(s.dt, "tz", None) is not None else s.dt.tz_localize("UTC")
        return out.dt.tz_convert("UTC").dt.as_unit("ns")
    if pd.api.types.is_numeric_dtype(s):
        # numbers are epoch seconds
        return pd.to_datetime(s.astype("float64"), unit="s", utc=True, errors="coerce").dt.as_unit("ns")
    # text, or a mix (JSONL): numbers are epoch seconds, strings dates ("mixed": ISO 8601's fast path would
    # give naive strings the offset of their neighbours), and numeric strings that are no date epoch seconds
    is_text = s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    out = pd.to_datetime(s.where(is_text), utc=True, errors="coerce", format="mixed").dt.as_unit("ns")
    as_seconds = ~is_text | (out.isna().to_numpy() & s.notna().to_numpy())
    if as_seconds.any():
        seconds = pd.to_numeric(s.where(as_seconds), errors="coerce")
        epoch = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce").dt.as_unit("ns")
        out = out.where(~as_seconds, epoch)
    return out


def to_epoch_ns(ts: pd.Series) -> np.ndarray:
    """UTC timestamps to int64 epoch nanoseconds."""
    return ts.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()


def from_epoch_ns(values: np.ndarray | Iterable[int]) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(values, dtype="int64"), unit="ns", utc=True)


def ns_to_utc(values: pd.Series) -> pd.Series:
    """Nullable epoch-nanosecond integers to UTC timestamps (nulls become NaT), without float rounding."""
    missing = values.isna().to_numpy()
    ints = pd.Series(values, dtype=object).where(~missing, 0).astype("int64").to_numpy()
    out = pd.Series(from_epoch_ns(ints), index=values.index)
    return out.mask(missing)


def validate_metrics(frame: pd.DataFrame, origin: str = "<frame>", first_row: int = 1) -> pd.DataFrame:
    """Return a clean long-format frame or raise :class:`ValidationError` on the first bad row.

    Rows are numbered from ``first_row`` (data rows, 1-based, header excluded) so messages point at
    the line a person would open. Duplicate (source, metric, ts) keep the last value, as the store
    does on re-write.
    """
    clean, errors = split_metrics(frame, origin, first_row)
    if errors:
        raise errors[0].as_error()
    return clean


def split_metrics(
    frame: pd.DataFrame, origin: str = "<frame>", first_row: int = 1
) -> tuple[pd.DataFrame, list[RowError]]:
    """Split into (clean rows, rejected rows with reasons) instead of raising."""
    parsed, errors = _check(frame, origin, first_row)
    keep = np.ones(len(frame), dtype=bool)
    keep[[e.row - first_row for e in errors]] = False
    out = pd.DataFrame({k: v[keep] for k, v in parsed.items()})
    out["ts"] = out["ts"].dt.as_unit("ns")
    return out.drop_duplicates(["source", "metric", "ts"], keep="last").reset_index(drop=True), errors


def find_metric_errors(frame: pd.DataFrame, origin: str, first_row: int = 1) -> list[RowError]:
    """Every row-level problem of a metrics frame, one per bad row (the first field found)."""
    return _check(frame, origin, first_row)[1]


def identifiers(col: pd.Series, tag: bool = True) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """An id column's stripped text and its problems as (row mask, reason), checked once per distinct value:
    empty (missing or blank), not text (a number or ``true`` given for a name), longer than ``MAX_ID_LEN``,
    a control character; with ``tag`` (it becomes an InfluxDB tag) a trailing backslash too, which line protocol
    would read as escaping the separator after it."""
    codes, uniq = pd.factorize(col.reset_index(drop=True))
    raw = pd.Series(uniq, dtype=object)
    u = raw.astype(str).str.strip()
    if not len(u):
        return np.full(len(codes), "", dtype=object), [(np.ones(len(codes), bool), "empty")]
    missing, safe = codes < 0, np.maximum(codes, 0)

    def rows(per_value: pd.Series) -> np.ndarray:
        return ~missing & per_value.to_numpy(dtype=bool)[safe]

    def not_text(v: Any) -> bool:
        return isinstance(v, bool | float | np.bool_ | np.floating) or not isinstance(v, str | int | np.integer)

    text = u.to_numpy(dtype=object)[safe]
    problems = [
        (missing | (u == "").to_numpy()[safe], "empty"),
        (rows(raw.map(not_text)), "not text"),
        (rows(u.str.len() > MAX_ID_LEN), f"longer than {MAX_ID_LEN} characters"),
        (rows(u.str.contains(CONTROL_CHARS)), "contains a control character"),
    ]
    if tag:
        problems.append((rows(u.str.endswith("\\")), "ends with a backslash"))
    return text, problems


def _check(frame: pd.DataFrame, origin: str, first_row: int) -> tuple[dict[str, np.ndarray], list[RowError]]:
    """Parse every column once; return the parsed columns and one error per bad row."""
    missing = [c for c in ("ts", "source", "metric", "value") if c not in frame.columns]
    if missing:
        raise ValidationError(origin, None, missing[0], f"missing required column(s): {', '.join(missing)}")
    checks = RowChecks(len(frame))
    ts = parse_utc(frame["ts"].reset_index(drop=True))
    checks.flag(ts.isna().to_numpy(), "ts", "not a parsable timestamp")
    parsed: dict[str, Any] = {"ts": ts}
    for col in ("source", "metric"):
        parsed[col] = checks.identifier(frame[col], col)
    parsed["value"] = checks.number(frame["value"], "value")
    tags = np.full(len(frame), None, dtype=object)
    if "tags" in frame.columns:
        for i, t in enumerate(frame["tags"].tolist()):
            try:
                tags[i] = tags_to_json(t)
            except (ValueError, TypeError) as exc:
                checks.flag_row(i, "tags", f"invalid tags: {exc}")
    parsed["tags"] = tags
    rows = np.arange(first_row, first_row + len(frame))
    return parsed, checks.errors(origin, frame.reset_index(drop=True), rows, lambda i: _time(ts.iloc[i]))


def in_window(errors: list[RowError], start: pd.Timestamp, end: pd.Timestamp) -> list[RowError]:
    """Rejected rows that belong to ``[start, end)``: those timed inside it, and those with no usable time."""
    return [e for e in errors if e.ts is None or start <= e.ts < end]


def quarantine_frame(errors: list[RowError], kind: str) -> pd.DataFrame:
    """Rejected rows as rows of the ``quarantine`` table (time unknown is stored as the epoch)."""
    epoch = pd.Timestamp(0, tz="UTC")
    return pd.DataFrame(
        {
            "ts": [e.ts if e.ts is not None else epoch for e in errors],
            "kind": kind,
            "origin": [e.origin for e in errors],
            "row": [e.row for e in errors],
            "field": [e.field for e in errors],
            "reason": [e.reason for e in errors],
            "raw": [e.raw for e in errors],
        }
    )


def _time(t: Any) -> pd.Timestamp | None:
    return None if pd.isna(t) else t


def jsonable(v: Any) -> Any:
    """A cell as JSON wants it (NaN as null)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def metrics_frame(rows: Iterable[tuple[Any, str, str, float, Any]]) -> pd.DataFrame:
    """Build a validated frame from (ts, source, metric, value, tags) tuples."""
    return validate_metrics(pd.DataFrame(list(rows), columns=METRIC_COLUMNS), origin="<rows>")


def empty_metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
            "source": pd.Series([], dtype=object),
            "metric": pd.Series([], dtype=object),
            "value": pd.Series([], dtype="float64"),
            "tags": pd.Series([], dtype=object),
        }
    )
