"""The demo fleet as a live feed: its newest minutes written to the landing zone as hour files.

``write_hour_files`` writes a simulation the way a log shipper would: metric points to
``metrics/<name>/<YYYY-MM-DD>/<HH>.jsonl`` and gateway calls to ``calls/<name>/<YYYY-MM-DD>/<HH>.jsonl``,
appending, so each hourly ingestion reads only its own hour's files.

``feed`` writes the minutes since the last ones written. It replays the recorded fleet: the same hour one day
earlier (or two, up to a week) that no labelled incident touched, shifted forward by whole days, so hosts and
channels keep the levels and the daily rhythm of the seeded history they continue (incidents belong to that
history, where they are labelled). With no such hour recorded, it cuts the minutes out of simulated days
(``next_minutes``: the fleet's rhythm and noise, no incidents).
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


INCIDENT_MARGIN = pd.Timedelta("1h")  # an hour this close to a labelled incident is not replayed
MAX_DAYS_BACK = 7


def _incidents(landing: Path) -> pd.DataFrame:
    frames = [pd.read_csv(f) for f in sorted((landing / "incidents").glob("*.csv"))]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(
            {"start": pd.Series(dtype="datetime64[ns, UTC]"), "end": pd.Series(dtype="datetime64[ns, UTC]")}
        )
    inc = pd.concat(frames, ignore_index=True)
    return inc.assign(start=pd.to_datetime(inc["start"], utc=True), end=pd.to_datetime(inc["end"], utc=True))


def _hour_file(landing: Path, kind: str, name: str, hour: pd.Timestamp) -> Path:
    return landing / kind / name / f"{hour:%Y-%m-%d}" / f"{hour:%H}.jsonl"


def _clean_day_back(landing: Path, name: str, hour: pd.Timestamp, incidents: pd.DataFrame) -> int | None:
    """How many days back the same hour was recorded with no labelled incident near it (None: none in a week)."""
    for k in range(1, MAX_DAYS_BACK + 1):
        src = hour - pd.Timedelta(days=k)
        if not _hour_file(landing, "metrics", name, src).exists():
            continue
        near = (incidents["start"] < src + pd.Timedelta("1h") + INCIDENT_MARGIN) & (
            incidents["end"] > src - INCIDENT_MARGIN
        )
        if not near.any():
            return k
    return None


def _read(path: Path, column: str, shift: pd.Timedelta, a: pd.Timestamp, b: pd.Timestamp) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    ts = pd.to_datetime(frame[column], utc=True, format="ISO8601") + shift
    keep = (ts >= a) & (ts < b)
    return frame[keep].assign(**{column: ts[keep]})


def replayed_minutes(landing: Path, start: pd.Timestamp, end: pd.Timestamp, name: str = "demo"):
    """(points, calls) of ``[start, end)`` replayed from clean recorded hours, or None if an hour has none."""
    incidents = _incidents(landing)
    points, calls = [], []
    for hour in pd.date_range(start.floor("h"), (end - pd.Timedelta("1min")).floor("h"), freq="h"):
        k = _clean_day_back(landing, name, hour, incidents)
        if k is None:
            return None
        shift, a, b = pd.Timedelta(days=k), max(start, hour), min(end, hour + pd.Timedelta("1h"))
        src = hour - shift
        points.append(_read(_hour_file(landing, "metrics", name, src), "ts", shift, a, b))
        c = _read(_hour_file(landing, "calls", name, src), "timestamp", shift, a, b)
        if len(c):
            c = c.assign(request_id=c["request_id"].astype(str) + f"@{hour:%Y%m%d}")  # a new call, not the old one
        calls.append(c)
    return pd.concat(points, ignore_index=True), pd.concat(calls, ignore_index=True)


def feed(landing: Path, last_end: pd.Timestamp | None, now: pd.Timestamp, seed: int = 0, name: str = "demo"):
    """Append the demo fleet's minutes since ``last_end`` to the landing zone (see the module doc). Returns
    (the end written up to, points, calls, how) or None when no whole minute has passed."""
    end = now.floor("min")
    start = max(last_end if last_end is not None else now.floor("h"), end - MAX_CATCH_UP).floor("min")
    if end <= start:
        return None
    replay = replayed_minutes(landing, start, end, name)
    if replay is not None:
        points, calls = replay
        how = "replayed from the recorded fleet"
        if len(points):
            _append(
                points.assign(ts=points["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
                points["ts"],
                landing / "metrics" / name,
            )
        if len(calls):
            stamp = calls["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            _append(calls.assign(timestamp=stamp)[LOG_COLUMNS], calls["timestamp"], landing / "calls" / name)
    else:
        sim = next_minutes(start, now, seed)
        points, calls, how = sim.metrics, sim.calls, "simulated"
        write_hour_files(sim, landing, name)
    return end, len(points), len(calls), how
