"""Safety rails: what healing may touch, and when it must hold back.

- **Allowlists**: processes may be signalled only when they match a :class:`ProcessRule`: a regex on the
  whole process name and/or the whole command line, and the owner (required); a rule that would match
  common system processes (``.*``, ``""``, ``python3`` alone...) is refused. Files are removed only under
  configured cache dirs and temp roots, never ``/``, system or home directories (``healing/files.py``).
  Both are empty by default: out of the box healing can alert, pause work and reroute, but never kill
  or delete. PID 1, this process and its ancestors, and Dagster's own processes (webserver, daemon, code
  servers, run workers) are never touched. Each of these is checked when a policy is built *and* again
  by the action itself.
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

import pandas as pd

from rhythm_pipelines.healing.events import PREVENTION_KIND
from rhythm_pipelines.healing.files import root_problem
from rhythm_pipelines.healing.processes import dagster_role

DONE = "done"
# never held back by the rails (alerts, re-checks, undos, a reboot plan), so they hold nothing back either
UNGUARDED_ACTIONS = ("notify_admin", "prepare_reboot", "recheck", "resume_low_priority", "restore_route")


# (name, command line) of processes found on most machines: an allowlist rule matching any of them is too broad
COMMON_PROCESSES = (
    ("systemd", "/sbin/init"),
    ("init", "/sbin/init splash"),
    ("kworker/0:1", ""),
    ("sshd", "/usr/sbin/sshd -D"),
    ("bash", "-bash"),
    ("sh", "/bin/sh -c true"),
    ("python3", "/usr/bin/python3"),
    ("python3", "python3 -m http.server"),
    ("postgres", "postgres: checkpointer"),
    ("cron", "/usr/sbin/cron -f"),
    ("dagster-daemon", "/usr/bin/python3 /usr/local/bin/dagster-daemon run"),
    ("x", "x"),
    ("", ""),
)


MIN_LITERAL = 4


def _longest_literal(pattern: str) -> int:
    """The longest run of characters the pattern matches literally (outside classes, escapes and quantified
    atoms): ``.*my_worker.*`` has 9, ``.{52,}`` and ``[a-z]+`` none."""
    best = run = 0
    i, depth = 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            literal = bool(nxt) and not nxt.isalnum()  # \. \- are literal; \d \w \s are classes
            i += 2
        elif ch == "[":
            depth = 1
            i += 1
            while i < len(pattern) and depth:
                depth -= pattern[i] == "]" and pattern[i - 1] != "\\"
                i += 1
            literal = False
        elif ch == "{":  # a quantifier's bounds, not text
            close = pattern.find("}", i)
            i = len(pattern) if close < 0 else close + 1
            literal = False
        else:
            literal = ch not in ".^$*+?}()|"
            i += 1
        quantified = i < len(pattern) and pattern[i] in "*?{" or (i < len(pattern) and pattern[i] == "+")
        if literal and not quantified:
            run += 1
            best = max(best, run)
        else:
            best = max(best, run - (1 if literal and quantified else 0))
            run = 0
    return best


@dataclass(frozen=True)
class ProcessRule:
    """Matches a process when every given field matches: ``name`` (regex on the whole process name),
    ``cmdline`` (regex on the whole command line, arguments joined by spaces), ``user`` (exact owner)."""

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
        if self.cmdline is not None and not re.fullmatch(self.cmdline, cmdline or ""):
            return False
        return self.user is None or self.user == user

    def allowlist_problem(self) -> str | None:
        """Why this rule may not allow signalling (None: it may): no owner, no literal part of at least
        ``MIN_LITERAL`` characters (a name, a tag: `.{52,}` names nothing), or it matches common processes."""
        if not self.user:
            return "an allowlist rule needs `user`: the owner whose processes it may signal"
        literals = [_longest_literal(p) for p in (self.name, self.cmdline) if p is not None]
        if max(literals) < MIN_LITERAL:
            return (
                f"too broad: a rule must name something, a literal part of at least {MIN_LITERAL} characters "
                "(an executable, a script, a tag) in its name or cmdline pattern"
            )
        hits = [f"{n or '?'} ({c!r})" for n, c in COMMON_PROCESSES if self.matches(n, c, self.user)]
        if hits:
            return f"too broad: it matches common processes such as {', '.join(hits[:3])}; narrow name/cmdline"
        return None


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

    def __post_init__(self) -> None:
        for rule in self.processes:
            problem = rule.allowlist_problem()
            if problem:
                raise ValueError(f"process rule {rule}: {problem}")
        for root in (*self.cache_dirs, *self.temp_roots):
            problem = root_problem(root)
            if problem:
                raise ValueError(f"removal root refused: {problem}")

    def process_refusal(
        self, pid: int, name: str, cmdline: str, user: str | None, protected: Iterable[int]
    ) -> str | None:
        """Why this process may not be signalled (None: it may)."""
        if pid in set(protected):
            return "protected (PID 1, this process or its ancestors)"
        role = dagster_role(cmdline)
        if role:
            return f"Dagster's own {role}: never signalled by healing"
        for r in self.processes:  # re-checked here too: a rule built around the policy's checks never acts
            if r.allowlist_problem() is None and r.matches(name, cmdline, user):
                return None
        return "not allowlisted"

    def allows_process(self, pid: int, name: str, cmdline: str, user: str | None, protected: Iterable[int]) -> bool:
        return self.process_refusal(pid, name, cmdline, user, protected) is None


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
        """Actions done; an alert, a re-check or an undo is never held back, so it holds nothing back either."""
        h = self.history
        if not len(h):
            return h
        done = h["outcome"] == DONE
        if "action" in h:
            done &= ~h["action"].isin(UNGUARDED_ACTIONS)
        return h[done]

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
        if "kind" in mine:  # preventions are not incidents: a root's learned precursors must not make it "flap"
            mine = mine[mine["kind"] != PREVENTION_KIND]
        events = set(mine["event_id"]) - {event_id}
        if len(events) >= self.policy.flap_max_events:
            return Decision(
                False,
                f"flapping: {len(events)} events on {target} in the last {self.policy.flap_window_s / 60:.0f} min",
            )
        return Decision(True)
