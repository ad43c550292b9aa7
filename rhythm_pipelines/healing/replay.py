"""Replay stored history through the health detectors and the healing engine, acting on nothing.

The demo fleet is simulated: its incidents lie in the past and on hosts that are not this machine, so the
health sensor (which looks at *now*) never sees them. ``replay`` walks the history tick by tick with the same
detectors and episode tracker, and hands each new event to the real :class:`~.engine.Healer` under a dry-run
policy with a notifier that sends nothing. The log it writes says what healing would have decided (the
actions it would take, or that nothing is allowed, or that the host is not this one); each event's end is
the tick its condition cleared in the history (a ``clear`` entry). Every entry's run id starts with
``replay:``, so a report can tell replayed decisions from real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.actions import Actuator
from rhythm_pipelines.healing.engine import Healer
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.playbooks import PlaybookSet
from rhythm_pipelines.healing.report import REPLAY_PREFIX
from rhythm_pipelines.healing.safety import Guard
from rhythm_pipelines.healing.tracker import EpisodeTracker
from rhythm_pipelines.healing.watch import HOST_METRICS, Observation, calls_lookback, detect_all, lookback


class SilentNotifier:
    """Alerts of a replay are logged, never sent."""

    def send(self, text: str, payload: dict[str, Any]) -> tuple[bool, str]:
        return True, "replay: not sent"


@dataclass
class HistoryProbe:
    """Readings at the replayed instant; whether an incident is over is left to the history itself (the
    ``clear`` entry), never judged by the engine during a replay."""

    points: pd.DataFrame
    at: Callable[[], pd.Timestamp]

    def readings(self, event: HealthEvent) -> dict[str, float]:
        t = self.at()
        out = {}
        for metric in ("cpu_percent", "mem_percent"):
            sel = self.points[(self.points["source"] == event.host) & (self.points["metric"] == metric)]
            sel = sel[pd.to_datetime(sel["ts"], utc=True) <= t]
            if len(sel):
                out[metric] = float(sel["value"].iloc[-1])
        return out

    def resolved(self, event: HealthEvent, since: pd.Timestamp) -> tuple[bool, str]:
        return False, "replay: the history decides when it clears"


@dataclass
class _Window:
    """Rows of a time-sorted frame in [a, b), by binary search."""

    frame: pd.DataFrame
    ts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.frame = self.frame.assign(ts=pd.to_datetime(self.frame["ts"], utc=True)).sort_values("ts", kind="stable")
        self.frame = self.frame.reset_index(drop=True)
        self.ts = self.frame["ts"].to_numpy(dtype="datetime64[ns]")

    def between(self, a: pd.Timestamp, b: pd.Timestamp) -> pd.DataFrame:
        lo, hi = np.searchsorted(self.ts, [np.datetime64(a.tz_convert(None)), np.datetime64(b.tz_convert(None))])
        return self.frame.iloc[lo:hi]


def ticks(start: pd.Timestamp, end: pd.Timestamp, step_s: float) -> Iterator[pd.Timestamp]:
    t = start
    while t < end:
        yield t
        t += pd.Timedelta(seconds=step_s)


def replay(
    books: PlaybookSet,
    points: pd.DataFrame,
    calls: pd.DataFrame,
    alerts: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    state_dir: Path,
    record: Callable[[dict[str, Any]], None],
    step_s: float = 60.0,
    clear_after_s: float = 600.0,
) -> dict[str, int]:
    """Walk ``[start, end)`` every ``step_s``: detect, track episodes, run each new event through the engine
    in dry run, and close it with a ``clear`` entry when its episode ends (clear for ``clear_after_s``: longer
    than the live sensor's, so a slow condition that blinks in minute steps stays one incident). Returns
    counts by event kind."""
    s = books.detectors
    policy = replace(books.safety, dry_run=True)
    books = replace(
        books,
        safety=policy,
        verify_wait_s=0.0,
        verify_timeout_s=0.0,
        playbooks={k: replace(pb, verify_timeout_s=None) for k, pb in books.playbooks.items()},
    )
    points = points[points["metric"].isin(HOST_METRICS)]
    pts, cls = _Window(points), _Window(calls)
    al = _Window(alerts) if len(alerts) else None
    now = {"t": start}
    tracker = EpisodeTracker(clear_after_s=clear_after_s)
    opened: dict[str, HealthEvent] = {}
    last_seen: dict[str, pd.Timestamp] = {}
    counts: dict[str, int] = {}
    probe = HistoryProbe(points, lambda: now["t"])

    def close(key: str, at: pd.Timestamp) -> None:
        event = opened.pop(key)
        record(
            {
                "ts": at,
                "entry_id": f"{REPLAY_PREFIX}{event.event_id}:clear",
                "event_id": event.event_id,
                "run_id": f"{REPLAY_PREFIX}{event.event_id}",
                "kind": event.kind,
                "source": event.source,
                "level": "",
                "step": "clear",
                "action": "",
                "target": "",
                "params": "{}",
                "outcome": "cleared",
                "detail": "the condition cleared in the replayed history",
                "duration_ms": 0.0,
            }
        )

    for t in ticks(start, end, step_s):
        now["t"] = t
        obs = Observation(
            "(replay)",
            t,
            pts.between(t - lookback(s), t + pd.Timedelta(seconds=1)),
            cls.between(t - calls_lookback(s), t + pd.Timedelta(seconds=1)),
            al.between(t - pd.Timedelta(seconds=s.anomaly_window_s), t + pd.Timedelta(seconds=1)) if al else alerts,
        )
        events = detect_all(obs, s, (), {})
        new = tracker.observe(events, t)
        for key in [k for k, e in opened.items() if tracker.state.get(k, {}).get("start") != e.start.isoformat()]:
            close(key, last_seen[key] + pd.Timedelta(seconds=step_s))  # over (a new one may open under its key)
        for event in events:
            last_seen[EpisodeTracker.key(event)] = t
        for event in new:
            key = EpisodeTracker.key(event)
            counts[event.kind] = counts.get(event.kind, 0) + 1
            opened[key] = event
            actuator = Actuator(
                policy, Guard(policy), "(replay)", state_dir, SilentNotifier(), evidence=lambda e: (False, "replay")
            )
            Healer(
                books, actuator, probe, record, run_id=f"{REPLAY_PREFIX}{event.event_id}", sleep=lambda _: None,
                now=lambda: now["t"],
            ).heal(event)  # fmt: skip
    for key in list(opened):
        close(key, min(end, last_seen[key] + pd.Timedelta(seconds=step_s)))
    return counts
