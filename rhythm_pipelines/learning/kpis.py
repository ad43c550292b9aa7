"""The healing KPIs of a split evaluation's scored days, with learning off and on.

Every labelled incident of the scored days is healed as production would: detected one health-sensor tick
(``DETECT``) after its breach and handed to the real :class:`~rhythm_pipelines.healing.engine.Healer` in dry run
on the evaluated fleet (:class:`~rhythm_pipelines.learning.evaluate.FleetActuator`), under the real rails:
one :class:`~rhythm_pipelines.healing.safety.Guard` history for the whole run, so cooldowns and the rate limit
carry from one incident (or prevention) to the next.

The world's rule (the simulator's): an incident is over when an action other than an alert reaches its root
(its labelled root, else its own source), whichever event's healing applied it, ``verify_wait_s`` later (the
engine's wait before it verifies), at its detection at the earliest; a fix less than ``LEAD`` before the breach
(too late to prevent it) counts from its detection; else the incident runs to its own end. So a cascade's
dependents recover when their root is fixed, and healing that reaches only a symptom recovers nothing.

- **off**: every incident happens and is healed after the fact.
- **on**: the preventions the evaluation applied (the precursors' firings through the same engine) come first;
  a recurrence they prevented never breaches (it is counted as avoided, not as an incident), and their fixes
  hold the rails for what follows (a prevention's cooldown can hold back healing of the same root). An incident
  its own healing did not recover gets its learned pattern's fix at the pattern's root, as the
  ``recurrence_prevention`` sensor does (``live.root_fixes``: open ``SETTLE`` with no close, next sensor tick).

Auto-recovery: incidents over by healing before their own end, over the incidents that happened. MTTR:
detection to recovery of those. Time to recover (all): detection to the end, whichever came first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.actions import DRY_RUN
from rhythm_pipelines.healing.engine import Healer
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.replay import HistoryProbe, SilentNotifier
from rhythm_pipelines.healing.safety import Guard
from rhythm_pipelines.learning import precursors
from rhythm_pipelines.learning.live import SETTLE, root_fixes
from rhythm_pipelines.learning.prevention import prevention_event, with_prevention
from rhythm_pipelines.learning.signals import host_of

DETECT = pd.Timedelta(seconds=60)  # the health sensor's tick
LEAD = pd.Timedelta(minutes=precursors.LEAD_MIN)  # a fix this close before the breach mitigates it at detection


def heal_reactively(incidents: pd.DataFrame, books, state_dir: Path, history: list[dict], actuator_cls,
                    patterns: list | None = None) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Each incident healed at its detection, in time order: (fixes ``{ts, targets}``, log entries). With learned
    ``patterns``, an incident its own healing did not recover gets its pattern's fix at the root one sensor tick
    after ``live.SETTLE`` (what ``recurrence_prevention`` does), through the same engine and rails."""
    policy = replace(books.safety, dry_run=True)
    log = list(history)
    fixes: list[dict] = []
    fired: dict[str, str] = {}
    now = {"t": pd.Timestamp.now(tz="UTC")}
    probe = HistoryProbe(pd.DataFrame(columns=["ts", "source", "metric", "value"]), lambda: now["t"])
    # the world decides what recovered (``recover``): the engine's verification is not waited for, any kind's
    playbooks = {k: replace(pb, verify_timeout_s=0.0) for k, pb in books.playbooks.items()}
    b = replace(books, safety=policy, verify_wait_s=0.0, verify_timeout_s=0.0, playbooks=playbooks)

    def heal(event: HealthEvent, at: pd.Timestamp, run_books) -> bool:
        now["t"] = at
        past = pd.DataFrame(log) if log else pd.DataFrame()
        if len(past):  # what a dry run decided counts for the cooldown and the rate limit as if done; the
            # preventions' log runs ahead of this incident: only what happened before it counts
            past = past[pd.to_datetime(past["ts"], utc=True) <= at]
            past = past.assign(outcome=past["outcome"].replace(DRY_RUN, "done"))
        actuator = actuator_cls(policy, Guard(policy, past), "(evaluation)", state_dir, SilentNotifier(),
                                fallbacks=books.fallbacks, now=lambda: now["t"],
                                evidence=lambda e: (False, "evaluation"))  # fmt: skip
        result = Healer(run_books, actuator, probe, log.append, run_id=f"eval:{event.event_id}",
                        sleep=lambda _: None, now=lambda: now["t"]).heal(event)  # fmt: skip
        return any(a.outcome == DRY_RUN and a.action != "notify_admin" for a in result.actions)

    wait = pd.Timedelta(seconds=books.verify_wait_s)
    for r in incidents.assign(detect=incidents["breach"] + DETECT).sort_values("detect").itertuples(index=False):
        targets = {r.source, host_of(r.source)}
        applied = heal(HealthEvent(r.kind, r.source, r.detect, metric=r.metric), r.detect, b)
        if applied:
            fixes.append({"ts": r.detect + wait, "targets": targets})
        if not patterns or (applied and (r.root or r.source) in targets):
            continue  # no learning, or its own healing recovered it
        at = r.detect + SETTLE + DETECT  # the sensor's next tick once it has been open SETTLE
        if at >= r.end:
            continue  # over before the sensor would look
        row = pd.DataFrame([{"kind": r.kind, "source": r.source, "host": host_of(r.source), "start": r.detect,
                             "end": r.end, "resolved": False}])  # fmt: skip
        for p in root_fixes(patterns, row, at, fired):
            event = prevention_event(p, at, trigger="incident")
            fired[p.pattern_id] = event.start.isoformat()
            if heal(event, at, with_prevention(b, event)):
                fixes.append({"ts": at + wait, "targets": {p.root, host_of(p.root)}})
    return fixes, log


def recover(incidents: pd.DataFrame, fixes: list[dict]) -> pd.DataFrame:
    """Each incident's detection, recovery time and whether healing recovered it (the module's world rule)."""
    rows = []
    for r in incidents.itertuples(index=False):
        detect, root = r.breach + DETECT, r.root or r.source
        hits = [max(f["ts"], detect) for f in fixes if root in f["targets"] and r.breach - LEAD <= f["ts"] < r.end]
        healed = min(hits, default=None)
        auto = healed is not None and healed < r.end
        rows.append({"incident_id": r.incident_id, "detect": detect, "auto": auto,
                     "over": healed if auto else max(r.end, detect), "breach": r.breach})  # fmt: skip
    return pd.DataFrame(rows, columns=["incident_id", "detect", "auto", "over", "breach"])


def summary(out: pd.DataFrame, avoided: int = 0) -> dict:
    ttr = (out["over"] - out["detect"]).dt.total_seconds() if len(out) else pd.Series(dtype=float)
    auto = ttr[out["auto"].astype(bool)] if len(out) else ttr
    return {
        "incidents": len(out),
        "avoided": avoided,
        "auto_recovery_rate": round(float(out["auto"].mean()), 4) if len(out) else None,
        "mttr_s": round(float(auto.mean()), 1) if len(auto) else None,
        "mttr_p95_s": round(float(np.percentile(auto, 95)), 1) if len(auto) else None,
        "time_to_recover_all_s": round(float(ttr.mean()), 1) if len(ttr) else None,
        "incident_minutes": round(float((out["over"] - out["breach"]).dt.total_seconds().clip(lower=0).sum() / 60), 1),
    }


def off_and_on(test: pd.DataFrame, prevented: list[bool], applied: list[dict], prevention_log: list[dict], books,
               state_dir: Path, actuator_cls, patterns: list) -> dict:  # fmt: skip
    """The scored days' KPIs with learning off and on (see the module docstring)."""
    fixes_off, _ = heal_reactively(test, books, state_dir, [], actuator_cls)
    left = test[~np.asarray(prevented, dtype=bool)] if len(test) else test
    fixes_on, _ = heal_reactively(left, books, state_dir, prevention_log, actuator_cls, patterns)
    fixes_on += [{"ts": f["ts"], "targets": {f["root"], host_of(f["root"])}} for f in applied]
    off, on = summary(recover(test, fixes_off)), summary(recover(left, fixes_on), int(sum(prevented)))
    change = (
        round(on["mttr_s"] / off["mttr_s"] - 1, 3) if off["mttr_s"] and on["mttr_s"] is not None else None
    )  # fmt: skip
    return {"off": off, "on": on, "mttr_change": change, "detect_s": DETECT.total_seconds(),
            "verify_wait_s": books.verify_wait_s}  # fmt: skip
