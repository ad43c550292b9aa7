"""Record tables kept beside the metrics: channel calls, quarantine, rollups, runs, events.

Each table is declared once here; every store creates and writes it from this spec, so the SQLite
and InfluxDB stores stay in step. A table has a time column (``ts``, UTC) and a key: writing a row
whose key already exists replaces it, so re-running a partition never duplicates records.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rhythm_pipelines.metrics.schema import parse_utc

# column kinds: "ts" (UTC timestamp), "float", "int", "str"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    time: str = "ts"
    # columns an InfluxDB store indexes as tags: few distinct values, fixed for a key (never a per-row id,
    # never a status that changes); everything else is a field
    tags: tuple[str, ...] = ()

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns in spec order with spec types; missing optional columns become null."""
        missing_key = [c for c in self.key if c not in frame.columns]
        if missing_key:
            raise ValueError(f"table {self.name}: missing key column(s) {missing_key}")
        out = {}
        for col, kind in self.columns.items():
            values = frame[col] if col in frame.columns else pd.Series([None] * len(frame), dtype=object)
            values = values.reset_index(drop=True)
            if kind == "ts":
                out[col] = parse_utc(values)
            elif kind == "float":
                out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
            elif kind == "int":
                out[col] = pd.to_numeric(values, errors="coerce").astype("Int64")
            else:
                out[col] = values.astype(object).where(values.notna(), None)
        result = pd.DataFrame(out)
        return result.drop_duplicates(list(self.key), keep="last").reset_index(drop=True)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "channel_calls",
            {
                "ts": "ts",
                "call_id": "str",
                "channel": "str",
                "region": "str",
                "latency_ms": "float",
                "status": "str",
                "tokens_in": "int",
                "tokens_out": "int",
                "cost_usd": "float",
                "task": "str",
                "origin": "str",
                "row": "int",  # the line of `origin` it came from
            },
            key=("call_id",),
            tags=("channel", "region"),
        ),
        TableSpec(
            "quarantine",
            {
                "ts": "ts",
                "kind": "str",
                "origin": "str",
                "row": "int",
                "field": "str",
                "reason": "str",
                "raw": "str",
            },
            key=("origin", "row"),
            tags=("kind",),
        ),
        TableSpec(
            "rollups",
            {
                "ts": "ts",
                "source": "str",
                "metric": "str",
                "mean": "float",
                "p50": "float",
                "p95": "float",
                "max": "float",
                "count": "int",
            },
            key=("source", "metric", "ts"),
            tags=("source", "metric"),
        ),
        TableSpec(
            "runs",
            {
                "ts": "ts",
                "run_id": "str",
                "job": "str",
                "status": "str",
                "start": "ts",
                "end": "ts",
                "failure": "str",
                "partition": "str",
            },
            key=("run_id",),
            tags=("job",),
        ),
        TableSpec(
            "events",
            {
                "ts": "ts",
                "event_id": "str",
                "kind": "str",
                "source": "str",
                "metric": "str",
                "end": "ts",
                "severity": "str",
                "score": "float",
                "payload": "str",
            },
            key=("event_id",),
            tags=("kind",),
        ),
        TableSpec(  # every step of every healing run, including the decisions not to act
            "healing_log",
            {
                "ts": "ts",
                "entry_id": "str",
                "event_id": "str",
                "run_id": "str",
                "kind": "str",
                "source": "str",
                "level": "str",
                "step": "str",
                "action": "str",
                "target": "str",
                "params": "str",
                "outcome": "str",
                "detail": "str",
                "duration_ms": "float",
            },
            key=("entry_id",),
            tags=("kind",),
        ),
        TableSpec(  # follow-ups a playbook scheduled (ts = when due); the follow-up sensor launches them
            "healing_followups",
            {
                "ts": "ts",
                "followup_id": "str",
                "event_id": "str",
                "action": "str",
                "params": "str",
                "event": "str",
                "status": "str",
            },
            key=("followup_id",),
            tags=("action",),
        ),
        TableSpec(  # per day, channel and region (ts = the day): the channel_costs asset
            "channel_costs",
            {
                "ts": "ts",
                "channel": "str",
                "region": "str",
                "calls": "int",
                "tokens_in": "int",
                "tokens_out": "int",
                "cost_usd": "float",
                "cost_per_call": "float",
                "latency_p50_ms": "float",
                "latency_p95_ms": "float",
                "latency_p99_ms": "float",
                "error_rate": "float",
                "timeout_rate": "float",
                "priced_from_catalog": "int",
                "unpriced": "int",
                "cost_mismatches": "int",
            },
            key=("ts", "channel", "region"),
            tags=("channel", "region"),
        ),
        TableSpec(  # one routing plan per day it was fitted on (ts = the day)
            "routing_plans",
            {"ts": "ts", "plan_id": "str", "mode": "str", "shares": "str", "hourly": "str", "expected": "str"},
            key=("plan_id",),
        ),
        TableSpec(  # budget alerts raised (ts = when): one per budget, period and threshold
            "budget_alerts",
            {
                "ts": "ts",
                "alert_id": "str",
                "budget": "str",
                "period_key": "str",
                "threshold": "str",
                "amount": "float",
                "spent": "float",
                "projected": "float",
                "delivered": "int",
                "attempts": "int",
                "detail": "str",
            },
            key=("alert_id",),
            tags=("budget",),
        ),
        TableSpec(  # per day (ts) the rhythm it showed: per source, metric and hour of week (load_profiles)
            "load_profiles",
            {
                "ts": "ts",
                "source": "str",
                "metric": "str",
                "how": "int",
                "mean": "float",
                "p95": "float",
                "std": "float",
                "count": "int",
            },
            key=("ts", "source", "metric", "how"),
            tags=("source", "metric"),
        ),
        TableSpec(  # per day (ts), job and host: what its runs took and how they fared (load_profiles)
            "job_profiles",
            {
                "ts": "ts",
                "job": "str",
                "host": "str",
                "runs": "int",
                "successes": "int",
                "success_rate": "float",
                "duration_p50_s": "float",
                "duration_p95_s": "float",
                "cpu_added": "float",
                "mem_added": "float",
                "runs_busy": "int",
                "fail_rate_busy": "float",
                "runs_calm": "int",
                "fail_rate_calm": "float",
            },
            key=("ts", "job", "host"),
            tags=("job",),
        ),
        TableSpec(  # per day (ts) and series: how the previous night's model forecast it (forecast_accuracy)
            "forecast_accuracy",
            {
                "ts": "ts",
                "target": "str",
                "source": "str",
                "model": "str",
                "version": "int",
                "mae": "float",
                "mape": "float",
                "naive_mae": "float",
                "skill": "float",
            },
            key=("ts", "target", "source"),
            tags=("target",),
        ),
        TableSpec(  # failure patterns as failure_patterns learned them at ts (one snapshot per materialization)
            "failure_patterns",
            {
                "ts": "ts",
                "pattern_id": "str",
                "label": "str",
                "kind": "str",
                "root_cause": "str",
                "template": "str",
                "count": "int",
                "occurrences": "int",
                "first_seen": "ts",
                "last_seen": "ts",
                "recurrence_min": "float",
                "fix": "str",
                "fix_params": "str",
                "precursor": "str",
                "precursor_json": "str",
                "lead_min": "float",
                "confidence": "float",
                "sources": "str",
                "members": "str",
            },
            key=("ts", "pattern_id"),
            tags=("kind",),
        ),
        TableSpec(  # preventions: a learned precursor fired and healing applied (or held back) its pattern's fix
            "preventions",
            {
                "ts": "ts",
                "event_id": "str",
                "pattern_id": "str",
                "of_kind": "str",
                "root": "str",
                "horizon_min": "float",
                "status": "str",
                "run_id": "str",
                "trigger": "str",  # precursor: before the breach; incident: the fix at the root of an open incident
            },
            key=("event_id",),
            tags=("of_kind",),
        ),
        TableSpec(  # online A/B of a channel's policies: one row per request, its arm and outcome (learning/ab.py)
            "ab_requests",
            {
                "ts": "ts",
                "experiment": "str",
                "request_id": "str",
                "channel": "str",
                "default_policy": "str",
                "arm": "str",
                "in_test": "int",  # 1: sent while the sequential test ran; 0: warm-up, or after it stopped
                "min_n": "int",  # the experiment's: no verdict before this many requests in the test
                "alpha": "float",  # the experiment's level, prior sd, bin and tuned share (learning/ab.py)
                "tau": "float",
                "bin_s": "float",
                "share": "float",
                "ok": "int",
                "attempts": "int",
                "seconds": "float",
            },
            key=("experiment", "request_id"),
            tags=("channel", "arm"),
        ),
        TableSpec(  # forecasts served by the forecast assets: ts is the time forecast, issued when it was made
            "forecasts",
            {
                "ts": "ts",
                "issued": "ts",
                "source": "str",
                "metric": "str",
                "horizon": "str",
                "model": "str",
                "version": "int",
                "mean": "float",
                "lo_80": "float",
                "hi_80": "float",
                "lo_95": "float",
                "hi_95": "float",
            },
            key=("source", "metric", "issued", "ts"),
            tags=("source", "metric"),
        ),
    )
}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table '{name}'; known: {', '.join(sorted(TABLES))}") from None
