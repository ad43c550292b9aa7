"""Safety rails: what healing may touch, and when it must hold back.

- **Allowlists**: processes may be signalled only when they match a :class:`ProcessRule` (name and/or
  command line regex, and owner); files are removed only under configured cache dirs and temp roots.
  Both are empty by default: out of the box healing can alert, pause work and reroute, but never kill
  or delete. PID 1, this process and its ancestors (the run worker, the daemon) are never touched.
- **Dry run**: every decision is made and logged, nothing is done.
- **Cooldown** per target, **rate limit** over all actions per hour, **flapping** suppression when one
  target raises too many events in a window. All read the healing log, so they hold across runs and
  daemon restarts.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

DONE = "done"


@dataclass(frozen=True)
class ProcessRule:
    """Matches a process when every given field matches: ``name`` (regex, whole name), ``cmdline``
    (regex, searched in the joined command line), ``user`` (exact owner)."""

    name: str | None = None
    cmdline: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.cmdline is None:
            raise ValueError("a process rule needs a name or a cmdline pattern")
        for pattern in (self.name, self.cmdline):
            if pattern is not None:
                re.compile(pattern)

    def matches(self, name: str, cmdline: str, user: str | None) -> bool:
        if self.name is not None and not re.fullmatch(self.name, name or ""):
            return False
        if self.cmdline is not None and not re.search(self.cmdline, cmdline or ""):
            return False
        return self.user is None or self.user == user


def protected_pids() -> frozenset[int]:
    """PID 1, this process and its ancestors (whoever runs us: the run worker, the daemon, a shell)."""
    import psutil

    pids = {1, os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process().parents())
    return frozenset(pids)


@dataclass(frozen=True)
class SafetyPolicy:
    dry_run: bool = False
    processes: tuple[ProcessRule, ...] = ()  # the process allowlist
    cache_dirs: tuple[str, ...] = ()  # dirs whose contents `clear_cache` may remove
    temp_roots: tuple[str, ...] = ()  # roots under which `remove_temp_files` may remove old files
    cooldown_s: float = 300.0  # after an action on a target, other events' actions on it wait this long
    max_actions_per_hour: int = 30
    flap_window_s: float = 3600.0
    flap_max_events: int = 5  # more events than this for one target in the window: alert, do not act

    def allows_process(self, pid: int, name: str, cmdline: str, user: str | None, protected: Iterable[int]) -> bool:
        return pid not in set(protected) and any(r.matches(name, cmdline, user) for r in self.processes)

    def inside(self, path: Path, roots: Iterable[str]) -> Path | None:
        """The configured root that ``path`` lies under (symlinks resolved), or None."""
        real = Path(os.path.realpath(path))
        for root in roots:
            r = Path(os.path.realpath(root))
            if real == r or r in real.parents:
                return r
        return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class Guard:
    """Decides whether an action may run now, from the policy and the recent healing log.

    ``history`` rows: ``ts``, ``event_id``, ``source`` (the event's target), ``outcome`` (the log's columns).
    """

    policy: SafetyPolicy
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["ts", "event_id", "source", "outcome"]))

    def _done(self) -> pd.DataFrame:
        h = self.history
        return h[h["outcome"] == DONE] if len(h) else h

    def check_action(self, target: str, event_id: str, now: pd.Timestamp) -> Decision:
        """Cooldown on the target (another event's action on it, lately) and the hourly rate limit."""
        done = self._done()
        if len(done):
            ts = pd.to_datetime(done["ts"], utc=True)
            recent_other = done[(done["source"] == target) & (done["event_id"] != event_id)]
            recent_other = recent_other[ts[recent_other.index] > now - pd.Timedelta(seconds=self.policy.cooldown_s)]
            if len(recent_other):
                last = pd.to_datetime(recent_other["ts"], utc=True).max()
                wait = self.policy.cooldown_s - (now - last).total_seconds()
                return Decision(False, f"cooldown: {target} was acted on at {last:%H:%M:%S} ({wait:.0f} s left)")
            hour = int((ts > now - pd.Timedelta(hours=1)).sum())
            if hour >= self.policy.max_actions_per_hour:
                return Decision(
                    False, f"rate limit: {hour} actions in the last hour (max {self.policy.max_actions_per_hour})"
                )
        return Decision(True)

    def check_event(self, target: str, event_id: str, now: pd.Timestamp) -> Decision:
        """Flapping: too many distinct events on one target within the window."""
        h = self.history
        if not len(h):
            return Decision(True)
        ts = pd.to_datetime(h["ts"], utc=True)
        mine = h[(h["source"] == target) & (ts > now - pd.Timedelta(seconds=self.policy.flap_window_s))]
        events = set(mine["event_id"]) - {event_id}
        if len(events) >= self.policy.flap_max_events:
            return Decision(
                False,
                f"flapping: {len(events)} events on {target} in the last {self.policy.flap_window_s / 60:.0f} min",
            )
        return Decision(True)
