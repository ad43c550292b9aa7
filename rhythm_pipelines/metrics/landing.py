"""The landing zone: files that raw ingestion reads, one hourly window at a time.

Layout under the landing root (``$RHYTHM_HOME/landing`` by default)::

    metrics/**/*.csv|*.jsonl   long-format metric files (ts, source, metric, value[, tags]):
                               simulator output, exporters, and the host sampler's spool,
                               metrics/host/<host>/<YYYY-MM-DD>/<HH>.jsonl
    calls/**/*.csv|*.jsonl     API/LLM gateway call logs (see ``calls.py``)

Files named for an hour (``.../YYYY-MM-DD/HH.jsonl``) are read only for that hour; any other file is
read whole and filtered to the window, so a backfill of any range of hours yields the rows the live
path wrote.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.schema import RowError, ValidationError, in_window, parse_utc, split_metrics

DATA_SUFFIXES = (".csv", ".jsonl")
WRITING_GRACE_S = 60.0  # a JSONL file changed this recently may end in a line still being appended
_HOUR_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})[/\\](\d{2})\.jsonl$")


def spool_path(root: Path, host: str, ts: pd.Timestamp) -> Path:
    """Where the host sampler appends a sample taken at ``ts`` (``root`` is the landing root)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
    return root / "metrics" / "host" / safe / ts.strftime("%Y-%m-%d") / f"{ts.strftime('%H')}.jsonl"


def append_spool(root: Path, host: str, frame: pd.DataFrame) -> Path | None:
    """Append validated points to the host spool, one JSON object a line, grouped by hour file."""
    last = None
    for hour, rows in frame.groupby(frame["ts"].dt.floor("h"), sort=True):
        path = spool_path(root, host, hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(
                {
                    "ts": r.ts.isoformat(),
                    "source": r.source,
                    "metric": r.metric,
                    "value": r.value,
                    "tags": json.loads(r.tags) if r.tags else None,
                },
                separators=(",", ":"),
            )
            for r in rows.itertuples(index=False)
        ]
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        last = path
    return last


def closed_hours(previous: float | None, now: pd.Timestamp, limit: int = 24) -> list[pd.Timestamp]:
    """Starts of the hours that closed between a previous sample (epoch s) and ``now``, the last ``limit``."""
    if previous is None:
        return []
    current = now.floor("h")
    first = max(pd.Timestamp(previous, unit="s", tz="UTC").floor("h"), current - pd.Timedelta(hours=limit))
    return list(pd.date_range(first, current - pd.Timedelta("1h"), freq="h")) if first < current else []


def data_files(root: Path, start: pd.Timestamp, end: pd.Timestamp) -> Iterator[Path]:
    """Data files under ``root`` that may hold rows in ``[start, end)``, in a stable order."""
    if not root.exists():
        return
    for path in sorted(p for p in root.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file()):
        hour = _file_hour(path)
        if hour is not None and not (start <= hour < end):
            continue
        yield path


def read_records(path: Path) -> tuple[pd.DataFrame, list[RowError]]:
    """A CSV or JSONL file as a frame of strings/values, plus rows that are not even parsable.

    Rows are numbered as a person finds them: JSONL by line, CSV by line after the header (line − 1),
    blank lines counted. The frame keeps that number in a ``_row`` column.
    """
    origin = str(path)
    if path.suffix == ".csv":
        return _read_csv(path)
    records, errors = [], []
    being_written = time.time() - path.stat().st_mtime < WRITING_GRACE_S
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=str)  # NaN/Infinity stay visible, to be refused by field
                if not isinstance(obj, dict):
                    raise ValueError("a line must be a JSON object")
            except ValueError as exc:
                if being_written and not line.endswith("\n"):
                    break  # a writer is still appending this last line: it is read on the next run
                errors.append(RowError(origin, i, "<line>", f"invalid JSON: {exc}", line.strip()[:500]))
                continue
            obj["_row"] = i
            records.append(obj)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame({"_row": []}), errors


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[RowError]]:
    """CSV rows by the header's columns; a row with another number of fields is rejected, not fatal."""
    origin, records, errors = str(path), [], []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            for fields in reader:
                row = reader.line_num - 1
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    reason = f"expected {len(header)} fields ({', '.join(header)}), got {len(fields)}"
                    errors.append(RowError(origin, row, "<row>", reason, ",".join(fields)[:500]))
                    continue
                records.append([*fields, row])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(origin, None, None, f"not a readable CSV file: {exc}") from exc
    frame = pd.DataFrame(records, columns=[*header, "_row"])
    values = frame.columns[:-1]
    frame[values] = frame[values].mask(frame[values] == "")  # empty fields are missing values
    return frame, errors


def read_metric_file(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, list[RowError]]:
    """Valid metric rows of one file within ``[start, end)`` and the file's bad rows.

    Missing required columns fail the whole file with a :class:`ValidationError`. Bad rows are returned
    for quarantine: those with a timestamp outside the window are left to that window's run.
    """
    raw, errors = read_records(path)
    if raw.empty:
        return split_metrics(pd.DataFrame(columns=["ts", "source", "metric", "value"]), str(path))[0], errors
    if "timestamp" in raw.columns and "ts" not in raw.columns:
        raw = raw.rename(columns={"timestamp": "ts"})
    rows = raw["_row"].to_numpy()
    stray: list[RowError] = []
    hour = _file_hour(path)
    if hour is not None:  # a file named for an hour holds that hour only: anything else is rejected
        ts = parse_utc(raw["ts"].reset_index(drop=True))
        out = (ts.notna() & ((ts < hour) | (ts >= hour + pd.Timedelta("1h")))).to_numpy()
        reason = f"outside the hour the file is named for ({hour:%Y-%m-%d %H}:00)"
        stray = [
            RowError(str(path), int(rows[i]), "ts", reason, raw.iloc[i].drop("_row").to_json(), hour)
            for i in np.flatnonzero(out)
        ]
        raw, rows = raw[~out], rows[~out]
    good, bad = _split_by_row(raw.drop(columns="_row"), str(path), rows)
    bad += stray
    inside = (good["ts"] >= start) & (good["ts"] < end)
    return good[inside].reset_index(drop=True), errors + in_window(bad, start, end)


def _file_hour(path: Path) -> pd.Timestamp | None:
    m = _HOUR_FILE.search(path.as_posix())
    return pd.Timestamp(f"{m.group(1)} {m.group(2)}:00", tz="UTC") if m else None


def _split_by_row(frame: pd.DataFrame, origin: str, rows) -> tuple[pd.DataFrame, list[RowError]]:
    # split_metrics numbers rows consecutively; map them back to the file's own row numbers
    good, bad = split_metrics(frame.reset_index(drop=True), origin, first_row=0)
    return good, [replace(e, row=int(rows[e.row])) for e in bad]
