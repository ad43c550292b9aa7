"""The split evaluation of failure learning: learn on the first days, score the rest only.

On the scored days, each learned precursor watches its signals minute by minute (reading only the past), and
each firing is a prevention: the pattern's fix on its root. Each goes through the real healing engine under a
dry-run policy (its rails decide, its log says what it would do); a firing the rails hold back prevents nothing.

- A **recurrence** is a scored-day incident whose (root, kind) recurred on the learning days: labelled there
  at least twice, 15 min or more apart (a cascade's root and dependents at once are one occurrence). The
  broader reading (seen there once or more) is reported beside it.
- It is **prevented** when a prevention of its kind on its host, source or labelled root was applied before its
  breach and within the pattern's horizon (mitigated before it; on recorded data the breach still shows, since
  nothing was done to it).
- A prevention is **unneeded** when no incident of its kind with that root (or on that host) breached within
  its horizon after it.
- **Root-cause top-1**: the predicted root of every scored-day incident against its label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.healing import playbooks as playbook_files
from rhythm_pipelines.healing.actions import DRY_RUN, Actuator
from rhythm_pipelines.learning import incidents as incs
from rhythm_pipelines.learning import kpis, precursors
from rhythm_pipelines.learning import patterns as pats
from rhythm_pipelines.learning.dryrun import DryRun
from rhythm_pipelines.learning.prevention import prevention_event, with_prevention
from rhythm_pipelines.learning.signals import Signals


class DataDirError(ValueError):
    """A data directory not in the simulator's layout, or with a bad file: names the file."""


@dataclass
class Data:
    metrics: pd.DataFrame
    calls: pd.DataFrame
    labels: pd.DataFrame
    origin: str


def read_dir(path: Path | str) -> Data:
    """``metrics/*.csv``, ``calls/*.jsonl`` and ``incidents/*.csv`` under ``path``."""
    root = Path(path)
    parts = {}
    for sub, pattern in (("metrics", "*.csv"), ("calls", "*.jsonl"), ("incidents", "*.csv")):
        files = sorted((root / sub).glob(pattern))
        if not files and sub != "calls":
            raise DataDirError(f"{root / sub}: no {pattern} files (expected the simulator's layout)")
        frames = []
        for f in files:
            try:
                frame = pd.read_json(f, lines=True) if sub == "calls" else pd.read_csv(f)
            except ValueError as exc:
                raise DataDirError(f"{f}: {exc}") from None
            if sub == "metrics":
                _check_metrics(frame, f)
            frames.append(frame)
        parts[sub] = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), files)
    metrics, _ = parts["metrics"]
    metrics["ts"] = pd.to_datetime(metrics["ts"], utc=True, format="ISO8601")
    calls, _ = parts["calls"]
    if len(calls):
        ts = "timestamp" if "timestamp" in calls else "ts"
        calls["ts"] = pd.to_datetime(calls[ts], utc=True, format="mixed")
    labels, lfiles = parts["incidents"]
    return Data(metrics, calls, labels, str(lfiles[0]) if len(lfiles) == 1 else str(root / "incidents"))


def _check_metrics(frame: pd.DataFrame, path: Path) -> None:
    """Columns, numeric values and ISO timestamps, or an error naming the file, line and field."""
    need = {"ts", "source", "metric", "value"}
    if not need <= set(frame.columns):
        raise DataDirError(f"{path}: column(s) {', '.join(sorted(need - set(frame.columns)))} missing")
    value = pd.to_numeric(frame["value"], errors="coerce")
    ts = pd.to_datetime(frame["ts"], utc=True, format="ISO8601", errors="coerce")
    for field, bad in (("ts", ts.isna()), ("value", value.isna() & frame["value"].notna())):
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataDirError(f"{path}: line {i + 2}: {field}: {frame[field].iloc[i]!r} is not "
                               f"{'an ISO 8601 time' if field == 'ts' else 'a number'}")  # fmt: skip
    frame["value"] = value


def simulated(seed: int, days: float = 14.0) -> Data:
    """A fresh simulation with the recurring causes (and a few one-off incidents a day beside them)."""
    from rhythm_pipelines.simulate.fleet import SimConfig, simulate

    cfg = SimConfig(
        days=days,
        seed=seed,
        recurring=True,
        incidents_per_day=2.0,
        warmup_fraction=0.02,
        start=pd.Timestamp("2026-01-05", tz="UTC"),
    )  # fmt: skip  (a Monday)
    sim = simulate(cfg)
    return Data(sim.metrics, sim.calls, sim.incidents, f"simulation seed {seed}")


class FleetActuator(Actuator):
    """The actuator of an evaluation: the data's fleet is not this machine, so every action is a dry run that
    says what it would do to its target, as if the fleet's operator had allowlisted its workers and given each
    channel a fallback. The rails (cooldown, rate limit, flapping) are the real :class:`Guard`'s."""

    def impossible(self, step, event):
        return None if step.action != "reroute_channel" else super().impossible(step, event)

    def _would(self, event, level, **params):
        return DRY_RUN, event.source, f"would apply it to {event.source} (the evaluated fleet)", []

    _terminate_process = _reap_zombies = _clear_cache = _remove_temp_files = _would


def fallbacks(sources: list[str]) -> dict[str, str]:
    """Each channel@region's fallback: the same channel in another region, else another channel."""
    chans = sorted(s for s in set(sources) if "@" in s)
    out = {}
    for s in chans:
        name = s.split("@")[0]
        same = [c for c in chans if c != s and c.split("@")[0] == name]
        other = [c for c in chans if c != s]
        if same or other:
            out[s] = (same or other)[0]
    return out


def _prevent(model: pats.Model, signals: Signals, start: int, books, state_dir: Path,
             open_incidents: pd.DataFrame) -> tuple[list[dict], list]:  # fmt: skip
    """Every firing on [start, end) as a dry-run prevention through the healing engine: (firings, log).
    A precursor is quiet while an incident of its kind on its root is open (healing has it)."""
    firings = []
    for p in model.watching():
        o = open_incidents
        mine = o[(o["kind"] == p.kind) & o[["host", "source", "predicted_root"]].eq(p.root).any(axis=1)]
        quiet = precursors.quiet_mask(signals, list(zip(mine["breach"], mine["end"], strict=True)))
        for pos in p.precursor.firings(signals, start, len(signals.index), quiet):
            firings.append((signals.index[pos], p))
    firings.sort(key=lambda x: (x[0], x[1].pattern_id))
    dry = DryRun(books, state_dir, FleetActuator)
    out = []
    for t, p in firings:
        event = prevention_event(p, t)
        result = dry.heal(event, t, with_prevention(dry.books, event))
        out.append({"ts": t, "pattern": p.pattern_id, "kind": p.kind, "root": p.root,
                    "horizon_min": p.precursor.horizon_min, "applied": DryRun.applied(result),
                    "status": result.status})  # fmt: skip
    return out, dry.log


def evaluate(data: Data, train_days: float = 7.0, state_dir: Path | None = None) -> dict:
    """Learn on the first ``train_days``, score the rest (see the module docstring)."""
    import tempfile

    signals = Signals.build(data.metrics, data.calls, data.labels.get("metric", pd.Series(dtype=str)).unique())
    if not len(signals.index):
        raise DataDirError(f"{data.origin}: no metrics to read")
    inc = incs.from_labels(data.labels, signals, data.origin)
    split = signals.index[0] + pd.Timedelta(days=train_days)
    if split >= signals.index[-1]:
        raise DataDirError(f"{data.origin}: the data span {signals.index[-1] - signals.index[0]} is not longer than "
                           f"--train-days {train_days:g}")  # fmt: skip
    train, test = inc[inc["start"] < split], inc[inc["start"] >= split]
    model = pats.learn(train, signals, split)
    roots = model.lineage.roots(inc)  # learned on the first days; each incident's root from those before it
    books = playbook_files.load()
    books = replace(books, fallbacks=books.fallbacks or fallbacks(list(inc["source"])))
    with tempfile.TemporaryDirectory() as tmp:
        detected = test.assign(predicted_root=roots.loc[test.index])  # open from its breach to its end
        firings, log = _prevent(model, signals, signals.position(split), books, Path(state_dir or tmp), detected)
    applied = [f for f in firings if f["applied"]]

    def matches(f: dict, r) -> bool:
        return f["kind"] == r.kind and f["root"] in (r.host, r.source, r.root)

    times = train.groupby(["root", "kind"])["start"].agg(lambda s: len(precursors.occurrences(list(s))))
    key = list(zip(test["root"], test["kind"], strict=True))
    once = test[[k in times.index for k in key]]
    rec = test[[k in times.index and times[k] >= 2 for k in key]]

    lead = pd.Timedelta(minutes=precursors.LEAD_MIN)  # a fix needs time to act, as the learning demands

    def prevented_of(frame: pd.DataFrame) -> list[bool]:
        return [
            any(matches(f, r) and r.breach - pd.Timedelta(minutes=f["horizon_min"]) <= f["ts"] <= r.breach - lead
                for f in applied)
            for r in frame.itertuples(index=False)
        ]  # fmt: skip

    def ahead_of_onset(frame: pd.DataFrame) -> int:
        return sum(
            any(matches(f, r) and r.breach - pd.Timedelta(minutes=f["horizon_min"]) <= f["ts"] < r.start
                for f in applied)
            for r in frame.itertuples(index=False)
        )  # fmt: skip

    prevented = prevented_of(rec)
    prevented_once = prevented_of(once)
    with tempfile.TemporaryDirectory() as tmp:
        watched = {p.pattern_id: p for p in model.watching()}
        healing_kpis = kpis.off_and_on(test, [(f["ts"], watched[f["pattern"]]) for f in firings], model.recurring(),
                                       books, Path(state_dir or tmp), FleetActuator)  # fmt: skip
    unneeded = 0
    for f in applied:
        after = test[(test["breach"] > f["ts"]) & (test["breach"] <= f["ts"] + pd.Timedelta(minutes=f["horizon_min"]))]
        unneeded += not any(matches(f, r) for r in after.itertuples(index=False))
    roots = roots.loc[test.index]
    labelled = test["root"].astype(str) != ""
    top1 = float((roots[labelled] == test.loc[labelled, "root"]).mean()) if labelled.any() else float("nan")
    own = float((test.loc[labelled, "host"] == test.loc[labelled, "root"]).mean()) if labelled.any() else float("nan")
    rec = rec.assign(prevented=prevented)
    by_cause = (
        {c: round(float(g["prevented"].mean()), 3) for c, g in rec.groupby(rec["cause"].replace("", "one-off"))}
        if "cause" in rec and len(rec) else {}
    )  # fmt: skip
    return {
        "recurrence_prevention": round(float(pd.Series(prevented).mean()), 4) if prevented else None,
        "unneeded_actions": round(unneeded / len(applied), 4) if applied else None,
        "root_cause_top1": round(top1, 4) if top1 == top1 else None,
        "patterns": len(model.recurring()),
        "detail": {
            "train_incidents": len(train),
            "test_incidents": len(test),
            "recurrences": len(rec),
            "prevented": int(sum(prevented)),
            "prevented_ahead_of_onset": ahead_of_onset(rec[prevented]) if len(rec) else 0,  # before it began
            # the broader reading: a (root, kind) seen once on the learning days recurs too
            "seen_once_or_more": {
                "recurrences": len(once),
                "prevented": int(sum(prevented_once)),
                "rate": round(sum(prevented_once) / len(once), 4) if len(once) else 0.0,
            },
            "preventions": len(applied),
            "held_by_rails": len(firings) - len(applied),
            "unneeded": unneeded,
            "watching_patterns": len(model.watching()),
            "root_cause_top1_baseline": round(own, 4) if own == own else None,  # every incident its own host's
            "prevention_by_cause": by_cause,
            "precursors": [
                {
                    "pattern": p.pattern_id,
                    "kind": p.kind,
                    "root": p.root,
                    "members": p.count,
                    "rule": p.precursor.describe(),
                    "horizon_min": p.precursor.horizon_min,
                    "lead_min": p.precursor.lead_min,
                    "confidence": p.confidence,
                }
                for p in model.watching()
            ],  # fmt: skip
            "healing_kpis": healing_kpis,  # the scored days healed with learning off and on (learning/kpis.py)
            "engine_log_entries": len(log),
            "engine_outcomes": dict(pd.Series([e["outcome"] for e in log if e["step"] == "act"]).value_counts())
            if log
            else {},  # fmt: skip
        },
    }


def to_json(result: dict) -> str:
    return json.dumps(result, default=lambda o: int(o) if hasattr(o, "__int__") else str(o))
