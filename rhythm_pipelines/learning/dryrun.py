"""Healing decided in dry run on an evaluated fleet: the real engine and rails over one shared log, at a
simulated time. What a dry run decided counts for the cooldown and the rate limit as if it had been done; the
engine's verification is not waited for (the evaluation's world decides what recovered)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from rhythm_pipelines.healing.actions import DRY_RUN
from rhythm_pipelines.healing.engine import Healer, HealingResult
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.replay import HistoryProbe, SilentNotifier
from rhythm_pipelines.healing.safety import UNGUARDED_ACTIONS, Guard


class DryRun:
    def __init__(self, books, state_dir: Path, actuator_cls):
        self.policy = replace(books.safety, dry_run=True)
        playbooks = {k: replace(pb, verify_timeout_s=0.0) for k, pb in books.playbooks.items()}  # any kind's own
        self.books = replace(books, safety=self.policy, verify_wait_s=0.0, verify_timeout_s=0.0, playbooks=playbooks)
        self.fallbacks, self.state_dir, self.actuator_cls = books.fallbacks, state_dir, actuator_cls
        self.log: list[dict] = []
        self._now = pd.Timestamp.now(tz="UTC")
        self._probe = HistoryProbe(pd.DataFrame(columns=["ts", "source", "metric", "value"]), lambda: self._now)

    def heal(self, event: HealthEvent, at: pd.Timestamp, books=None) -> HealingResult:
        """``event`` handled at ``at`` under ``books`` (default: the evaluation's), its entries added to the log."""
        self._now = at
        past = pd.DataFrame(self.log) if self.log else pd.DataFrame()
        if len(past):
            past = past.assign(outcome=past["outcome"].replace(DRY_RUN, "done"))
        actuator = self.actuator_cls(self.policy, Guard(self.policy, past), "(evaluation)", self.state_dir,
                                     SilentNotifier(), fallbacks=self.fallbacks, now=lambda: self._now,
                                     evidence=lambda e: (False, "evaluation"))  # fmt: skip
        return Healer(books or self.books, actuator, self._probe, self.log.append, run_id=f"eval:{event.event_id}",
                      sleep=lambda _: None, now=lambda: self._now).heal(event)  # fmt: skip

    @staticmethod
    def applied(result: HealingResult) -> bool:
        """Whether a fix would have been done (an alert, a re-check, an undo or a reboot plan fixes nothing)."""
        return any(a.outcome == DRY_RUN and a.action not in UNGUARDED_ACTIONS for a in result.actions)
