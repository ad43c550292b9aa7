"""A day of healing in figures: events, actions, MTTR, auto-recovery, availability, task failure rate and
the top recurring causes, from the healing log and the run history (pure: no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.events import PREVENTION_KIND

SEVERE = ("hard", "critical")
REPLAY_PREFIX = "replay:"  # run ids of dry-run replays of history (healing/replay.py): not real healing
OPEN = ("unresolved", "suppressed")


def replayed(log: pd.DataFrame) -> pd.Series:
    """Which healing-log rows come from a dry-run replay of history."""
    if "run_id" not in log or log.empty:
        return pd.Series(False, index=log.index)
    return log["run_id"].astype(str).str.startswith(REPLAY_PREFIX)


def open_incidents(events: pd.DataFrame) -> pd.DataFrame:
    """Events (a report's ``events``) that ended unresolved or suppressed with no later event on the same kind
    and target resolved by healing since."""
    if events.empty:
        return events
    fixed = events[events["status"] == "resolved"].groupby(["kind", "source"])["start"].max().rename("fixed")
    out = events[events["status"].isin(OPEN)].join(fixed, on=["kind", "source"])
    return out[out["fixed"].isna() | (out["fixed"] < out["start"])].drop(columns="fixed")


@dataclass
class HealingReport:
    start: pd.Timestamp
    end: pd.Timestamp
    events: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per event handled in the window
    actions: pd.DataFrame = field(default_factory=pd.DataFrame)  # action x outcome counts
    runs: int = 0
    failed_runs: int = 0

    @property
    def resolved(self) -> pd.DataFrame:
        return self.events[self.events["status"] == "resolved"] if len(self.events) else self.events

    @property
    def mttr_s(self) -> dict[str, float | None]:
        s = self.resolved["resolve_s"].to_numpy(dtype="float64") if len(self.events) else np.array([])
        if not len(s):
            return {"mean": None, "p50": None, "p95": None}
        return {"mean": float(s.mean()), "p50": float(np.percentile(s, 50)), "p95": float(np.percentile(s, 95))}

    @property
    def auto_recovery_rate(self) -> float | None:
        """Resolved by healing over the events healing acted on (the ones over before any action, dry runs and
        reports about the product's own processes left out)."""
        handled = (
            self.events[~self.events["status"].isin(["already_resolved", "dry_run", "reported"])]
            if len(self.events)
            else self.events
        )
        return len(self.resolved) / len(handled) if len(handled) else None

    @property
    def availability(self) -> float:
        """The share of the window with no open hard or critical event (an unresolved one stays open)."""
        if not len(self.events):
            return 1.0
        severe = self.events[self.events["level"].isin(SEVERE)]
        spans = sorted(
            (max(a, self.start), min(b, self.end))
            for a, b in zip(severe["start"], pd.to_datetime(severe["closed"], utc=True).fillna(self.end), strict=True)
            if b > self.start and a < self.end
        )
        down, cur_a, cur_b = pd.Timedelta(0), None, None
        for a, b in spans:
            if cur_b is None or a > cur_b:
                if cur_b is not None:
                    down += cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        if cur_b is not None:
            down += cur_b - cur_a
        return 1.0 - down / (self.end - self.start)

    @property
    def task_failure_rate(self) -> float | None:
        return self.failed_runs / self.runs if self.runs else None

    def top_causes(self, n: int = 5) -> pd.DataFrame:
        if not len(self.events):
            return pd.DataFrame(columns=["kind", "source", "events", "resolved"])
        g = self.events.assign(ok=self.events["status"] == "resolved").groupby(["kind", "source"], sort=False)
        out = g.agg(events=("event_id", "size"), resolved=("ok", "sum")).reset_index()
        return out.sort_values(["events", "kind"], ascending=[False, True], kind="stable").head(n)

    def summary(self) -> dict[str, object]:
        return {
            "events": len(self.events),
            "actions": int(self.actions["count"].sum()) if len(self.actions) else 0,
            "mttr_s": self.mttr_s,
            "auto_recovery_rate": self.auto_recovery_rate,
            "availability": self.availability,
            "task_failure_rate": self.task_failure_rate,
            "runs": self.runs,
            "failed_runs": self.failed_runs,
        }


def day_report(log: pd.DataFrame, runs: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> HealingReport:
    """``log``: healing_log rows of the window (and a little before, for runs that started earlier);
    ``runs``: ``job``, ``status`` of the window's finished runs (healing runs excluded by the caller)."""
    report = HealingReport(start, end)
    report.runs = len(runs)
    report.failed_runs = int((runs["status"] == "FAILURE").sum()) if len(runs) else 0
    if log.empty:
        return report
    log = log.assign(ts=pd.to_datetime(log["ts"], utc=True)).sort_values("ts", kind="stable")
    # incidents only: a prevention (a learned precursor's fix ahead of a breach) is not one; its actions count
    incident = log["kind"] != PREVENTION_KIND
    detect = log[(log["step"] == "detect") & (log["ts"] >= start) & (log["ts"] < end) & incident]
    rows = []
    for event_id, d in detect.groupby("event_id", sort=False):
        mine = log[log["event_id"] == event_id]
        first = d["ts"].min()
        assessed = mine.loc[mine["step"] == "assess", "level"].tolist()  # the severity; escalation is the response
        resolve, cleared = mine[mine["step"] == "resolve"], mine[mine["step"] == "clear"]
        ends = mine[mine["step"].isin(["resolve", "alert"])]
        back = len(ends) and ends["step"].iloc[-1] == "alert"  # a later re-check found it back: not resolved
        status = (
            "reported"
            if (mine["outcome"] == "own_process").any()
            else "unresolved"
            if len(resolve) and back
            else "resolved"
            if len(resolve)
            else "already_resolved"
            if (mine["outcome"] == "already_resolved").any()
            else "suppressed"
            if ((mine["step"] == "decide") & (mine["outcome"] == "suppressed")).any()
            else "dry_run"
            if ((mine["step"] == "verify") & (mine["outcome"] == "dry_run")).any()
            else "unresolved"
        )
        closed = (
            resolve["ts"].min()
            if status == "resolved"
            else first
            if status == "already_resolved"
            else cleared["ts"].min()
            if len(cleared)
            else pd.NaT
        )
        rows.append(
            {
                "event_id": event_id,
                "kind": d["kind"].iloc[0],
                "source": d["source"].iloc[0],
                "start": first,
                "closed": closed,
                "level": assessed[0] if assessed else "",
                "status": status,
                "resolve_s": (closed - first).total_seconds() if status == "resolved" else np.nan,
                "replayed": bool(replayed(d).iloc[0]),
            }
        )
    report.events = pd.DataFrame(rows)
    acts = log[(log["step"] == "act") & (log["ts"] >= start) & (log["ts"] < end)]
    report.actions = (
        acts.groupby(["action", "outcome"]).size().rename("count").reset_index()
        if len(acts)
        else pd.DataFrame(columns=["action", "outcome", "count"])
    )
    return report
