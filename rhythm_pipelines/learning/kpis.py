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
- **on**: the precursors' firings go through the same engine in the same pass, as preventions; an incident
  whose root one of them fixed at least ``LEAD`` before its breach (within the fix's horizon) never breaches (it
  is counted as avoided, not as an incident). An incident its own healing did not recover gets its learned
  pattern's fix at the pattern's root, as the ``recurrence_prevention`` sensor does (``live.root_fixes``: open
  ``SETTLE`` with healing ended, next sensor tick; not within the horizon of the pattern's last firing). All of
  them share the rails: a prevention's cooldown can hold back healing of the same root, and the other way.

Auto-recovery: incidents over by healing before their own end, over the incidents that happened. MTTR:
detection to recovery of those. Time to recover (all): detection to the end, whichever came first.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.learning import precursors
from rhythm_pipelines.learning.dryrun import DryRun
from rhythm_pipelines.learning.live import SETTLE, root_fixes
from rhythm_pipelines.learning.prevention import prevention_event, with_prevention
from rhythm_pipelines.learning.signals import host_of

DETECT = pd.Timedelta(seconds=60)  # the health sensor's tick
LEAD = pd.Timedelta(minutes=precursors.LEAD_MIN)  # a fix this close before the breach mitigates it at detection


def heal(incidents: pd.DataFrame, books, state_dir: Path, actuator_cls, firings: tuple = (),
         patterns: list | None = None) -> tuple[list[dict], set[str], list[dict]]:  # fmt: skip
    """One time-ordered pass over the world, one log for the rails: each precursor firing (``(ts, pattern)``)
    as a prevention, each incident healed at its detection unless a prevention already avoided it, and, with
    learned ``patterns``, the pattern's fix at its root one sensor tick after ``live.SETTLE`` for an incident its
    own healing did not recover (what ``recurrence_prevention`` does). Returns (fixes ``{ts, targets}``, the ids
    of avoided incidents, the log)."""
    dry = DryRun(books, state_dir, actuator_cls)
    fixes: list[dict] = []
    prevented: list[dict] = []  # prevention fixes: {ts, root, kind, horizon}
    avoided: set[str] = set()
    fired: dict[str, str] = {}  # pattern -> last firing, as the sensor's cursor holds it
    wait = pd.Timedelta(seconds=books.verify_wait_s)

    def run(event: HealthEvent, at: pd.Timestamp, run_books=None) -> bool:
        return DryRun.applied(dry.heal(event, at, run_books))

    queue: list[tuple] = []
    for i, (ts, p) in enumerate(firings):
        heapq.heappush(queue, (ts, 0, i, "prevent", p))
    detect = incidents["breach"] + DETECT
    for i, (t, r) in enumerate(zip(detect, incidents.itertuples(index=False), strict=True)):
        heapq.heappush(queue, (t, 1, i, "incident", r))
    seq = len(incidents)
    while queue:
        at, _, _, what, item = heapq.heappop(queue)
        if what == "prevent":
            p = item
            event = prevention_event(p, at)
            if run(event, at, with_prevention(dry.books, event)):
                horizon = pd.Timestamp(event.detail["until"]) - event.start
                prevented.append({"ts": at, "root": p.root, "kind": p.kind, "horizon": horizon})
                fixes.append({"ts": at + wait, "targets": {p.root, host_of(p.root)}})
            fired[p.pattern_id] = at.isoformat()
            continue
        r = item
        root = r.root or r.source
        if what == "incident":
            if any(f["kind"] == r.kind and f["root"] == root and r.breach - f["horizon"] <= f["ts"] <= r.breach - LEAD
                   for f in prevented):  # fmt: skip
                avoided.add(r.incident_id)  # a fix at its root in time: it never breaches
                continue
            targets = {r.source, host_of(r.source)}
            applied = run(HealthEvent(r.kind, r.source, at, metric=r.metric), at)
            if applied:
                fixes.append({"ts": at + wait, "targets": targets})
            if patterns and not (applied and root in targets) and at + SETTLE + DETECT < r.end:
                seq += 1  # the sensor's next tick once it has been open SETTLE
                heapq.heappush(queue, (at + SETTLE + DETECT, 2, seq, "rootfix", r))
            continue
        row = pd.DataFrame([{"kind": r.kind, "source": r.source, "host": host_of(r.source), "resolved": False,
                             "ended": True, "start": at - SETTLE - DETECT, "end": r.end}])  # fmt: skip
        for p in root_fixes(patterns, row, at, fired):
            event = prevention_event(p, at, trigger="incident")
            fired[p.pattern_id] = at.isoformat()
            if run(event, at, with_prevention(dry.books, event)):
                fixes.append({"ts": at + wait, "targets": {p.root, host_of(p.root)}})
    return fixes, avoided, dry.log


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


def off_and_on(test: pd.DataFrame, firings: list[tuple], patterns: list, books, state_dir: Path,
               actuator_cls) -> dict:  # fmt: skip
    """The scored days' KPIs with learning off and on (see the module docstring); ``firings``: the precursors'
    ``(ts, pattern)`` on the scored days."""
    fixes_off, _, _ = heal(test, books, state_dir, actuator_cls)
    fixes_on, avoided, _ = heal(test, books, state_dir, actuator_cls, tuple(firings), patterns)
    left = test[~test["incident_id"].isin(avoided)] if len(test) else test
    off, on = summary(recover(test, fixes_off)), summary(recover(left, fixes_on), len(avoided))
    change = (
        round(on["mttr_s"] / off["mttr_s"] - 1, 3) if off["mttr_s"] and on["mttr_s"] is not None else None
    )  # fmt: skip
    return {"off": off, "on": on, "mttr_change": change, "detect_s": DETECT.total_seconds(),
            "verify_wait_s": books.verify_wait_s}  # fmt: skip
