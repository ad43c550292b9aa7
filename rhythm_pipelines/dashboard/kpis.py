"""The seed's KPIs, live, from the store alone: one definition for the page, ``/api/kpis`` and ``/metrics``.

Over a trailing window (24 h by default), with replayed (dry-run) healing left out as in the daily
``healing_report``:

- ``availability``: the share of the window with no open hard or critical incident;
- ``auto_recovery_rate``: incidents healing resolved over those it acted on;
- ``mttr_s`` (mean) and ``mttr_p95_s``: detection to resolution of the resolved ones;
- ``task_failure_rate``: failed over finished runs in the ``runs`` table (created in the window; healing runs
  left out);
- ``spend_today_usd``: priced calls since midnight UTC (the budgets' own spend records);
- ``open_incidents``: incidents of the window that ended unresolved or suppressed, or are being handled now,
  with nothing resolving them since;
- ``anomaly_precision`` / ``anomaly_recall``: anomaly events against labelled incidents, where labels exist
  (the demo's simulator writes them); ``forecast_mape``: served forecasts against the value that came.

Pure: a store in, plain values out (no Dagster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.report import HealingReport, day_report, open_incidents, replayed
from rhythm_pipelines.metrics.store import MetricsStore

WINDOW = pd.Timedelta(hours=24)
HEALING_JOB = "healing_job"  # its runs are the healer's, not the tasks whose failure rate is measured
FINISHED = ("SUCCESS", "FAILURE")
EVENT_GRACE = pd.Timedelta(minutes=30)  # an anomaly event this soon after a labelled incident still found it


@dataclass(frozen=True)
class Target:
    """A KPI's goal: ``good`` is the bar (``higher`` or ``lower`` is better); within ``amber`` of it, amber."""

    label: str
    unit: str  # "%": a share shown as a percentage; else the unit of the value
    good: float
    higher: bool
    amber: float
    digits: int = 1
    aim: str = ""

    def show(self, value: float) -> str:
        """The value for people: ``99.80 %``, ``33.0 s``."""
        return f"{100 * value:.{self.digits}f} %" if self.unit == "%" else f"{value:.{self.digits}f} {self.unit}"

    @property
    def goal(self) -> str:
        """The bar for people: ``≥ 99.5 %``, ``≤ 30 s`` (and what to aim for beyond it)."""
        level = f"{100 * self.good:g} %" if self.unit == "%" else f"{self.good:g} {self.unit}"
        bar = f"{'≥' if self.higher else '≤'} {level}"
        return f"{bar} ({self.aim})" if self.aim else bar

    def grade(self, value: float | None) -> str:
        """green, amber or red against the bar; grey without a value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "grey"
        if (value >= self.good) if self.higher else (value <= self.good):
            return "green"
        near = (value >= self.good - self.amber) if self.higher else (value <= self.good + self.amber)
        return "amber" if near else "red"


TARGETS: dict[str, Target] = {  # the seed's targets
    "availability": Target("availability", "%", 0.995, True, 0.005, digits=2),
    "auto_recovery_rate": Target("auto-recovery", "%", 0.90, True, 0.10, aim="aim 98 %"),
    "mttr_p95_s": Target("detection → resolution p95", "s", 30.0, False, 30.0),
    "task_failure_rate": Target("task failure rate", "%", 0.02, False, 0.03, digits=2),
    "anomaly_precision": Target("anomaly precision", "%", 0.90, True, 0.10),
    "anomaly_recall": Target("anomaly recall", "%", 0.90, True, 0.10),
    "forecast_mape": Target("forecast MAPE", "%", 0.15, False, 0.10),
    "budget_used": Target("daily budget used", "%", 1.0, False, 0.0, digits=0),
}


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def healing(store: MetricsStore, start: pd.Timestamp, end: pd.Timestamp) -> tuple[HealingReport, pd.DataFrame]:
    """The window's healing report (real healing only) and its log (an hour before, for runs that started
    earlier)."""
    log = store.read_table("healing_log", start - pd.Timedelta(hours=1), end)
    log = log[~replayed(log)]
    runs = finished_runs(store, start, end)
    return day_report(log, runs, start, end), log


def finished_runs(store: MetricsStore, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Finished non-healing runs created in ``[start, end)``: job, status, ts."""
    runs = store.read_table("runs", start, end)
    if runs.empty:
        return pd.DataFrame(columns=["ts", "job", "status"])
    return runs[(runs["job"] != HEALING_JOB) & runs["status"].isin(FINISHED)][["ts", "job", "status"]]


def open_now(report: HealingReport, log: pd.DataFrame) -> pd.DataFrame:
    """Open incidents with what healing did last on each (step, action, outcome, when)."""
    cols = ["event_id", "kind", "source", "level", "start", "status", "step", "action", "outcome", "last"]
    inc = open_incidents(report.events)
    if inc.empty:
        return pd.DataFrame(columns=cols)
    last = log.sort_values("ts", kind="stable").groupby("event_id").tail(1).set_index("event_id")
    out = inc.join(last[["step", "action", "outcome", "ts"]].rename(columns={"ts": "last"}), on="event_id")
    return out.sort_values("start", ascending=False, kind="stable")[cols].reset_index(drop=True)


def spend_today(store: MetricsStore, now: pd.Timestamp, catalog) -> pd.DataFrame:
    """Priced calls since midnight UTC: ts, channel, region, cost."""
    calls = store.read_table("channel_calls", now.floor("D"), now + pd.Timedelta(microseconds=1))
    if calls.empty:
        return pd.DataFrame({"ts": pd.Series([], dtype="datetime64[ns, UTC]"), "channel": [], "region": [], "cost": []})
    priced = catalog.price_calls(calls)
    return priced.assign(cost=pd.to_numeric(priced["cost"], errors="coerce").fillna(0.0))[
        ["ts", "channel", "region", "cost"]
    ]


def labelled_incidents(landing: Path | None) -> pd.DataFrame:
    """The simulator's labelled incidents under ``landing/incidents/*.csv`` (none: an empty frame)."""
    frames = [pd.read_csv(p) for p in sorted(Path(landing).glob("incidents/*.csv"))] if landing else []
    frames = [f for f in frames if {"source", "metric", "start", "end"} <= set(f.columns) and len(f)]
    if not frames:
        return pd.DataFrame(columns=["source", "metric", "start", "end"])
    out = pd.concat(frames, ignore_index=True)
    return out.assign(start=pd.to_datetime(out["start"], utc=True), end=pd.to_datetime(out["end"], utc=True))


def anomaly_accuracy(
    events: pd.DataFrame, labels: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, float | int | None]:
    """Anomaly events against the labelled incidents of ``[start, end)`` on the labelled series only: an
    incident is found when an event of its source and metric overlaps it (or starts within
    ``EVENT_GRACE`` after); an event that overlaps no incident is a false alarm."""
    empty = {"precision": None, "recall": None, "incidents": 0, "found": 0, "events": 0, "false_alarms": 0}
    if labels.empty:
        return empty
    lab = labels[(labels["end"] >= start) & (labels["start"] < end)]
    series = set(zip(labels["source"], labels["metric"], strict=True))
    ev = events[events["kind"] == "anomaly"] if len(events) else events
    if len(ev):
        ev = ev[[k in series for k in zip(ev["source"], ev["metric"], strict=True)]]
        ev = ev.assign(end=pd.to_datetime(ev["end"], utc=True).fillna(ev["ts"]))
        ev = ev[(ev["end"] >= start) & (ev["ts"] < end)]  # the events of the window
    hit_events = np.zeros(len(ev), dtype=bool)
    found = 0
    for inc in lab.itertuples(index=False):
        if not len(ev):
            break
        mine = (
            (ev["source"] == inc.source).to_numpy()
            & (ev["metric"] == inc.metric).to_numpy()
            & (ev["ts"] <= inc.end + EVENT_GRACE).to_numpy()
            & (ev["end"] >= inc.start).to_numpy()
        )
        found += bool(mine.any())
        hit_events |= mine
    n_ev = len(ev)
    return {
        "precision": float(hit_events.mean()) if n_ev else None,
        "recall": found / len(lab) if len(lab) else None,
        "incidents": len(lab),
        "found": found,
        "events": n_ev,
        "false_alarms": int(n_ev - hit_events.sum()),
    }


def forecast_error(store: MetricsStore, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, object]:
    """MAPE of the forecasts served for times in ``[start, end)`` against the value stored nearest each time
    (within 5 minutes); per horizon too. Values near zero (|actual| < 1e-9) are left out of the MAPE."""
    fc = store.read_table("forecasts", start, end)
    out: dict[str, object] = {"mape": None, "points": 0, "by_horizon": {}}
    if fc.empty:
        return out
    actual = store.read_metrics(
        start - pd.Timedelta(minutes=5),
        end + pd.Timedelta(minutes=5),
        sources=sorted(fc["source"].unique()),
        metrics=sorted(fc["metric"].unique()),
    )
    if actual.empty:
        return out
    fc = fc.sort_values("ts", kind="stable")
    actual = actual.sort_values("ts", kind="stable")[["ts", "source", "metric", "value"]]
    joined = pd.merge_asof(
        fc, actual, on="ts", by=["source", "metric"], direction="nearest", tolerance=pd.Timedelta(minutes=5)
    ).dropna(subset=["value", "mean"])
    joined = joined[joined["value"].abs() > 1e-9]
    if joined.empty:
        return out
    ape = (joined["mean"] - joined["value"]).abs() / joined["value"].abs()
    out["mape"] = float(ape.mean())
    out["points"] = len(joined)
    out["by_horizon"] = {str(h): float(v) for h, v in ape.groupby(joined["horizon"]).mean().items()}
    return out


def kpis(
    store: MetricsStore,
    now: pd.Timestamp,
    catalog=None,
    budgets=None,
    landing: Path | None = None,
    window: pd.Timedelta = WINDOW,
    ledger=None,
    spend: bool = True,
) -> dict[str, object]:
    """Every KPI over ``[now - window, now)``: the ``/api/kpis`` JSON (see the module docstring). With a
    ``ledger`` (:class:`~rhythm_pipelines.dashboard.spend.SpendLedger`), spend and budgets come from its hourly
    sums instead of re-reading the calls. ``spend`` False leaves today's spend and the budgets out (a report of
    a past period has no use for them: they are not the period's)."""
    from rhythm_pipelines.cost import budgets as budget_mod
    from rhythm_pipelines.cost import catalog as catalog_mod

    catalog = catalog if catalog is not None else catalog_mod.load()
    budgets = budgets if budgets is not None else budget_mod.load()
    start = now - window
    report, log = healing(store, start, now)
    summary = report.summary()
    if not spend:
        today, statuses = pd.DataFrame({"cost": pd.Series(dtype="float64")}), []
    elif ledger is None:
        today = spend_today(store, now, catalog)
        statuses, _ = budget_mod.check(budgets, store.read_table, catalog, now)
    else:
        first = min([budget_mod.period_bounds(b.period, now)[0] for b in budgets.budgets] + [now.floor("D")])
        since = min(first, now - pd.Timedelta(hours=budgets.projection_window_h))
        ledger.window_h = budgets.projection_window_h
        rows = ledger.spend(store, since, now)
        today = rows[rows["ts"] >= now.floor("D")]
        rests = dict.fromkeys((b.name for b in budgets.budgets), None)
        if budgets.projection == "forecast":  # refitted once an hour: the ledger keeps the hour's forecasts
            rests = budget_mod.forecast_rests(budgets, store.read_table, catalog, now, ledger.forecasts)
        window_h = budgets.projection_window_h
        statuses = [budget_mod.status(b, rows, now, window_h, rests[b.name]) for b in budgets.budgets]
    daily = [s for s in statuses if s.budget.period == "daily" and not s.budget.channel and not s.budget.region]
    events = store.read_table("events", start - pd.Timedelta(hours=6), now)
    accuracy = anomaly_accuracy(events, labelled_incidents(landing), start, now)
    forecast = forecast_error(store, start, now)
    opened = open_now(report, log)
    out: dict[str, object] = {
        "availability": _finite(summary["availability"]),
        "auto_recovery_rate": _finite(summary["auto_recovery_rate"]),
        "mttr_s": _finite(summary["mttr_s"]["mean"]),
        "mttr_p95_s": _finite(summary["mttr_s"]["p95"]),
        "task_failure_rate": _finite(summary["task_failure_rate"]),
        "spend_today_usd": round(float(today["cost"].sum()), 6) if spend else None,
        "open_incidents": len(opened),
        "anomaly_precision": accuracy["precision"],
        "anomaly_recall": accuracy["recall"],
        "forecast_mape": forecast["mape"],
        "budget_used": daily[0].used if daily else None,
        "incidents": len(report.events),
        "runs": summary["runs"],
        "failed_runs": summary["failed_runs"],
        "anomaly": accuracy,
        "forecast": forecast,
        "budgets": [
            {
                "name": s.budget.name,
                "period": s.budget.period,
                "scope": s.budget.scope,
                "amount": s.budget.amount,
                "spent": round(s.spent, 6),
                "projected": round(s.projected, 6),
                "used": _finite(s.used),
                "projected_used": _finite(s.projected_used),
                "period_start": s.start.isoformat(),
                "period_end": s.end.isoformat(),
            }
            for s in statuses
        ],
        "open": [
            {k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if pd.isna(v) else v)) for k, v in r.items()}
            for r in opened.to_dict("records")
        ],
        "window_start": start.isoformat(),
        "now": now.isoformat(),
    }
    out["grades"] = {k: t.grade(out.get(k)) for k, t in TARGETS.items()}  # type: ignore[arg-type]
    return out


def trend(store: MetricsStore, now: pd.Timestamp, hours: int = 24, catalog=None, ledger=None) -> pd.DataFrame:
    """Per hour of the last ``hours``: availability, auto-recovery, MTTR p95, task failure rate, spend (from the
    ``ledger``'s hourly sums when given)."""
    from rhythm_pipelines.cost import catalog as catalog_mod

    catalog = catalog if catalog is not None else catalog_mod.load()
    end = now.floor("h") + pd.Timedelta(hours=1)
    start = end - pd.Timedelta(hours=hours)
    report, _ = healing(store, start, now)
    runs = finished_runs(store, start, now)
    if ledger is not None:
        cost = ledger.spend(store, start, now)
    else:
        calls = store.read_table("channel_calls", start, now + pd.Timedelta(microseconds=1))
        cost = catalog.price_calls(calls) if len(calls) else pd.DataFrame(columns=["ts", "cost"])
    rows = []
    for h in pd.date_range(start, end - pd.Timedelta(hours=1), freq="h"):
        b = min(h + pd.Timedelta(hours=1), now)
        if b <= h:
            break
        ev = report.events
        mine = ev[(ev["start"] >= h) & (ev["start"] < b)] if len(ev) else ev
        hour = HealingReport(h, b, events=mine)
        whole = HealingReport(h, b, events=ev)  # availability: incidents that started earlier still count
        r = runs[(runs["ts"] >= h) & (runs["ts"] < b)]
        c = cost[(cost["ts"] >= h) & (cost["ts"] < b)] if len(cost) else cost
        rows.append(
            {
                "hour": h,
                "availability": whole.availability,
                "auto_recovery_rate": hour.auto_recovery_rate,
                "mttr_p95_s": hour.mttr_s["p95"],
                "task_failure_rate": float((r["status"] == "FAILURE").mean()) if len(r) else None,
                "spend_usd": float(pd.to_numeric(c["cost"], errors="coerce").fillna(0).sum()) if len(c) else 0.0,
                "incidents": len(mine),
            }
        )
    return pd.DataFrame(rows)
