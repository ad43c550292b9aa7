"""The healing loop for one event: assess → act → verify → resolved, or escalate, or alert the admin.

A level that did not resolve the event escalates to the next level that can act (whether its own actions
worked but did not suffice, or none applied), except when a rate limit or a cooldown held its actions back:
those rails are never escalated around. A level none of whose remedies can act under the policy (nothing
allowlisted or configured for them) is not climbed through: the engine says "nothing allowed" once and alerts
at the level it stands on; climbing after a level acted and did not resolve skips the levels that cannot act
(saying so once). The top level, or a held-back level, alerts the admin. Events about this Dagster instance's
own processes are reported (alerted), never acted on. A reboot plan needs a host-level event and the host at
a critical bar of the playbook's severity.

Pure of Dagster: the caller passes a :class:`Probe` (fresh readings and "is it over?"), an
:class:`~rhythm_pipelines.healing.actions.Actuator` and a ``record`` callback that receives every log entry
(the Dagster job writes them to the ``healing_log`` table and its own event log).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from rhythm_pipelines.healing.actions import DONE, DRY_RUN, FAILED, REFUSED, ActionRecord, Actuator
from rhythm_pipelines.healing.events import PREVENTION_KIND, HealthEvent
from rhythm_pipelines.healing.playbooks import PlaybookSet, Step

RAILS = ("cooldown", "rate limit")  # refusals that must not be escalated around
RESOLVED, ALREADY_RESOLVED, UNRESOLVED, SUPPRESSED, DRY, REPORTED = (
    "resolved",
    "already_resolved",
    "unresolved",
    "suppressed",
    "dry_run",
    "reported",  # about this Dagster instance's own processes: alerted, never acted on
)
HOST_METRICS = ("cpu_percent", "mem_percent")


class Probe(Protocol):
    def readings(self, event: HealthEvent) -> dict[str, float]:
        """Fresh readings of the event's target host (cpu_percent, mem_percent...)."""

    def resolved(self, event: HealthEvent, since: pd.Timestamp) -> tuple[bool, str]:
        """Is the incident over, judged on data newer than ``since``? And what was read."""


@dataclass
class HealingResult:
    event: HealthEvent
    status: str = UNRESOLVED
    level: str = ""
    started: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    finished: pd.Timestamp | None = None
    actions: list[ActionRecord] = field(default_factory=list)
    followups: list[tuple[Step, pd.Timestamp, str]] = field(default_factory=list)  # (step, due, level)
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return ((self.finished or self.started) - self.started).total_seconds()


@dataclass
class Healer:
    books: PlaybookSet
    actuator: Actuator
    probe: Probe
    record: Callable[[dict[str, Any]], None] = lambda entry: None
    run_id: str = ""
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC")
    _readings: dict[str, float] = field(default_factory=dict)  # the target host's, as assessed

    def _log(
        self,
        result: HealingResult,
        step: str,
        outcome: str,
        detail: str,
        level: str = "",
        action: str = "",
        target: str = "",
        params: dict | None = None,
        duration_ms: float = 0.0,
        ts: pd.Timestamp | None = None,
    ) -> None:
        e = result.event
        entry = {
            "ts": ts or self.now(),
            "entry_id": f"{self.run_id or e.event_id}:{len(result.entries):03d}",
            "event_id": e.event_id,
            "run_id": self.run_id,
            "kind": e.kind,
            "source": e.source,
            "level": level,
            "step": step,
            "action": action,
            "target": target,
            "params": json.dumps(params or {}, sort_keys=True, default=str),
            "outcome": outcome,
            "detail": detail,
            "duration_ms": duration_ms,
        }
        result.entries.append(entry)
        self.record(entry)

    def _verify(self, event: HealthEvent, since: pd.Timestamp) -> tuple[bool, str]:
        self.sleep(self.books.verify_wait_s)
        deadline = time.monotonic() + max(0.0, self.books.verify_timeout(event.kind) - self.books.verify_wait_s)
        while True:
            ok, detail = self.probe.resolved(event, since)
            if ok or time.monotonic() >= deadline:
                return ok, detail
            self.sleep(1.0)

    def heal(self, event: HealthEvent, follow_up: Step | None = None) -> HealingResult:
        """Handle ``event`` (or run one follow-up step of it) and return what happened."""
        result = HealingResult(event, started=self.now())
        try:
            if follow_up is not None:
                return self._follow_up(result, follow_up)
            return self._heal(result)
        finally:
            result.finished = self.now()

    def _reboot_refusal(self, event: HealthEvent) -> str | None:
        """Why no reboot plan (None: the host is at a critical bar of the playbook's severity, on CPU or memory)."""
        pb = self.books.playbooks.get(event.kind)
        severity = pb.severity if pb is not None and pb.severity is not None else self.books.severity
        rules = [r for r in severity.rules.get("critical", ()) if r.metric in HOST_METRICS]
        if any(r.holds(self._readings) for r in rules):
            return None
        bars = " or ".join(f"{r.metric} > {r.above:g}" for r in rules if r.above is not None) or "none set"
        read = ", ".join(f"{m} = {self._readings[m]:.3g}" for m in HOST_METRICS if m in self._readings) or "nothing"
        return f"a reboot plan needs the host at a critical bar ({bars}); read {read}"

    def _impossible(self, step: Step, event: HealthEvent) -> str | None:
        why = self.actuator.impossible(step, event)
        return why or (self._reboot_refusal(event) if step.action == "prepare_reboot" else None)

    def _blocked(self, event: HealthEvent, level: str) -> dict[str, str] | None:
        """When no remedy at ``level`` can act under this policy: action -> why (None: one may, or the level
        only alerts). ``notify_admin`` is not a remedy: the alert at the end says the same."""
        steps = [s for s in self.books.playbook(event.kind).steps(level) if s.action != "notify_admin"]
        why = {s.action: self._impossible(s, event) for s in steps if not s.follow_up}
        return why if why and all(why.values()) else None

    def _next_level(self, event: HealthEvent, level: str) -> tuple[str | None, list[str], dict[str, str]]:
        """The next level up that can act, the levels skipped on the way (nothing allowed there) and why."""
        skipped, reasons = [], {}
        nxt = self.books.next_level(event.kind, level)
        while nxt is not None:
            blocked = self._blocked(event, nxt)
            if blocked is None:
                break
            skipped.append(nxt)
            reasons |= blocked
            nxt = self.books.next_level(event.kind, nxt)
        return nxt, skipped, reasons

    @staticmethod
    def _why(levels: list[str], reasons: dict[str, str]) -> str:
        return f"nothing allowed at {', '.join(levels)} ({'; '.join(f'{a}: {w}' for a, w in reasons.items())})"

    def _heal(self, result: HealingResult) -> HealingResult:
        event, books = result.event, self.books
        seen = f"{event.kind} on {event.source} since {event.start.isoformat()}"
        self._log(result, "detect", "received", f"{seen}: {event.metric} = {event.value:.4g}" if event.metric else seen)
        flap = self.actuator.guard.check_event(event.source, event.event_id, result.started)
        if not flap.allowed:
            result.status = SUPPRESSED
            self._log(result, "decide", "suppressed", flap.reason)
            self._alert(result, "", f"{event.kind} on {event.source} suppressed: {flap.reason}")
            return result
        role = event.detail.get("dagster_role")
        if role:
            result.status = REPORTED
            why = f"{event.source} is this Dagster instance's {role}: healing never restarts Dagster's own processes"
            self._log(result, "decide", "own_process", why)
            self._alert(result, "", f"{event.kind} on Dagster's own {role} ({event.source}): {why}; look at it")
            return result
        ok, detail = self.probe.resolved(event, event.start)
        if ok:
            result.status = ALREADY_RESOLVED
            self._log(result, "verify", ALREADY_RESOLVED, f"over before any action: {detail}")
            return result
        readings = self.probe.readings(event)
        readings.setdefault(event.metric, event.value)
        readings.update(
            {k: float(v) for k, v in event.detail.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        )
        self._readings = readings
        level, why = books.assess(event, readings)
        self._log(result, "assess", level, why, level)
        blocked = self._blocked(event, level)
        if blocked is not None:  # no remedy here can act: say so once, alert at this level, do not climb
            result.level = level
            nothing = self._why([level], blocked)
            self._log(result, "decide", "nothing_allowed", nothing, level)
            self._alert(result, level, f"{event.kind} on {event.source} unresolved at {level}: {nothing}")
            return result
        while True:
            result.level = level
            since = self.now()
            records = []
            for step in books.playbook(event.kind).steps(level):
                if step.follow_up:
                    self._schedule(result, step, since, level)
                    continue
                refusal = self._reboot_refusal(event) if step.action == "prepare_reboot" else None
                rec = (
                    ActionRecord(step.action, event.host, dict(step.params), REFUSED, refusal, self.now())
                    if refusal
                    else self.actuator.run(step, event, level)
                )
                records.append(rec)
                result.actions.append(rec)
                self._log(
                    result,
                    "act",
                    rec.outcome,
                    rec.detail,
                    level,
                    rec.action,
                    rec.target,
                    rec.params,
                    rec.duration_ms,
                    rec.started,
                )
                for later in rec.followups:
                    self._schedule(result, later, self.now(), level)
            if records and all(r.outcome == DRY_RUN for r in records):
                result.status = DRY
                self._log(result, "verify", DRY, "dry run: nothing was done, nothing to verify", level)
                return result
            if event.kind == PREVENTION_KIND:  # the breach is ahead: applied or not is all there is to check
                done = [r for r in records if r.outcome == DONE and r.action != "notify_admin"]
                ok = bool(done)
                detail = (f"{', '.join(r.action for r in done)} applied ahead of the breach; failure_patterns judges "
                          "after the horizon whether it helped") if ok else "no fix was applied"  # fmt: skip
            else:
                ok, detail = self._verify(event, since)
            self._log(result, "verify", "ok" if ok else "still_active", detail, level)
            if ok:
                result.status = RESOLVED
                self._log(
                    result,
                    "resolve",
                    RESOLVED,
                    f"resolved at {level} in {(self.now() - result.started).total_seconds():.1f} s",
                    level,
                )
                return result
            held = [r for r in records if r.outcome == REFUSED and r.detail.startswith(RAILS)]
            nxt, skipped, reasons = self._next_level(event, level)
            if skipped:
                self._log(result, "decide", "nothing_allowed", self._why(skipped, reasons), level)
            if nxt and not held:
                done = sum(r.outcome == DONE for r in records)
                why = f"{done} action(s) done" if done else "nothing at this level applied"
                self._log(result, "escalate", nxt, f"{level}: {why}, not resolved: escalating to {nxt}", level)
                level = nxt
                continue
            if held:
                reason = f"held back ({held[0].detail})"
            elif skipped:
                reason = self._why(skipped, reasons)
            else:
                reason = "the highest level did not resolve it"
            self._alert(
                result, level, f"{event.kind} on {event.source} unresolved at {level}: {reason}; last reading: {detail}"
            )
            return result

    def _schedule(self, result: HealingResult, step: Step, since: pd.Timestamp, level: str) -> None:
        until = result.event.detail.get("until") if step.at == "event_end" else None
        base = max(pd.Timestamp(until), since) if until else since  # an event with no end: from now
        due = base + pd.Timedelta(seconds=step.after_s or 0.0)
        result.followups.append((step, due, level))
        detail = f"{step.action} due {due.isoformat()}"
        self._log(result, "schedule", "scheduled", detail, level, step.action, result.event.source, step.params)

    def _alert(self, result: HealingResult, level: str, text: str) -> None:
        ok, how = self.actuator.notifier.send(
            text, {"event": result.event.to_config(), "event_id": result.event.event_id}
        )
        self._log(result, "alert", "sent" if ok else "failed", f"{text} ({how})", level, "notify_admin", "admin")

    def _follow_up(self, result: HealingResult, step: Step) -> HealingResult:
        event = result.event
        if step.action == "recheck":
            ok, detail = self.probe.resolved(event, result.started - pd.Timedelta(minutes=1))
            result.status = RESOLVED if ok else UNRESOLVED
            self._log(result, "recheck", "ok" if ok else "still_active", detail, action="recheck", target=event.source)
            if not ok:
                self._alert(result, "", f"{event.kind} on {event.source} is back or never went: {detail}")
            return result
        rec = self.actuator.run(step, event, "")
        result.actions.append(rec)
        result.status = UNRESOLVED if rec.outcome in (FAILED, REFUSED) else RESOLVED  # a no-op has nothing left to do
        self._log(
            result,
            "follow_up",
            rec.outcome,
            rec.detail,
            "",
            rec.action,
            rec.target,
            rec.params,
            rec.duration_ms,
            rec.started,
        )
        for later in rec.followups:
            self._schedule(result, later, self.now(), "")
        return result
