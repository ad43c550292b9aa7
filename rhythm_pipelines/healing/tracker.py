"""Episodes: a detection seen on tick after tick is one event until it has been clear for a while.

Detectors report what holds *now*; the tracker turns that into events with a stable start. Its state is a
small JSON-able dict, so a sensor keeps it in its cursor and a daemon restart picks up the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhythm_pipelines.healing.events import HealthEvent


@dataclass
class EpisodeTracker:
    """``observe`` returns the events that are new this tick; an episode closes after ``clear_after_s``
    without a detection (so a condition that blinks off for one tick is not a second incident)."""

    clear_after_s: float = 60.0
    state: dict[str, Any] = field(default_factory=dict)  # key -> {"start": iso, "last": iso}

    @staticmethod
    def key(event: HealthEvent) -> str:
        return f"{event.source}|{event.kind}"

    def observe(self, detections: list[HealthEvent], now: pd.Timestamp) -> list[HealthEvent]:
        now = pd.Timestamp(now)
        new: list[HealthEvent] = []
        for key in [
            k for k, v in self.state.items() if now - pd.Timestamp(v["last"]) > pd.Timedelta(seconds=self.clear_after_s)
        ]:
            del self.state[key]
        for event in detections:
            key = self.key(event)
            open_ = self.state.get(key)
            if open_ is None:
                self.state[key] = {"start": event.start.isoformat(), "last": now.isoformat()}
                new.append(event)
            else:
                open_["last"] = now.isoformat()
        return new

    def open_events(self) -> dict[str, pd.Timestamp]:
        """The open episodes: key -> start."""
        return {k: pd.Timestamp(v["start"]) for k, v in self.state.items()}
