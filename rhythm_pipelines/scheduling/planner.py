"""Place deferrable runs in the next hours so each host's predicted load stays under its target.

Input: per host, the load predicted without the planned runs (CPU and memory in percent, one value per
``slot``, its upper interval when the caller wants safety), and the runs to place, each with its nominal
time, cost and priority. Rules, in this order:

1. high-priority runs start at their nominal time, whatever the load (they are never delayed);
2. the others are placed by earliest deadline first (normal before low at equal deadlines), each at the
   start nearest its nominal time that keeps its host under the targets for its whole duration and a ``guard``
   after it (a run may overrun its expected duration: it must not spill into a predicted peak), between
   ``advance`` before its nominal time (and not before the plan starts) and its deadline; ties go earlier;
3. when no start leaves room for the guard, a start where the run itself stays under target will do; a run
   no start of whose window keeps the host under target takes the least overloaded start (its deadline
   still holds: a missed deadline is worse than a busy hour); a run whose deadline cannot be met starts as
   early as it may, and says so;
4. ``fill``: deadline-free low-priority work (a backlog's chunks) goes last, each at the earliest start that
   keeps its host under target with the guard; a chunk that fits nowhere in the horizon is left unplaced
   (``Plan.unplaced``: it waits for the next plan; a backlog never forces an overload).

Runs already ``running`` count as load and take their workers. With ``workers``, a host runs at most that many
runs at once, and deferrable work leaves ``reserve`` of them free for high-priority runs nobody planned.

Every placement says why it is where it is. The plan is a pure function of its inputs: re-planning with a
moved forecast gives the new plan, and a run's identity (``Run.key``, its job and nominal time) does not
change with its slot, so the launching sensor's ``run_key`` launches each run once across re-plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SLOT = pd.Timedelta(minutes=5)
HORIZON = pd.Timedelta(hours=24)
ADVANCE = pd.Timedelta(hours=2)  # how far before its nominal time a deferrable run may be pulled
GUARD = pd.Timedelta(minutes=10)  # a run may overrun its expected duration: this long after it stays under target
RANK = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True)
class Targets:
    cpu: float = 80.0  # percent of a host
    mem: float = 75.0


@dataclass(frozen=True)
class Run:
    """One run to place. ``cpu``/``mem``: percent of the host it adds while it lasts."""

    job: str
    host: str
    nominal: pd.Timestamp
    duration: pd.Timedelta
    cpu: float
    mem: float = 0.0
    priority: str = "normal"
    deadline: pd.Timestamp | None = None

    @property
    def key(self) -> str:
        """The run's identity, the same whatever slot a plan gives it: the launch's run_key."""
        return f"{self.job}|{self.nominal.isoformat()}"


@dataclass(frozen=True)
class Placement:
    run: Run
    start: pd.Timestamp
    end: pd.Timestamp
    peak_cpu: float  # the host's predicted CPU at its busiest slot while the run lasts, the run included
    peak_mem: float
    over_target: bool
    reason: str

    @property
    def moved(self) -> pd.Timedelta:
        return self.start - self.run.nominal


@dataclass
class Plan:
    start: pd.Timestamp
    slots: pd.DatetimeIndex
    targets: Targets
    baseline: dict[str, pd.DataFrame]  # host -> cpu, mem per slot, without the planned runs
    load: dict[str, pd.DataFrame]  # host -> cpu, mem per slot, with them
    placements: list[Placement] = field(default_factory=list)
    unplaced: list[Run] = field(default_factory=list)  # backlog chunks with no room in the horizon

    def due(self, now: pd.Timestamp) -> list[Placement]:
        """The placements whose start has come (the sensor launches them; their run_key dedups)."""
        return [p for p in self.placements if p.start <= now]

    def table(self) -> pd.DataFrame:
        rows = [
            {
                "job": p.run.job,
                "host": p.run.host,
                "priority": p.run.priority,
                "nominal": p.run.nominal,
                "start": p.start,
                "end": p.end,
                "moved_min": p.moved / pd.Timedelta(minutes=1),
                "deadline": p.run.deadline,
                "peak_cpu": round(p.peak_cpu, 1),
                "over_target": p.over_target,
                "reason": p.reason,
                "run_key": p.run.key,
            }  # fmt: skip
            for p in self.placements
        ]
        return pd.DataFrame(rows)

    def peaks(self) -> pd.DataFrame:
        """(host, slot) where the baseline alone is forecast over the CPU target, and whether the plan kept
        deferrable work out of them (a pre-empted peak)."""
        rows = []
        for host, base in self.baseline.items():
            over = base.index[base["cpu"].to_numpy() > self.targets.cpu]
            for slot in over:
                deferred_here = [
                    p for p in self.placements
                    if p.run.host == host and p.run.priority != "high" and p.start <= slot < p.end
                ]  # fmt: skip
                rows.append({"host": host, "slot": slot, "preempted": not deferred_here})
        return pd.DataFrame(rows, columns=["host", "slot", "preempted"])


def _fmt(d: pd.Timedelta) -> str:
    minutes = int(round(abs(d) / pd.Timedelta(minutes=1)))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def plan(
    baseline: dict[str, pd.DataFrame],
    runs: Sequence[Run],
    start: pd.Timestamp,
    horizon: pd.Timedelta = HORIZON,
    targets: Targets | None = None,
    advance: pd.Timedelta = ADVANCE,
    guard: pd.Timedelta = GUARD,
    running: Sequence[tuple[Run, pd.Timestamp]] = (),
    fill: Sequence[Run] = (),
    workers: int | None = None,
    reserve: int = 0,
) -> Plan:
    """Place ``runs`` over ``[start, start + horizon)`` against ``baseline`` (see the module docstring).

    ``baseline``: per host a frame indexed by time with ``cpu`` and ``mem`` columns; it is resampled to the
    plan's slots (forward filled; a host missing from it counts as idle). ``running``: (run, its start)."""
    targets = targets or Targets()
    start = pd.Timestamp(start).floor(SLOT)
    slots = pd.date_range(start, start + horizon, freq=SLOT, inclusive="left")
    n = len(slots)
    base: dict[str, pd.DataFrame] = {}
    every = [*runs, *fill, *(r for r, _ in running)]
    for host in sorted({r.host for r in every} | set(baseline)):
        frame = baseline.get(host)
        if frame is None or frame.empty:
            base[host] = pd.DataFrame({"cpu": 0.0, "mem": 0.0}, index=slots)
            continue
        f = frame[["cpu", "mem"]].astype("float64").sort_index()
        f = f.reindex(f.index.union(slots)).ffill().bfill().reindex(slots)
        base[host] = f.fillna(0.0)
    cpu = {h: f["cpu"].to_numpy().copy() for h, f in base.items()}
    mem = {h: f["mem"].to_numpy().copy() for h, f in base.items()}
    busy = {h: np.zeros(n, dtype=np.int64) for h in base}  # runs at once per slot
    room = (workers - reserve) if workers is not None else None  # what deferrable work may take
    out = Plan(start, slots, targets, base, {})

    def index(t: pd.Timestamp) -> int:
        return int((pd.Timestamp(t) - start) // SLOT)

    def width(r: Run) -> int:
        return max(1, int(np.ceil(r.duration / SLOT)))

    def place(r: Run, i: int, reason: str, at: pd.Timestamp | None = None) -> None:
        begin = at if at is not None else start + i * SLOT
        lo = min(max(i, 0), n)
        hi = max(lo, min(int(np.ceil((begin + r.duration - start) / SLOT)), n))
        if at is not None:  # a run still going holds at least the slot of now, however long it overran
            hi = max(hi, min(lo + 1, n))
        cpu[r.host][lo:hi] += r.cpu
        mem[r.host][lo:hi] += r.mem
        busy[r.host][lo:hi] += 1
        peak_c = float(cpu[r.host][lo:hi].max()) if hi > lo else r.cpu
        peak_m = float(mem[r.host][lo:hi].max()) if hi > lo else r.mem
        over = peak_c > targets.cpu + 1e-9 or peak_m > targets.mem + 1e-9
        out.placements.append(Placement(r, begin, begin + r.duration, peak_c, peak_m, over, reason))

    pad = int(np.ceil(guard / SLOT))

    def overshoot(r: Run, i: int, padded: bool = True) -> float:
        lo, hi = max(i, 0), min(i + width(r) + (pad if padded else 0), n)
        if hi <= lo:
            return 0.0
        c = (cpu[r.host][lo:hi] + r.cpu - targets.cpu).max()
        m = (mem[r.host][lo:hi] + r.mem - targets.mem).max()
        return float(max(c, m, 0.0))

    def why_not(r: Run, i: int, tight: bool) -> str:
        """What the host would reach with ``r`` at ``i``: the resource over its target, during the run or,
        when only then, during the guard after it; or that its workers are all taken."""
        if not free(r, i):
            return f"all its {room} worker slot(s) for deferrable work taken"
        for extra, overrun in ((0, ""), (0 if tight else pad, f" if it overran by {_fmt(guard)}")):
            window = slice(max(i, 0), min(i + width(r) + extra, n))
            c = float(cpu[r.host][window].max(initial=0.0)) + r.cpu
            m = float(mem[r.host][window].max(initial=0.0)) + r.mem
            if c > targets.cpu:
                return f"{c:.0f} % CPU{overrun} (target {targets.cpu:.0f} %)"
            if m > targets.mem:
                return f"{m:.0f} % memory{overrun} (target {targets.mem:.0f} %)"
        return "no room at its time"

    def free(r: Run, i: int) -> bool:
        """A deferrable run starting at ``i`` finds a slot for its whole duration."""
        return room is None or bool((busy[r.host][max(i, 0) : min(i + width(r), n)] < room).all())

    for r, began in running:
        place(r, int((began - start) // SLOT), "running", at=began)
    out.placements.clear()  # running runs are load, not part of the plan

    for r in sorted((r for r in runs if r.priority == "high"), key=lambda r: (r.nominal, r.job)):
        due = max(index(r.nominal.floor(SLOT)), 0)  # one due before the plan starts runs now
        place(r, due, "high priority: runs at its time, never moved")

    deferrable = [r for r in runs if r.priority != "high"]
    end_of_horizon = start + horizon
    order = sorted(deferrable, key=lambda r: (r.deadline or end_of_horizon, RANK.get(r.priority, 1), r.nominal, r.job))
    for r in order:
        nominal = index(r.nominal.floor(SLOT))
        earliest = max(index(r.nominal - advance), 0)
        latest_end = index(r.deadline) if r.deadline is not None else n
        latest = latest_end - width(r)
        if latest < earliest:
            why = f"its deadline {r.deadline:%H:%M} cannot be met from {slots[0]:%H:%M}: as early as it may"
            place(r, max(earliest, 0), why)
            continue
        candidates = sorted(range(earliest, latest + 1), key=lambda i: (abs(i - nominal), i))
        slotted = [i for i in candidates if free(r, i)] or candidates
        fits = next((i for i in slotted if overshoot(r, i) == 0.0), None)
        tight = ""
        if fits is None:  # no room for an overrun anywhere: a start where the run itself fits will do
            fits = next((i for i in slotted if overshoot(r, i, padded=False) == 0.0), None)
            tight = f" (no room left for it to overrun by {_fmt(guard)})"
        if fits is None:
            best = min(slotted, key=lambda i: (overshoot(r, i), abs(i - nominal), i))
            place(r, best, f"no start before its deadline keeps {r.host} under target: the least overloaded")
            continue
        if fits == nominal:
            place(r, fits, "at its time: the host stays under target" + tight)
            continue
        when = "earlier" if fits < nominal else "later"
        place(r, fits, f"moved {_fmt((fits - nominal) * SLOT)} {when}: at its time {r.host} would reach "
                       f"{why_not(r, nominal, bool(tight))}" + tight)  # fmt: skip
    after: dict[tuple, int] = {}  # load only grows: a chunk like the last one fits no earlier than it did
    for r in fill:
        shape = (r.host, r.duration, r.cpu, r.mem)
        first = max(index(r.nominal.floor(SLOT)), after.get(shape, 0), 0)
        fits = next((i for i in range(first, n) if free(r, i) and overshoot(r, i) == 0.0), None)
        if fits is None:
            out.unplaced.append(r)
            after[shape] = n
        else:
            place(r, fits, "backlog: the earliest start with room under target")
            after[shape] = fits
    out.placements.sort(key=lambda p: (p.start, p.run.job))
    out.load = {h: pd.DataFrame({"cpu": cpu[h], "mem": mem[h]}, index=slots) for h in base}
    return out
