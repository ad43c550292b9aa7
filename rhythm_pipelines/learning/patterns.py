"""Failure patterns: incidents clustered by root cause, each with its precursor and the fix that worked.

Each incident becomes a feature vector: its kind, its root (the first cause in lineage and time order), its
message's template (one-hot, weighted so that different kinds, roots or templates never share a pattern),
its time of day (on the circle), its log duration and the load and trend of its root's host before onset.
Agglomerative clustering (scikit-learn, average linkage, a distance threshold) groups them; the input is in
time order, so the same incidents always give the same patterns, and a pattern's id is a hash of its kind,
root and template (``#2``… when one signature splits), so ids survive re-materialisation.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering

from rhythm_pipelines.learning import precursors
from rhythm_pipelines.learning.incidents import ALERT_ONLY
from rhythm_pipelines.learning.lineage import Lineage
from rhythm_pipelines.learning.signals import Signals, host_of
from rhythm_pipelines.learning.templates import mine

HARD = 10.0  # weight of the one-hot parts: further apart than any two times of day can be
DISTANCE = 1.0
CONFIDENCE_FLOOR = 0.3  # below this a pattern's precursor no longer acts
MISS_FACTOR = 0.7  # a prevention the breach followed anyway multiplies its pattern's confidence by this


@dataclass
class Pattern:
    pattern_id: str
    kind: str
    root: str  # the anchor: the host or channel its incidents start from
    template: str
    members: list[str]
    first_seen: pd.Timestamp
    last_seen: pd.Timestamp
    recurrence_min: float | None  # the median gap between members
    fix: str
    fix_params: dict
    precursor: precursors.Precursor | None = None
    confidence: float = 0.0
    label: str = ""  # an operator's name for it
    sources: list[str] = field(default_factory=list)
    occurrences: int = 1  # members apart by more than 15 min

    @property
    def count(self) -> int:
        return len(self.members)

    def row(self) -> dict:
        p = self.precursor
        return {
            "pattern_id": self.pattern_id,
            "label": self.label,
            "kind": self.kind,
            "root_cause": self.root,
            "template": self.template,
            "count": self.count,
            "occurrences": self.occurrences,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "recurrence_min": self.recurrence_min,
            "fix": self.fix,
            "fix_params": json.dumps(self.fix_params, sort_keys=True),
            "precursor": p.describe() if p else "",
            "precursor_json": json.dumps(p.to_dict()) if p else "",
            "lead_min": p.lead_min if p else None,
            "confidence": self.confidence,
            "sources": ",".join(self.sources),
            "members": json.dumps(self.members),
        }

    @classmethod
    def from_row(cls, r: dict) -> Pattern:
        pj = r.get("precursor_json") or ""
        rec = r.get("recurrence_min")
        return cls(
            r["pattern_id"], r["kind"], r["root_cause"], r["template"], json.loads(r["members"]),
            pd.Timestamp(r["first_seen"]), pd.Timestamp(r["last_seen"]),
            None if rec is None or rec != rec else float(rec), r["fix"], json.loads(r["fix_params"] or "{}"),
            precursors.Precursor.from_dict(json.loads(pj)) if pj else None, float(r["confidence"] or 0),
            r.get("label") or "", [s for s in (r.get("sources") or "").split(",") if s],
            int(r.get("occurrences") or 1),
        )  # fmt: skip


def _pre_onset(signals: Signals | None, host: str, start: pd.Timestamp) -> tuple[float, float]:
    """The host's CPU level (0-1) in the 30 min before onset and its trend (change over them, 0-1)."""
    if signals is None or not signals.has(host, "cpu_percent") or not len(signals.index):
        return 0.0, 0.0
    v = signals.series(host, "cpu_percent")
    p = signals.position(start)
    w = v[max(0, p - 30) : p]
    w = w[np.isfinite(w)]
    if len(w) < 2:
        return 0.0, 0.0
    return float(w.mean() / 100), float((w[-1] - w[0]) / 100)


def features(incidents: pd.DataFrame, roots: pd.Series, signals: Signals | None) -> np.ndarray:
    """One row per incident (see the module docstring)."""
    cols = []
    for values in (incidents["kind"], roots, incidents["template_id"]):
        for v in sorted(set(values)):
            cols.append(HARD * (np.asarray(values) == v))
    minutes = incidents["start"].dt.hour * 60 + incidents["start"].dt.minute
    ang = minutes.to_numpy() / 1440 * 2 * np.pi
    dur = (incidents["end"] - incidents["start"]).dt.total_seconds().clip(lower=60).to_numpy()
    pre = np.array([_pre_onset(signals, r, s) for r, s in zip(roots.map(host_of), incidents["start"], strict=True)])
    cols += [0.5 * np.cos(ang), 0.5 * np.sin(ang), 0.5 * np.log10(dur / 60)]
    cols += [pre[:, 0], pre[:, 1]] if len(pre) else [np.zeros(0), np.zeros(0)]
    return np.column_stack(cols).astype(float) if cols else np.zeros((len(incidents), 0))


def cluster(x: np.ndarray) -> np.ndarray:
    if len(x) < 2:
        return np.zeros(len(x), dtype=int)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=DISTANCE, linkage="average")
    return model.fit_predict(x)


@dataclass
class Model:
    lineage: Lineage
    patterns: list[Pattern]
    trained_until: pd.Timestamp | None = None

    def recurring(self) -> list[Pattern]:
        """Patterns seen at least twice (a cascade's root and dependents at once are one occurrence)."""
        return [p for p in self.patterns if p.occurrences >= 2]

    def watching(self) -> list[Pattern]:
        """Patterns whose precursor acts: learned, confident enough, with a fix that is more than an alert."""
        return [p for p in self.patterns if acts(p)]


def acts(p: Pattern) -> bool:
    return p.precursor is not None and p.confidence >= CONFIDENCE_FLOOR and p.fix not in ALERT_ONLY


def learn(incidents: pd.DataFrame, signals: Signals | None, until: pd.Timestamp | None = None) -> Model:
    """Patterns of ``incidents`` (all before ``until``, whose signals alone the precursors read)."""
    inc = incidents.sort_values(["start", "source"], kind="stable", ignore_index=True)
    lineage = Lineage.learn(inc)
    if inc.empty:
        return Model(lineage, [], until)
    mined = mine(inc["message"].tolist())
    inc = inc.assign(template_id=[m[0] for m in mined], template=[m[1] for m in mined])
    roots = lineage.roots(inc)
    labels = cluster(features(inc, roots, signals))
    pos = signals.position(until) if signals is not None and until is not None and len(signals.index) else 0
    if signals is not None and until is not None and len(signals.index) and until > signals.index[-1]:
        pos = len(signals.index)
    seen: Counter = Counter()
    patterns = []
    order = sorted(set(labels), key=lambda c: int(np.flatnonzero(labels == c)[0]))  # by first member
    for c in order:
        g = inc[labels == c]
        root = Counter(roots[g.index]).most_common(1)[0][0]
        kind = g["kind"].iloc[0]
        sig = f"{kind}|{root}|{g['template_id'].iloc[0]}"
        seen[sig] += 1
        pid = hashlib.sha256(sig.encode()).hexdigest()[:8] + (f"#{seen[sig]}" if seen[sig] > 1 else "")
        fixes = Counter(zip(g["fix"], g["fix_params"], strict=True)).most_common(1)[0][0]
        gaps = g["start"].diff().dt.total_seconds().dropna() / 60
        pat = Pattern(pid, kind, root, g["template"].iloc[0], g["incident_id"].tolist(), g["start"].min(),
                      g["start"].max(), float(gaps.median()) if len(gaps) else None, fixes[0], json.loads(fixes[1]),
                      sources=sorted(set(g["source"])),
                      occurrences=len(precursors.occurrences(list(g["start"]))))  # fmt: skip
        if signals is not None and pos and pat.occurrences >= 2:
            same = inc[(inc["kind"] == kind) & ((roots == root) | (inc["host"] == root) | (inc["source"] == root))]
            quiet = precursors.quiet_mask(signals, list(zip(same["breach"], same["end"], strict=True)))
            metrics = sorted(set(g["metric"].fillna("")) - {""}) or [""]  # recorded events name no metric
            pat.precursor = precursors.learn(
                signals, root, metrics, list(g["breach"]), list(same["breach"]), pos, quiet
            )
            if pat.precursor is not None:
                pat.confidence = round(pat.precursor.recall * (1 - pat.precursor.unneeded), 3)
        patterns.append(pat)
    return Model(lineage, patterns, until)


def assign(model: Model, incident: dict, root: str) -> Pattern | None:
    """The learned pattern an incident belongs to: same kind and root, the nearest by time of day."""
    same = [p for p in model.patterns if p.kind == incident["kind"] and p.root == root]
    if not same:
        return None
    return max(same, key=lambda p: p.count)
