"""The demo fleet as a live feed: simulated minutes written to the landing zone as hour files.

``write_hour_files`` writes a simulation the way a log shipper would: metric points to
``metrics/<name>/<YYYY-MM-DD>/<HH>.jsonl`` and gateway calls to ``calls/<name>/<YYYY-MM-DD>/<HH>.jsonl``,
appending, so each hourly ingestion reads only its own hour's files. ``next_minutes`` simulates the whole
minutes since the last ones written (a fresh seed per chunk; no incidents, so the feed is the fleet's rhythm
and noise only: incidents belong to the seeded history, where they are labelled).
"""

from __future__ import annotations

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


def next_minutes(last_end: pd.Timestamp | None, now: pd.Timestamp, seed: int = 0) -> Simulation | None:
    """The demo fleet from ``last_end`` (at most an hour back) to the current whole minute, or None."""
    end = now.floor("min")
    start = max(last_end if last_end is not None else end - pd.Timedelta("1min"), end - MAX_CATCH_UP).floor("min")
    if end <= start:
        return None
    minutes = int((end - start) / pd.Timedelta("1min"))
    chunk_seed = (seed * 1_000_003 + int(start.timestamp() // 60)) % (2**32)
    return simulate(
        SimConfig(days=minutes / 1440, start=start, seed=chunk_seed, incidents_per_day=0.0, warmup_fraction=0.0)
    )
