"""Recurrence prevention: a learned precursor fires, its pattern's fix is applied before the breach.

The fix goes through the healing engine like any remedy: a ``recurrence_risk`` event on the pattern's root,
whose one level holds the fix *as a playbook spells it*: the pattern's kind's own playbook first, else the
first playbook with that action (a CPU cascade's pause is ``cpu_spike``'s). Its params come from the
operator's playbook file, not from what was learned (a reroute's ttl is stretched to the horizon), so only
playbook actions run, under the same rails (allowlists, dry run, cooldown, rate limit, flapping, the log).
A pause or a reroute is undone when the horizon ends. A fix no playbook has is not applied: the admin is told.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from rhythm_pipelines.healing.events import PREVENTION_KIND, HealthEvent
from rhythm_pipelines.healing.playbooks import Playbook, PlaybookSet, Severity, Step
from rhythm_pipelines.learning.patterns import Pattern

UNDO = {"pause_low_priority": "resume_low_priority", "reroute_channel": "restore_route"}


def prevention_event(pattern: Pattern, at: pd.Timestamp, value: float = float("nan"),
                     trigger: str = "precursor") -> HealthEvent:  # fmt: skip
    """The event a firing raises: ``recurrence_risk`` on the pattern's root, until its horizon ends; ``value``:
    the precursor series' reading (what a local action checks against this machine's own reading); ``trigger``:
    ``precursor`` (before the breach) or ``incident`` (the fix at the root of an incident healing left open)."""
    p = pattern.precursor
    horizon = pd.Timedelta(minutes=p.horizon_min if p else 60)
    return HealthEvent(
        PREVENTION_KIND,
        pattern.root,
        pd.Timestamp(at).floor("min"),
        metric=p.metric if p else "",
        value=value,
        detail={
            "pattern": pattern.pattern_id,
            "of_kind": pattern.kind,
            "fix": pattern.fix,
            "precursor": p.describe() if p else "",
            "lead_min": p.lead_min if p else None,
            "confidence": pattern.confidence,
            "until": (pd.Timestamp(at).floor("min") + horizon).isoformat(),
            "trigger": trigger,
        },
    )


def fix_steps(books: PlaybookSet, event: HealthEvent) -> tuple[Step, ...]:
    """The pattern's fix as the kind's playbook has it (its first level that has it), and its undo at the
    horizon's end; an alert when the playbook has no such action."""
    kind, fix = event.detail.get("of_kind", ""), event.detail.get("fix", "")
    own = books.playbooks.get(kind)
    for pb in [own] * (own is not None) + [p for k, p in books.playbooks.items() if k != kind]:
        for level in ("soft", "hard", "critical"):
            for step in pb.steps(level):
                if step.action == fix and not step.follow_up:
                    if step.params.get("select") == "event" and "/proc/" not in event.source:
                        continue  # a root host names no process: a level that picks one (top_memory) fits
                    if fix == "reroute_channel":  # the route holds until the undo at the horizon's end
                        until = pd.Timestamp(event.detail["until"]) - event.start
                        ttl = max(float(step.params.get("ttl_s") or 0), until.total_seconds() + 300)
                        step = replace(step, params={**step.params, "ttl_s": ttl})
                    undo = (Step(UNDO[fix], {}, 0.0, "event_end"),) if fix in UNDO else ()
                    return (step, *undo)
    why = f"no playbook has a {fix!r} step"
    text = f"pattern {event.detail.get('pattern')} is about to recur on {event.source}; {why}, so nothing is applied"
    return (Step("notify_admin", {"message": text}),)


def with_prevention(books: PlaybookSet, event: HealthEvent) -> PlaybookSet:
    """``books`` with the ``recurrence_risk`` playbook for this event: one soft level, no escalation."""
    pb = Playbook(PREVENTION_KIND, {"soft": fix_steps(books, event)}, Severity({}, "soft"))
    return replace(books, playbooks={**books.playbooks, PREVENTION_KIND: pb})
