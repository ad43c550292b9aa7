"""API/LLM gateway call logs: parsing with row-level validation, and per-minute channel metrics.

A call row has ``timestamp, channel, region, latency_ms, status (ok|error|timeout), tokens_in,
tokens_out`` and optionally ``cost_usd`` (derived later from a price catalog when absent) and
``request_id``. Bad rows are returned with the reason, never dropped silently. Each call gets a stable
``call_id`` (its ``request_id``, else a hash of its content and its occurrence in the file), so
re-ingesting a log never duplicates calls.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.landing import read_records
from rhythm_pipelines.metrics.schema import (
    MAX_RAW,
    RowChecks,
    RowError,
    ValidationError,
    in_window,
    jsonable,
    parse_utc,
)

STATUSES = ("ok", "error", "timeout")
# the largest value each numeric field may take (a day of latency; tokens and dollars of one call)
MAXIMA = {"latency_ms": 86_400_000.0, "tokens_in": 1e9, "tokens_out": 1e9, "cost_usd": 1e5}
REQUIRED = ("timestamp", "channel", "region", "latency_ms", "status")
CALL_FIELDS = ["channel", "region", "latency_ms", "status", "tokens_in", "tokens_out", "cost_usd"]
LOG_COLUMNS = ["timestamp", "request_id", *CALL_FIELDS, "task"]  # the gateway log format, as the simulator writes it
CALL_COLUMNS = ["ts", "call_id", *CALL_FIELDS, "task", "origin", "row"]  # rows of the channel_calls table
CONTENT = ["ts", *CALL_FIELDS, "task"]  # what makes two rows with one call_id the same call


def max_clock_skew() -> pd.Timedelta:
    """How far ahead of this machine's clock a row may be stamped (``$RHYTHM_MAX_CLOCK_SKEW_S``, 300 s)."""
    return pd.Timedelta(seconds=float(os.environ.get("RHYTHM_MAX_CLOCK_SKEW_S", "300")))


def channel_source(channel: str, region: str) -> str:
    """The metrics ``source`` of a channel in a region."""
    return f"{channel}@{region}"


def parse_calls(
    raw: pd.DataFrame,
    origin: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    now: pd.Timestamp | None = None,
    received: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate raw call rows (strings or values, with a ``_row`` column) into typed calls and rejects.

    A row stamped more than :func:`max_clock_skew` after ``now`` is rejected as in the future and filed
    under ``received`` (when its file was written), so exactly one window reports it."""
    if raw.empty:
        return pd.DataFrame(columns=CALL_COLUMNS), []
    if "ts" in raw.columns and "timestamp" not in raw.columns:
        raw = raw.rename(columns={"ts": "timestamp"})
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ValidationError(origin, None, missing[0], f"missing required column(s): {', '.join(missing)}")
    raw = raw.reset_index(drop=True)
    n = len(raw)
    checks = RowChecks(n)
    flag = checks.flag

    ts = parse_utc(raw["timestamp"])
    flag(ts.isna(), "timestamp", "not a parsable timestamp")
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    skew = max_clock_skew()
    future = (ts > now + skew).to_numpy(dtype=bool)
    flag(future, "timestamp", f"in the future: more than {skew.total_seconds():g} s ahead of this machine's clock")
    text = {}
    for col in ("channel", "region", "status", "task", "request_id"):
        if col not in raw.columns:  # `task` and `request_id` are optional
            text[col] = pd.Series([""] * n)
            continue
        values = checks.identifier(
            raw[col], col, tag=col in ("channel", "region"), optional=col in ("task", "request_id")
        )
        text[col] = pd.Series(values, dtype=object).where(raw[col].notna().to_numpy(), "").astype(str)
    status = text["status"].str.lower()
    flag(~status.isin(STATUSES) & (status != ""), "status", f"must be one of {', '.join(STATUSES)}")

    def number(col: str, required: bool, integer: bool) -> pd.Series:
        if col not in raw.columns:  # not logged: unknown, not zero
            return pd.Series(np.full(n, np.nan))
        return pd.Series(checks.number(raw[col], col, required, integer, minimum=0, maximum=MAXIMA[col]))

    latency = number("latency_ms", True, False)
    tokens_in = number("tokens_in", False, True)
    tokens_out = number("tokens_out", False, True)
    cost = number("cost_usd", False, False)

    records = raw.drop(columns="_row", errors="ignore")
    rows = raw["_row"].to_numpy() if "_row" in raw.columns else np.arange(1, n + 1)
    def time_of(i: int) -> pd.Timestamp | None:  # a future row is filed under when its file was written
        return (received or now) if future[i] else (None if pd.isna(ts.iloc[i]) else ts.iloc[i])

    errors = checks.errors(origin, records, rows, time_of)
    good = checks.good
    calls = pd.DataFrame(
        {
            "ts": ts[good].to_numpy(),
            "channel": text["channel"][good].to_numpy(),
            "region": text["region"][good].to_numpy(),
            "latency_ms": latency[good].to_numpy(),
            "status": status[good].to_numpy(),
            "tokens_in": tokens_in[good].round().astype("Int64").to_numpy(),  # missing stays missing
            "tokens_out": tokens_out[good].round().astype("Int64").to_numpy(),
            "cost_usd": cost[good].to_numpy(),
            "task": text["task"][good].replace("", None).to_numpy(),
            "origin": origin,
            "row": rows[good].astype("int64"),
        }
    )
    calls["ts"] = pd.to_datetime(calls["ts"], utc=True)
    request_ids = text["request_id"][good].to_numpy() if "request_id" in raw.columns else None
    calls.insert(1, "call_id", _call_ids(calls, request_ids))
    if start is not None and end is not None:
        calls = calls[(calls["ts"] >= start) & (calls["ts"] < end)].reset_index(drop=True)
        errors = in_window(errors, start, end)
    return calls, errors


def _call_ids(calls: pd.DataFrame, request_ids) -> list[str]:
    fields = [calls["ts"].astype("int64")] + [calls[c] for c in CALL_FIELDS]
    content = pd.Series(
        ["|".join(row) for row in zip(*(f.astype(str) for f in fields), strict=True)], index=calls.index
    )
    occurrence = content.groupby(content).cumcount().astype(str)
    pairs = zip(content, occurrence, strict=True)  # an id, not a secret: sha1 for stable ids across versions
    hashed = [hashlib.sha1(f"{c}#{o}".encode(), usedforsecurity=False).hexdigest()[:20] for c, o in pairs]
    if request_ids is None:
        return hashed
    return [str(r) if isinstance(r, str) and r.strip() else h for r, h in zip(request_ids, hashed, strict=True)]


def read_call_log(
    path: Path, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, list[RowError]]:
    """Calls of one JSONL or CSV gateway log (within ``[start, end)`` when given) and its bad rows."""
    raw, errors = read_records(path)
    received = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
    calls, bad = parse_calls(raw, str(path), start, end, received=received)
    if start is not None and end is not None:
        errors = in_window(errors, start, end)
    return calls, errors + bad


CHANNEL_METRICS = (
    "calls",
    "errors",
    "timeouts",
    "error_rate",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_max",
    "tokens_in",
    "tokens_out",
    "cost_usd",
)


def conflicting_calls(calls: pd.DataFrame, stored: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """Split ``calls`` into those that may be written and rejects: a ``call_id`` seen before (earlier in the
    window, or already stored) with other content is kept as first seen; the later row is rejected, naming
    both places. The same id with the same content is the same call (written again, idempotently)."""
    if calls.empty:
        return calls, []

    def equal(x, y) -> bool:
        return bool((pd.isna(x) and pd.isna(y)) or x == y)

    def same(a, b) -> bool:
        return all(equal(a[k], b[k]) for k in CONTENT)

    first: dict[str, dict] = {r["call_id"]: r for r in stored.to_dict("records")} if len(stored) else {}
    keep, errors = [], []
    for rec in calls.to_dict("records"):
        prior = first.get(rec["call_id"])
        if prior is None:
            first[rec["call_id"]] = rec
            keep.append(True)
            continue
        if same(prior, rec):
            keep.append(True)
            continue
        where = f"{prior.get('origin')}" + (f" row {int(prior['row'])}" if pd.notna(prior.get("row")) else "")
        diff = [k for k in CONTENT if not equal(prior[k], rec[k])]
        detail = ", ".join(f"{k} {prior[k]} vs {rec[k]}" for k in diff[:3])
        raw = json.dumps({k: jsonable(rec[k]) for k in CALL_COLUMNS}, default=str)[:MAX_RAW]
        reason = f"request_id {rec['call_id']!r} already seen at {where} with other content ({detail})"
        errors.append(RowError(str(rec["origin"]), int(rec["row"]), "request_id", reason, raw, rec["ts"]))
        keep.append(False)
    return calls[np.array(keep, dtype=bool)].reset_index(drop=True), errors


def channel_minute_metrics(calls: pd.DataFrame) -> pd.DataFrame:
    """Per channel@region and minute: calls, errors, timeouts, error rate, latency mean/p50/p95/max,
    tokens and cost (cost only where calls carry one), in the long metrics format."""
    if calls.empty:
        return pd.DataFrame(columns=["ts", "source", "metric", "value", "tags"])
    c = calls.assign(
        minute=calls["ts"].dt.floor("min"),
        source=calls["channel"] + "@" + calls["region"],
        is_error=(calls["status"] == "error").astype("int64"),
        is_timeout=(calls["status"] == "timeout").astype("int64"),
    )
    g = c.groupby(["source", "minute"], sort=True)
    lat = g["latency_ms"]
    wide = pd.DataFrame(
        {
            "calls": g.size(),
            "errors": g["is_error"].sum(),
            "timeouts": g["is_timeout"].sum(),
            "latency_ms_mean": lat.mean(),
            "latency_ms_p50": lat.quantile(0.5),
            "latency_ms_p95": lat.quantile(0.95),
            "latency_ms_max": lat.max(),
            "tokens_in": g["tokens_in"].sum(min_count=1),
            "tokens_out": g["tokens_out"].sum(min_count=1),
            "cost_usd": g["cost_usd"].sum(min_count=1),
        }
    )
    wide["error_rate"] = (wide["errors"] + wide["timeouts"]) / wide["calls"]
    long = wide.reset_index().melt(id_vars=["source", "minute"], var_name="metric", value_name="value")
    long = long.dropna(subset=["value"]).rename(columns={"minute": "ts"})
    long["value"] = long["value"].astype("float64")
    long["tags"] = None
    return long[["ts", "source", "metric", "value", "tags"]].sort_values(["source", "metric", "ts"], ignore_index=True)
