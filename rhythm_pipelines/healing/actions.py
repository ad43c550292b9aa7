"""The actions a playbook step runs, behind the safety rails.

:class:`Actuator` runs one :class:`~rhythm_pipelines.healing.playbooks.Step` for one event and returns an
:class:`ActionRecord` whatever happens: ``done``, ``dry_run`` (what it would have done), ``refused`` (a
rail held: allowlist, cooldown, rate limit, another host, no local evidence), ``noop`` (nothing to do) or
``failed``. Actions on this machine's processes and files need the event confirmed here
(:mod:`~rhythm_pipelines.healing.evidence`); signals go through a :class:`~processes.Signaller`.
Dagster-side work (pausing schedules, re-executing runs) goes through a :class:`WorkControl`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from rhythm_pipelines.healing import processes as procs
from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.evidence import LocalEvidence
from rhythm_pipelines.healing.files import Removal, remove_old_files, root_problem
from rhythm_pipelines.healing.notify import Notifier
from rhythm_pipelines.healing.playbooks import Step
from rhythm_pipelines.healing.routing import clear_route, set_route
from rhythm_pipelines.healing.safety import UNGUARDED_ACTIONS, Guard, SafetyPolicy, protected_pids

DONE, DRY_RUN, REFUSED, NOOP, FAILED = "done", "dry_run", "refused", "noop", "failed"


def host_level(event: HealthEvent) -> bool:
    """Is the event about a whole host's CPU or memory (a reboot plan's only possible reason: never one
    process; the engine also wants the host at its critical bar)?"""
    return event.source == event.host and event.metric in ("cpu_percent", "mem_percent")


@dataclass
class ActionRecord:
    action: str
    target: str
    params: dict[str, Any]
    outcome: str
    detail: str
    started: pd.Timestamp
    duration_ms: float = 0.0
    touched: list[dict[str, Any]] = field(default_factory=list)  # what was signalled or removed
    followups: list[Step] = field(default_factory=list)  # steps the action asks to run later (after_s set)


class WorkControl(Protocol):
    """What healing asks of the orchestrator (Dagster, in ``defs``)."""

    def pause_low_priority(self, event_id: str) -> tuple[bool, str]: ...

    def resume_low_priority(self, event_id: str) -> tuple[bool, str]: ...

    def rerun_failed(self, run_id: str, attempt: int, submit: bool = True) -> tuple[str, str]:
        """Re-execute ``run_id`` (or, on a later attempt, the newest failed run of its chain) from failure
        as a new queued run; returns (``submitted`` | ``recovered`` | ``running`` | ``failed``, detail). With
        ``submit`` false only looks: a chain whose newest run failed is ``failed``."""


class NoWorkControl:
    """Outside Dagster there is no work to pause or re-run."""

    def pause_low_priority(self, event_id: str) -> tuple[bool, str]:
        return False, "no orchestrator attached"

    resume_low_priority = pause_low_priority

    def rerun_failed(self, run_id: str, attempt: int, submit: bool = True) -> tuple[str, str]:
        return "failed", "no orchestrator attached"


@dataclass
class Actuator:
    policy: SafetyPolicy
    guard: Guard
    host: str
    state_dir: Path  # routes.json, reboot plans
    notifier: Notifier = field(default_factory=Notifier)
    work: WorkControl = field(default_factory=NoWorkControl)
    fallbacks: dict[str, str] = field(default_factory=dict)
    now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC")
    protected: frozenset[int] = field(default_factory=protected_pids)
    signaller: procs.Signaller = field(default_factory=procs.OsSignaller)
    # confirms an event on this machine before a local process or file is touched (default: psutil, here)
    evidence: Callable[[HealthEvent], tuple[bool, str]] | None = None

    def __post_init__(self) -> None:
        if self.evidence is None:
            self.evidence = LocalEvidence(DetectorSettings(), self.host)

    @property
    def routes_file(self) -> Path:
        return self.state_dir / "routes.json"

    def impossible(self, step: Step, event: HealthEvent) -> str | None:
        """Why ``step`` cannot do anything under this policy, whatever the moment (None: it may): nothing it
        could touch is configured, or it needs a reason the event does not give."""
        a = step.action
        if a in ("terminate_process", "reap_zombies") and not self.policy.processes:
            return "no process is allowlisted (safety.allow_processes)"
        if a == "clear_cache" and not self.policy.cache_dirs:
            return "no cache dir is configured (safety.cache_dirs)"
        if a == "remove_temp_files" and not self.policy.temp_roots:
            return "no temp root is configured (safety.temp_roots)"
        if a == "reroute_channel" and not self._fallback(event.source, step.params.get("fallback")):
            return f"no fallback for {event.source} (routing.fallbacks)"
        if a == "prepare_reboot" and not host_level(event):
            return "a reboot plan needs a host-level reason (the host's CPU or memory), not one process"
        return None

    def run(self, step: Step, event: HealthEvent, level: str) -> ActionRecord:
        started, t0 = self.now(), time.monotonic()
        params = dict(step.params)
        try:
            if step.action not in UNGUARDED_ACTIONS:
                decision = self.guard.check_action(event.source, event.event_id, started)
                if not decision.allowed:
                    return ActionRecord(step.action, event.source, params, REFUSED, decision.reason, started)
            fn = getattr(self, f"_{step.action}")
            outcome, target, detail, touched, *rest = fn(event, level, **params)
            later = rest[0] if rest else []
        except Exception as exc:  # an action that breaks is a failed step, logged, never a crashed run
            outcome, target, detail, touched, later = FAILED, event.source, f"{type(exc).__name__}: {exc}", [], []
        return ActionRecord(
            step.action, target, params, outcome, detail, started, (time.monotonic() - t0) * 1000, touched, later
        )

    # -- processes -----------------------------------------------------------------------------------------

    def _local(self, event: HealthEvent) -> str | None:
        """Why this runner cannot act on this machine for the event (None: it can): another host, or the
        event is not confirmed here (a host name in the store is only what a writer asserted)."""
        if event.host != self.host:
            return f"{event.host} is not this host ({self.host}): no remote actions"
        confirmed, what = self.evidence(event)
        return None if confirmed else f"not confirmed on this machine: {what}"

    def _allowed(self, p: procs.ProcInfo) -> bool:
        return self.policy.allows_process(p.pid, p.name, p.cmdline, p.user, self.protected)

    def _refusal(self, p: procs.ProcInfo) -> str:
        return self.policy.process_refusal(p.pid, p.name, p.cmdline, p.user, self.protected) or "allowed"

    def _describe(self, p: procs.ProcInfo) -> str:
        why = "" if self._allowed(p) else f": {self._refusal(p)}"
        return f"pid {p.pid} ({p.name}, user {p.user}){why}"

    def _candidates(self, select: str, event: HealthEvent) -> tuple[list[procs.ProcInfo], list[procs.ProcInfo]]:
        """(allowlisted candidates best first, the top users that were not allowlisted)."""
        if select == "event":
            pid = event.detail.get("pid") or (
                int(event.source.rsplit("/proc/", 1)[1]) if "/proc/" in event.source else None
            )
            p = procs.process(int(pid), alive=True) if pid is not None else None
            if p is None:
                return [], []
            created = event.detail.get("create_time")
            if created is not None and abs(p.create_time - float(created)) > 1e-3:
                return [], []  # the pid was reused: not our process
            return ([p], []) if self._allowed(p) else ([], [p])  # the refusal's reason is in the detail
        before = {p.pid: p for p in procs.snapshot() if not p.zombie}
        if select == "top_cpu":
            time.sleep(0.5)
            after = {p.pid: p for p in procs.snapshot() if not p.zombie}
            use = {pid: after[pid].cpu_seconds - before[pid].cpu_seconds for pid in after.keys() & before.keys()}
            busy = [pid for pid in use if use[pid] > 0.05]  # over a tenth of a core: an idle process is no culprit
            ranked = sorted((after[pid] for pid in busy), key=lambda p: -use[p.pid])
        else:
            ranked = sorted(before.values(), key=lambda p: -p.rss_bytes)
        allowed = [p for p in ranked if self._allowed(p)]
        return allowed, [p for p in ranked[:3] if not self._allowed(p)]

    def _terminate_process(self, event, level, select="event", grace_s=5, count=1):
        why = self._local(event)
        if why:
            return REFUSED, event.source, why, []
        allowed, others = self._candidates(select, event)
        skipped = "; not allowlisted, left alone: " + ", ".join(map(self._describe, others)) if others else ""
        if not allowed:
            outcome = REFUSED if others and select == "event" else NOOP
            return outcome, event.source, f"no allowlisted process to terminate ({select}){skipped}", []
        chosen = allowed[:count]
        target = ", ".join(f"{self.host}/proc/{p.pid}" for p in chosen)
        if self.policy.dry_run:
            return DRY_RUN, target, "would terminate " + ", ".join(map(self._describe, chosen)) + skipped, []
        results, touched = [], []
        for p in chosen:
            how = self.signaller.terminate(p, grace_s)
            results.append(f"{self._describe(p)}: {how}")
            touched.append({"pid": p.pid, "name": p.name, "cmdline": p.cmdline, "user": p.user, "how": how})
        ok = any(t["how"] in ("terminated", "killed") for t in touched)
        return (DONE if ok else NOOP), target, "; ".join(results) + skipped, touched

    def _reap_zombies(self, event, level, grace_s=2, terminate_parent=True):
        why = self._local(event)
        if why:
            return REFUSED, event.source, why, []
        ppid = int(event.detail.get("parent_pid") or event.source.rsplit("/proc/", 1)[1])
        parent = procs.process(ppid, alive=True)
        if parent is None or not procs.zombies_of(ppid):
            return NOOP, event.source, f"no zombies left under pid {ppid}", []
        created = event.detail.get("parent_create_time")
        if created is not None and abs(parent.create_time - float(created)) > 1e-3:
            return NOOP, event.source, f"pid {ppid} is no longer the zombies' parent", []
        if not self._allowed(parent):
            return REFUSED, event.source, f"parent {self._describe(parent)} is not allowlisted", []
        if self.policy.dry_run:
            return DRY_RUN, event.source, f"would signal {self._describe(parent)} (SIGCHLD)", []
        n = len(procs.zombies_of(ppid))
        self.signaller.sigchld(parent)
        touched = [{"pid": ppid, "name": parent.name, "cmdline": parent.cmdline, "user": parent.user, "how": "SIGCHLD"}]
        if procs.wait_until(lambda: not procs.zombies_of(ppid), grace_s):
            return DONE, event.source, f"SIGCHLD to {self._describe(parent)}: {n} zombie(s) reaped", touched
        if not terminate_parent:
            return NOOP, event.source, f"SIGCHLD to {self._describe(parent)}: zombies remain", touched
        how = self.signaller.terminate(parent, grace_s)
        touched.append({"pid": ppid, "name": parent.name, "cmdline": parent.cmdline, "user": parent.user, "how": how})
        return (
            DONE,
            event.source,
            f"parent {self._describe(parent)} ignored SIGCHLD; {how}: init reaps its zombies",
            touched,
        )

    # -- files ---------------------------------------------------------------------------------------------

    def _file_action(self, event: HealthEvent, roots: tuple[str, ...], what: str, older_than_s: float):
        if not roots:
            return NOOP, "(none configured)", f"no {what} configured: nothing may be removed", []
        why = self._local(event)
        if why:
            return REFUSED, ", ".join(roots), why, []
        total, refused = Removal(), []
        for root in roots:
            problem = root_problem(root)  # checked when the policy was built, and again here
            if problem:
                refused.append(problem)
                continue
            r = remove_old_files(root, older_than_s, self.policy.dry_run, time.time())
            total.files += r.files
            total.bytes += r.bytes
            total.symlinks += r.symlinks
            total.errors += r.errors
        verb = "would remove" if self.policy.dry_run else "removed"
        detail = f"{verb} {total.files} file(s), {total.bytes / 1e6:.1f} MB older than {older_than_s:g} s under "
        detail += ", ".join(roots)
        detail += f"; {total.symlinks} symlink(s) left alone" if total.symlinks else ""
        detail += f"; refused: {'; '.join(refused)}" if refused else ""
        detail += f"; errors: {'; '.join(total.errors[:3])}" if total.errors else ""
        if refused and len(refused) == len(roots):
            return REFUSED, ", ".join(roots), detail, []
        outcome = DRY_RUN if self.policy.dry_run else (DONE if total.files else (FAILED if total.errors else NOOP))
        return outcome, ", ".join(roots), detail, [{"files": total.files, "bytes": total.bytes}]

    def _clear_cache(self, event, level, older_than_s=300):
        return self._file_action(event, self.policy.cache_dirs, "cache dirs", float(older_than_s))

    def _remove_temp_files(self, event, level, older_than_s=3600):
        return self._file_action(event, self.policy.temp_roots, "temp roots", float(older_than_s))

    # -- work and channels ---------------------------------------------------------------------------------

    def _pause_low_priority(self, event, level):
        if self.policy.dry_run:
            return DRY_RUN, "low-priority work", "would pause low-priority schedules and sensors", []
        ok, detail = self.work.pause_low_priority(event.event_id)
        return (DONE if ok else NOOP), "low-priority work", detail, []

    def _resume_low_priority(self, event, level):
        if self.policy.dry_run:
            return DRY_RUN, "low-priority work", "would resume what this event paused", []
        ok, detail = self.work.resume_low_priority(event.event_id)
        return (DONE if ok else NOOP), "low-priority work", detail, []

    def _rerun_failed(self, event, level, max_attempts=3, backoff_s=10, attempt=1):
        """Submit a re-execution from failure (a queued run, never in this process) and a follow-up after an
        exponential backoff that looks at it: it submits again only if the re-execution failed and attempts are
        left; after the last attempt it only looks, until the chain has a verdict (recovered, or failed: then
        the follow-up fails and the incident stays unresolved)."""
        run_id = event.detail.get("last_run_id") or event.detail.get("root_run_id")
        if not run_id:
            return NOOP, event.source, "the event names no failed run", []
        target = f"run {run_id}"
        checking = attempt > max_attempts
        if self.policy.dry_run:
            return DRY_RUN, target, f"would re-execute run {run_id} from failure (attempt {attempt}/{max_attempts})", []
        state, detail = self.work.rerun_failed(str(run_id), int(attempt), submit=not checking)
        detail = (
            f"check after the last of {max_attempts} attempts: " if checking else f"attempt {attempt}/{max_attempts}: "
        ) + detail
        later = []
        if state in ("submitted", "running"):
            wait = float(backoff_s) * 2 ** (min(attempt, max_attempts) - 1)
            nxt = attempt if checking else attempt + 1  # past the last attempt: look again, never submit
            later.append(
                Step("rerun_failed", {"max_attempts": max_attempts, "backoff_s": backoff_s, "attempt": nxt}, wait)
            )
            detail += f"; checked again in {wait:g} s"
        outcome = {"submitted": DONE, "recovered": NOOP, "running": NOOP}.get(state, FAILED)
        return outcome, target, detail, [], later

    def _fallback(self, source: str, explicit: str | None) -> str | None:
        return explicit or self.fallbacks.get(source) or self.fallbacks.get(source.split("@")[0])

    def _reroute_channel(self, event, level, fallback=None, ttl_s=900):
        to = self._fallback(event.source, fallback)
        if not to:
            return FAILED, event.source, f"no fallback configured for {event.source} (routing.fallbacks)", []
        until = self.now() + pd.Timedelta(seconds=ttl_s)
        if self.policy.dry_run:
            return DRY_RUN, event.source, f"would route {event.source} to {to} until {until:%H:%M:%S}", []
        set_route(self.routes_file, event.source, to, until, event.event_id)
        return DONE, event.source, f"routed {event.source} to {to} until {until:%H:%M:%S} UTC", []

    def _restore_route(self, event, level):
        if self.policy.dry_run:
            return DRY_RUN, event.source, f"would restore {event.source}'s own route", []
        cleared = clear_route(self.routes_file, event.source, event.event_id)
        why = "route restored" if cleared else "no route of this event to restore (none, or another event's)"
        return (DONE if cleared else NOOP), event.source, why, []

    # -- people --------------------------------------------------------------------------------------------

    def _notify_admin(self, event, level, message=None):
        text = message or f"[{level}] {event.kind} on {event.source} since {event.start:%Y-%m-%d %H:%M:%S} UTC"
        if self.policy.dry_run:
            return DRY_RUN, "admin", f"would alert: {text}", []
        ok, how = self.notifier.send(text, {"event": event.to_config(), "event_id": event.event_id, "level": level})
        return (DONE if ok else FAILED), "admin", f"{text} ({how})", []

    def _prepare_reboot(self, event, level):
        if not host_level(event):
            return REFUSED, event.source, self.impossible(Step("prepare_reboot"), event), []
        plan = {
            "host": event.host,
            "event": event.to_config(),
            "prepared": self.now().isoformat(),
            "steps": ["drain the host's work", "stop its services", "reboot", "verify it rejoins"],
            "note": "prepared by rhythm healing; nothing reboots by itself",
        }
        path = self.state_dir / "reboot_plans" / f"{event.host}-{self.now():%Y%m%dT%H%M%S}.json"
        if self.policy.dry_run:
            return DRY_RUN, event.host, f"would write a reboot plan to {path} and alert", []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1))
        ok, how = self.notifier.send(f"reboot plan prepared for {event.host}: {path}", {"plan": plan})
        return DONE, event.host, f"plan written to {path}; alert {how}", []

    def _recheck(self, event, level):
        return NOOP, event.source, "re-checked by the follow-up run", []
