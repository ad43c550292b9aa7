"""Failure learning on what the product recorded, and the watch that fires preventions now.

- :func:`learn_recorded`: patterns of the healing log's events and the failed runs, read against the stored
  metrics; operator labels applied; each pattern's confidence lowered for every past prevention that its
  breach followed anyway (judged on the incidents healing detected, never on the prevention's own log).
- :func:`due`: the patterns whose precursor holds at the newest minute of fresh signals, not fired within their
  horizon and with no incident of theirs open.
- :func:`root_fixes`: the patterns whose fix should go to their root now, because an incident of theirs has been
  open ``SETTLE`` without healing closing it (a cascade's dependent, which healing cannot fix where it shows).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rhythm_pipelines.learning import incidents as incs
from rhythm_pipelines.learning import precursors
from rhythm_pipelines.learning.incidents import ALERT_ONLY
from rhythm_pipelines.learning.labels import Label
from rhythm_pipelines.learning.patterns import CONFIDENCE_FLOOR, MISS_FACTOR, Model, Pattern, learn
from rhythm_pipelines.learning.signals import Signals

STALE = pd.Timedelta(minutes=5)  # signals older than this: no prevention acts on them
SETTLE = pd.Timedelta(minutes=2)  # an incident open this long without healing closing it gets its root's fix
DEFAULT_HORIZON = pd.Timedelta(minutes=60)  # a pattern with no precursor: its fix holds this long


@dataclass
class Learned:
    model: Model
    incidents: pd.DataFrame
    misses: dict[str, int]  # pattern -> preventions its breach followed anyway
    helped: dict[str, int]  # pattern -> preventions no breach followed


def judge(preventions: pd.DataFrame, incidents: pd.DataFrame, now: pd.Timestamp) -> tuple[dict, dict]:
    """Per pattern, (missed, helped) counts of applied preventions whose horizon is over."""
    misses: dict[str, int] = {}
    helped: dict[str, int] = {}
    if preventions.empty:
        return misses, helped
    for p in preventions.itertuples(index=False):
        if str(p.status) != "resolved":
            continue  # held back by the rails, failed or a dry run: nothing was done, so it says nothing of the fix
        if str(getattr(p, "trigger", "") or "precursor") == "incident":
            continue  # a fix at the root after the breach: the cascade's later incidents say nothing of prevention
        end = pd.Timestamp(p.ts) + pd.Timedelta(minutes=float(p.horizon_min))
        if end > now:
            continue
        after = incidents[(incidents["start"] > pd.Timestamp(p.ts)) & (incidents["start"] <= end)]
        hit = ((after["kind"] == p.of_kind) & ((after["host"] == p.root) | (after["source"] == p.root))).any()
        bucket = misses if hit else helped
        bucket[p.pattern_id] = bucket.get(p.pattern_id, 0) + 1
    return misses, helped


def learn_recorded(log: pd.DataFrame, runs: pd.DataFrame, metrics: pd.DataFrame, now: pd.Timestamp,
                   labels: dict[str, Label] | None = None,
                   preventions: pd.DataFrame | None = None) -> Learned:  # fmt: skip
    inc = incs.recorded(log, runs)
    signals = Signals.build(metrics) if len(metrics) else None
    model = learn(inc, signals, now)
    misses, helped = judge(preventions if preventions is not None else pd.DataFrame(), inc, now)
    for p in model.patterns:
        lab = (labels or {}).get(p.pattern_id)
        if lab is not None:
            p.label = lab.label
            if not lab.prevent:
                p.confidence = 0.0
        p.confidence = round(p.confidence * MISS_FACTOR ** misses.get(p.pattern_id, 0), 3)
    return Learned(model, inc, misses, helped)


def due(patterns: list[Pattern], signals: Signals, now: pd.Timestamp, last_fired: dict[str, str],
        open_incidents: pd.DataFrame) -> list[Pattern]:  # fmt: skip
    """The patterns to prevent now (see the module docstring)."""
    if not len(signals.index) or now - signals.index[-1] > STALE:
        return []
    end = len(signals.index)
    out = []
    for p in patterns:
        rule = p.precursor
        if rule is None or not signals.has(rule.source, rule.metric):
            continue
        last = last_fired.get(p.pattern_id)
        if last and pd.Timestamp(last) > now - pd.Timedelta(minutes=rule.horizon_min):
            continue
        o = open_incidents
        mine = o[(o["kind"] == p.kind) & ((o["host"] == p.root) | (o["source"] == p.root))]
        quiet = precursors.quiet_mask(signals, list(zip(mine["start"], mine["end"], strict=True)))
        if rule.firings(signals, end - 1, end, quiet):
            out.append(p)
    return out


def horizon(p: Pattern) -> pd.Timedelta:
    return pd.Timedelta(minutes=p.precursor.horizon_min) if p.precursor else DEFAULT_HORIZON


def root_fixes(patterns: list[Pattern], open_incidents: pd.DataFrame, now: pd.Timestamp,
               last_fired: dict[str, str]) -> list[Pattern]:  # fmt: skip
    """The patterns whose learned fix goes to their root now (see the module docstring): a confident pattern with
    an acting fix, an incident of its kind on one of its sources open for ``SETTLE`` whose healing ended without
    closing it, and no firing of the pattern within its horizon."""
    o = open_incidents
    if o.empty:
        return []
    o = o[(o["start"] <= now - SETTLE) & (o["end"] > now) & ~o["resolved"].astype(bool)]
    if "ended" in o:  # its healing run still at work (verifying, escalating): not yet
        o = o[o["ended"].astype("boolean").fillna(True).astype(bool)]
    out = []
    for p in patterns:
        if p.confidence < CONFIDENCE_FLOOR or p.fix in ALERT_ONLY:
            continue
        last = last_fired.get(p.pattern_id)
        if last and pd.Timestamp(last) > now - horizon(p):
            continue
        members = {*p.sources, p.root}
        if ((o["kind"] == p.kind) & (o["source"].isin(members) | o["host"].isin(members))).any():
            out.append(p)
    return out
