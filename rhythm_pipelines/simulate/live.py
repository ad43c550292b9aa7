"""The demo fleet as a live feed: simulated minutes written to the landing zone as hour files.

``write_hour_files`` writes a simulation the way a log shipper would: metric points to
``metrics/<name>/<YYYY-MM-DD>/<HH>.jsonl`` and gateway calls to ``calls/<name>/<YYYY-MM-DD>/<HH>.jsonl``,
appending, so each hourly ingestion reads only its own hour's files. ``next_minutes`` cuts the whole minutes
since the last ones written out of simulated days (no incidents, so the feed is the fleet's rhythm and noise
only: incidents belong to the seeded history, where they are labelled).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import pandas as pd

from rhythm_pipelines.metrics.calls import LOG_COLUMNS
from rhythm_pipelines.simulate.fleet import SimConfig, Simulation, simulate

MAX_CATCH_UP = pd.Timedelta("1h")  # after a pause, the feed resumes with at most the last hour


def _append(frame: pd.DataFrame, ts: pd.Series, root: Path) -> list[Path]:
    written = []
    for hour, rows in frame.groupby(ts.dt.floor("h"), sort=True):
        path = root / f"{hour:%Y-%m-%d}" / f"{hour:%H}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = rows.to_json(orient="records", lines=True, double_precision=10)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        written.append(path)
    return written


def write_hour_files(sim: Simulation, landing: Path, name: str = "demo") -> list[Path]:
    """Append the simulation's points and calls to the landing zone's hour files of feed ``name``."""
    metrics = sim.metrics.drop(columns="tags", errors="ignore")
    points = metrics.assign(ts=metrics["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out = _append(points, metrics["ts"], landing / "metrics" / name)
    calls = sim.calls.assign(timestamp=sim.calls["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))[LOG_COLUMNS]
    out += _append(calls, sim.calls["ts"], landing / "calls" / name)
    return out


@functools.lru_cache(maxsize=3)
def _day(day: pd.Timestamp, seed: int) -> Simulation:
    """One whole day of the demo fleet without incidents: every day drawn from the same seed, so hosts and
    channels keep their levels from one day to the next (only the noise differs)."""
    sim = simulate(SimConfig(days=1, start=day, seed=seed, incidents_per_day=0.0, warmup_fraction=0.0))
    ids = f"live{day:%Y%m%d}-" + sim.calls["request_id"].str.split("-").str[-1]  # unique across days and the seed
    return replace(sim, calls=sim.calls.assign(request_id=ids))


def next_minutes(last_end: pd.Timestamp | None, now: pd.Timestamp, seed: int = 0) -> Simulation | None:
    """The demo fleet from ``last_end`` (else the start of the hour: where the seeded history ends; at most an
    hour back) to the current whole minute, cut from whole simulated days, or None."""
    end = now.floor("min")
    start = max(last_end if last_end is not None else now.floor("h"), end - MAX_CATCH_UP).floor("min")
    if end <= start:
        return None
    days = [_day(d, seed) for d in pd.date_range(start.floor("D"), (end - pd.Timedelta("1min")).floor("D"), freq="D")]
    metrics = pd.concat([d.metrics for d in days], ignore_index=True)
    calls = pd.concat([d.calls for d in days], ignore_index=True)
    first = days[0]
    return replace(
        first,
        metrics=metrics[(metrics["ts"] >= start) & (metrics["ts"] < end)].reset_index(drop=True),
        calls=calls[(calls["ts"] >= start) & (calls["ts"] < end)].reset_index(drop=True),
    )
