"""Root causes: the first cause in lineage and time order.

Lineage is learned from the incidents themselves: (host A, kind a) leads (host B, kind b) when, at least
``MIN_PAIRS`` times, an incident of kind a on A started within ``LAG`` before one of kind b on B, and more often
than the other way round (a database whose overload shows on its API hosts minutes later); kinds keep a leak
that happens to start after a database spike from being blamed on it. Dagster's own asset lineage, when
given, adds edges. An incident whose upstream had an incident within ``LAG`` before it takes that incident's
root; otherwise its root is itself, read the way the training labels read roots of its kind (its host, or
its source), or the label its (kind, source) always had in training.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.learning.signals import host_of

LAG = pd.Timedelta(minutes=15)
MIN_PAIRS = 2


@dataclass
class Lineage:
    upstream: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)  # (host, kind) -> leaders
    relation: dict[str, str] = field(default_factory=dict)  # kind -> "host" | "source"
    fixed: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, source) -> a root it always had

    @classmethod
    def learn(cls, incidents: pd.DataFrame, dagster_upstream: Mapping[str, set[str]] | None = None) -> Lineage:
        inc = incidents.sort_values("start", kind="stable")
        starts = inc["start"].to_list()
        nodes = list(zip(inc["host"], inc["kind"], strict=True))
        pairs: Counter = Counter()
        for i, (t, a) in enumerate(zip(starts, nodes, strict=True)):
            for j in range(i + 1, len(starts)):
                if starts[j] - t > LAG:
                    break
                if nodes[j][0] != a[0] and starts[j] > t:
                    pairs[(a, nodes[j])] += 1
        upstream: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for (a, b), n in pairs.items():
            if n >= MIN_PAIRS and n > pairs.get((b, a), 0):
                upstream[b].add(a)
        for b, ups in (dagster_upstream or {}).items():  # asset lineage: any failure upstream leads
            upstream[(b, "task_failure_pattern")] |= {(u, "task_failure_pattern") for u in ups}
        relation, fixed = {}, {}
        labelled = inc[inc["root"].astype(str) != ""] if "root" in inc else inc.iloc[:0]
        for kind, g in labelled.groupby("kind"):
            as_host = (g["root"] == g["host"]).sum()
            as_source = (g["root"] == g["source"]).sum()
            relation[kind] = "source" if as_source > as_host else "host"
        for (kind, source), g in labelled.groupby(["kind", "source"]):
            top, n = Counter(g["root"]).most_common(1)[0]
            if n >= max(2, 0.6 * len(g)) and top not in (host_of(source), source):
                fixed[(kind, source)] = top
        return cls(dict(upstream), relation, fixed)

    def own(self, kind: str, source: str) -> str:
        if (kind, source) in self.fixed:
            return self.fixed[(kind, source)]
        return source if self.relation.get(kind) == "source" else host_of(source)

    def roots(self, incidents: pd.DataFrame) -> pd.Series:
        """The root of each incident (by index), walking back through incidents that led it."""
        inc = incidents.sort_values("start", kind="stable")
        out: dict = {}
        recent: list[tuple[pd.Timestamp, tuple[str, str], object]] = []  # (start, (host, kind), index) within LAG
        for idx, r in zip(inc.index, inc.itertuples(index=False), strict=True):
            recent = [x for x in recent if r.start - x[0] <= LAG]
            ups = self.upstream.get((r.host, r.kind), set())
            lead = [x for x in recent if x[1] in ups and x[0] < r.start]
            out[idx] = out[lead[0][2]] if lead else self.own(r.kind, r.source)
            recent.append((r.start, (r.host, r.kind), idx))
        return pd.Series(out).reindex(incidents.index)
