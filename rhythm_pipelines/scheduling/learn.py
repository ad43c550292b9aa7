"""What one day taught about the fleet's rhythm and its jobs (the ``load_profiles`` asset's domain logic).

- ``day_profile``: per host and hour of week, CPU and memory (from the host points), runs started (from the
  run history), and per ``channel@region`` latency and failure rate (from the calls): mean, p95, spread
  and count, the rows ``profiles.merge_profiles`` pools over days;
- ``job_profile``: per Dagster job, its runs, success rate, duration, what it adds to its host's CPU and
  memory while it runs (the host's mean during the run minus its mean in the ``BEFORE`` before it started:
  the run's own footprint, measured the same way for any job), and whether it fails more under load (its
  failure rate when the host's CPU was at least ``BUSY`` at the start, beside the rate below).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.scheduling.profiles import PROFILE_COLUMNS, load_profile
from rhythm_pipelines.scheduling.tags import Cost

HOST_METRICS = ("cpu_percent", "mem_percent")
BEFORE = pd.Timedelta(minutes=30)
BUSY = 70.0  # host CPU percent at a run's start that counts as "under load"
FAILED = ("FAILURE", "CANCELED")
JOB_COLUMNS = [
    "job", "host", "runs", "successes", "success_rate", "duration_p50_s", "duration_p95_s", "cpu_added",
    "mem_added", "runs_busy", "fail_rate_busy", "runs_calm", "fail_rate_calm",
]  # fmt: skip


def day_profile(points: pd.DataFrame, calls: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Profile rows (``profiles.PROFILE_COLUMNS``) of one day's host points (ts, source, metric, value), calls
    (ts, channel, region, latency_ms, status) and runs (start, job, host); a process's points
    (``host/proc/PID``) are left out."""
    parts = []
    hosts = points[points["metric"].isin(HOST_METRICS) & ~points["source"].str.contains("/", regex=False)]
    if len(hosts):
        parts.append(load_profile(hosts[["ts", "source", "metric", "value"]]))
    if len(calls):
        c = calls.assign(source=calls["channel"].astype(str) + "@" + calls["region"].astype(str))
        latency = c[["ts", "source"]].assign(metric="latency_ms", value=pd.to_numeric(c["latency_ms"], errors="coerce"))
        failed = c[["ts", "source"]].assign(metric="failure_rate", value=(c["status"].astype(str) != "ok") * 1.0)
        parts.append(load_profile(pd.concat([latency.dropna(subset=["value"]), failed], ignore_index=True)))
    if len(runs):
        started = runs.dropna(subset=["start"])
        if len(started):
            hours = pd.DatetimeIndex(pd.to_datetime(started["start"], utc=True)).floor("h")
            per_hour = pd.DataFrame({"ts": hours, "source": started["host"].to_numpy()}).value_counts()
            counts = per_hour.rename("value").reset_index().assign(metric="runs_started")
            parts.append(load_profile(counts[["ts", "source", "metric", "value"]]))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True)[PROFILE_COLUMNS] if parts else pd.DataFrame(columns=PROFILE_COLUMNS)


def without_runs(points: pd.DataFrame, runs: pd.DataFrame, jobs: pd.DataFrame) -> pd.DataFrame:
    """The host points with what the ``runs`` (job, host, start, end) measurably added taken out, per
    ``jobs`` (``job_profile`` rows: cpu_added, mem_added): the planner adds a planned run's cost itself, so the
    rhythm it plans against must not hold it twice."""
    if runs.empty or jobs.empty:
        return points
    out = points.copy()
    added = jobs.set_index(["job", "host"])[["cpu_added", "mem_added"]]
    for r in runs.dropna(subset=["start", "end"]).itertuples(index=False):
        if (r.job, r.host) not in added.index:
            continue
        for metric, col in (("cpu_percent", "cpu_added"), ("mem_percent", "mem_added")):
            v = added.at[(r.job, r.host), col]
            if pd.isna(v) or v <= 0:
                continue
            mask = (out["source"] == r.host) & (out["metric"] == metric) & (out["ts"] >= r.start) & (out["ts"] < r.end)
            out.loc[mask, "value"] = (out.loc[mask, "value"] - float(v)).clip(lower=0.0)
    return out


def _mean_between(series: pd.Series, a: pd.Timestamp, b: pd.Timestamp) -> float:
    window = series[(series.index >= a) & (series.index < b)]
    return float(window.mean()) if len(window) else float("nan")


def job_profile(runs: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """One row per (job, host) of ``runs`` (job, host, status, start, end) with the host's points around
    them (ts, source, metric, value; the hours before the first run included): see the module docstring."""
    if runs.empty:
        return pd.DataFrame(columns=JOB_COLUMNS)
    series = {
        (src, metric): g.set_index("ts")["value"].sort_index()
        for (src, metric), g in points[points["metric"].isin(HOST_METRICS)].groupby(["source", "metric"])
    }
    rows = []
    for (job, host), g in runs.dropna(subset=["start"]).groupby(["job", "host"], sort=True):
        start = pd.to_datetime(g["start"], utc=True)
        end = pd.to_datetime(g["end"], utc=True)
        failed = g["status"].isin(FAILED).to_numpy()
        finished = end.notna().to_numpy()
        seconds = (end - start).dt.total_seconds()[finished]
        added = {m: [] for m in HOST_METRICS}
        busy = np.zeros(len(g), dtype=bool)
        for i, (a, b) in enumerate(zip(start, end, strict=True)):
            for m in HOST_METRICS:
                s = series.get((host, m))
                if s is None:
                    continue
                before = _mean_between(s, a - BEFORE, a)
                if m == "cpu_percent":
                    busy[i] = before >= BUSY
                if pd.notna(b):
                    added[m].append(_mean_between(s, a, max(b, a + pd.Timedelta(seconds=1))) - before)

        def rate(mask: np.ndarray, failed: np.ndarray = failed) -> float | None:
            return float(failed[mask].mean()) if mask.any() else None

        def median(values: list[float]) -> float | None:
            v = [x for x in values if np.isfinite(x)]
            return round(max(float(np.median(v)), 0.0), 2) if v else None

        rows.append({
            "job": job, "host": host, "runs": len(g), "successes": int((g["status"] == "SUCCESS").sum()),
            "success_rate": float((g["status"] == "SUCCESS").mean()),
            "duration_p50_s": float(seconds.median()) if len(seconds) else None,
            "duration_p95_s": float(seconds.quantile(0.95)) if len(seconds) else None,
            "cpu_added": median(added["cpu_percent"]), "mem_added": median(added["mem_percent"]),
            "runs_busy": int(busy.sum()), "fail_rate_busy": rate(busy),
            "runs_calm": int((~busy).sum()), "fail_rate_calm": rate(~busy),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def pooled_jobs(days: pd.DataFrame) -> pd.DataFrame:
    """Many days' ``job_profile`` rows as one per (job, host): counts add, rates and figures weighted by runs."""
    if days.empty:
        return pd.DataFrame(columns=JOB_COLUMNS)
    rows = []
    for (job, host), g in days.groupby(["job", "host"], sort=True):
        n = g["runs"].astype(float)

        def weighted(col: str, weights: pd.Series = n, g: pd.DataFrame = g) -> float | None:
            v = pd.to_numeric(g[col], errors="coerce")
            ok = v.notna() & (weights > 0)
            return float(np.average(v[ok], weights=weights[ok])) if ok.any() else None

        rows.append({
            "job": job, "host": host, "runs": int(n.sum()), "successes": int(g["successes"].sum()),
            "success_rate": float(g["successes"].sum() / n.sum()) if n.sum() else None,
            "duration_p50_s": weighted("duration_p50_s"), "duration_p95_s": pd.to_numeric(g["duration_p95_s"]).max(),
            "cpu_added": weighted("cpu_added"), "mem_added": weighted("mem_added"),
            "runs_busy": int(g["runs_busy"].sum()), "fail_rate_busy": weighted("fail_rate_busy", g["runs_busy"]),
            "runs_calm": int(g["runs_calm"].sum()), "fail_rate_calm": weighted("fail_rate_calm", g["runs_calm"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def fails_under_load(row: pd.Series, min_runs: int = 3, gap: float = 0.2) -> bool:
    """Does the job fail more when its host is busy? (at least ``min_runs`` each way, ``gap`` apart)."""
    if row["runs_busy"] < min_runs or row["runs_calm"] < min_runs:
        return False
    return (row["fail_rate_busy"] or 0.0) - (row["fail_rate_calm"] or 0.0) >= gap


def learned_cost(row: pd.Series) -> Cost:
    """What the job's history says a run costs its host (None where it has not measured it)."""

    def value(col: str) -> float | None:
        v = row.get(col)
        return None if v is None or pd.isna(v) else float(v)

    duration = value("duration_p95_s")
    return Cost(value("cpu_added"), value("mem_added"), pd.Timedelta(seconds=duration) if duration else None)


def week_heatmap(profile: pd.DataFrame, metric: str = "cpu_percent") -> pd.DataFrame:
    """Sources x 168 hours of the week, the profile's mean (NaN where it has not looked)."""
    p = profile[profile["metric"] == metric]
    if p.empty:
        return pd.DataFrame(columns=range(168))
    return p.pivot_table(index="source", columns="how", values="mean").reindex(columns=range(168))


@dataclass
class Day:
    """What ``learn_day`` learned: the profile rows, the job rows, and the figures the asset shows."""

    profile: pd.DataFrame
    jobs: pd.DataFrame

    def heaviest_hours(self, n: int = 10) -> pd.DataFrame:
        cpu = self.profile[self.profile["metric"] == "cpu_percent"]
        top = cpu.sort_values("mean", ascending=False).head(n)[["source", "how", "mean", "p95", "std", "count"]]
        return top.assign(hour=[f"{'MTWTFSS'[h // 24]} {h % 24:02d}:00" for h in top["how"]])

    def jobs_table(self) -> pd.DataFrame:
        if self.jobs.empty:
            return self.jobs
        flagged = self.jobs.assign(fails_more_under_load=[fails_under_load(r) for _, r in self.jobs.iterrows()])
        return flagged.sort_values("cpu_added", ascending=False)


def learn_day(
    points: pd.DataFrame,
    calls: pd.DataFrame,
    runs: pd.DataFrame,
    day_start: pd.Timestamp,
    planned_hosts: dict[str, str],
    default_host: str,
) -> Day:
    """One day's profile and job rows from its host ``points`` (from ``BEFORE`` ahead of ``day_start``: the
    first runs' baselines), ``calls`` and ``runs`` (job, status, start, end). A run's host is its planned job's
    (``planned_hosts``: job -> host), else ``default_host``; what the planned runs measurably add is taken out
    of the rhythm (the planner adds their cost itself)."""
    if len(runs):
        runs = runs.assign(host=runs["job"].map(planned_hosts).fillna(default_host))
    jobs = job_profile(runs, points)
    planned = runs[runs["job"].isin(planned_hosts)] if len(runs) else runs
    day = without_runs(points[points["ts"] >= day_start], planned, jobs)
    return Day(day_profile(day, calls, runs), jobs)
