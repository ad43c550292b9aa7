"""Simulate a fleet of hosts and API/LLM channels with daily and weekly rhythm and labelled incidents.

Deterministic by seed. Hosts report the same metrics as the psutil sampler; channels produce gateway
call logs (one row per call, each with a request class in ``task``). Incidents have gradual onsets and
varied magnitudes, some subtle, and each is labelled with the (source, metric) where it shows and its [start, end]:

- ``cpu_spike``: CPU ramps up over minutes to a sustained plateau (and load with it);
- ``memory_leak``: memory rises slowly for hours, then drops when the process is restarted;
- ``latency_surge``: a channel's latency multiplies, with a ramp;
- ``error_burst``: a channel's error rate jumps to breaker-worthy levels;
- ``zombie_process``: zombies accumulate on a host, then are reaped;
- ``hung_process``: a worker's heartbeat stops advancing and its CPU drops to zero;
- ``cascade``: a fault on an upstream host spreads to its dependents after a lag (root labelled);
- ``cost_surge``: a channel's output tokens per call (and so its cost) multiply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.calls import LOG_COLUMNS, channel_source
from rhythm_pipelines.simulate import recurring
from rhythm_pipelines.simulate.recurring import ramp as _ramp

HOST_ROLES = ("db", "api", "web", "worker")
CHANNELS = {  # name: (median latency ms, $ per 1k input tokens, $ per 1k output tokens)
    "gpt-4o": (850.0, 0.0025, 0.010),
    "claude-sonnet": (950.0, 0.003, 0.015),
    "llama-70b": (600.0, 0.0009, 0.0009),
    "mistral-small": (350.0, 0.0002, 0.0006),
    "gemini-flash": (420.0, 0.0001, 0.0004),
    "embed-small": (90.0, 0.00002, 0.0),
}
# the request classes each channel serves today (a hand-made allocation the cost optimiser can improve on)
TASK_MIX = {
    "gpt-4o": {"reasoning": 0.4, "chat": 0.4, "extract": 0.2},
    "claude-sonnet": {"reasoning": 0.5, "chat": 0.3, "extract": 0.2},
    "llama-70b": {"chat": 0.6, "extract": 0.4},
    "mistral-small": {"extract": 1.0},
    "gemini-flash": {"chat": 0.5, "extract": 0.5},
    "embed-small": {"embed": 1.0},
}
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2")
HOST_KINDS = ("cpu_spike", "memory_leak", "zombie_process", "hung_process", "cascade")
CHANNEL_KINDS = ("latency_surge", "error_burst", "cost_surge")


@dataclass(frozen=True)
class SimConfig:
    hosts: int = 6
    channels: int = 4
    regions: int = 2
    days: float = 3.0
    step: str = "1min"
    seed: int = 0
    start: pd.Timestamp | None = None  # default: `days` ending at the current hour
    calls_per_minute: float = 3.0  # per channel and region, at the daily peak
    incidents_per_day: float = 6.0
    warmup_fraction: float = 0.2  # no incident starts in the first part of the run
    recurring: bool = False  # add the recurring causes of simulate/recurring.py (leak, batch cascade, rate limit)


@dataclass
class Simulation:
    config: SimConfig
    metrics: pd.DataFrame
    calls: pd.DataFrame
    incidents: pd.DataFrame
    hosts: list[str] = field(default_factory=list)
    dependencies: dict[str, list[str]] = field(default_factory=dict)

    def write(self, out_dir: Path | str) -> dict[str, Path]:
        """Write ``metrics/sim-<seed>.csv``, ``calls/sim-<seed>.jsonl`` and ``incidents/sim-<seed>.csv``."""
        out = Path(out_dir)
        seed = self.config.seed
        paths = {
            "metrics": out / "metrics" / f"sim-{seed}.csv",
            "calls": out / "calls" / f"sim-{seed}.jsonl",
            "incidents": out / "incidents" / f"sim-{seed}.csv",
        }
        for p in paths.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        m = self.metrics.assign(ts=self.metrics["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        m.drop(columns="tags").to_csv(paths["metrics"], index=False, float_format="%.6g")
        calls = self.calls.assign(timestamp=self.calls["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).drop(columns="ts")
        calls = calls[LOG_COLUMNS]
        calls.to_json(paths["calls"], orient="records", lines=True, double_precision=10)
        inc = self.incidents.assign(
            start=self.incidents["start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end=self.incidents["end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        inc.to_csv(paths["incidents"], index=False)
        return paths


class _Timeline:
    """Places incidents so that none overlap on the same source."""

    def __init__(self, n: int, first: int, rng: np.random.Generator):
        self.n, self.first, self.rng, self.busy = n, first, rng, {}

    def place(self, source: str, length: int, gap: int) -> int | None:
        for _ in range(50):
            a = int(self.rng.integers(self.first, max(self.first + 1, self.n - length - 1)))
            spans = self.busy.setdefault(source, [])
            if all(a + length + gap < s or a > e + gap for s, e in spans):
                spans.append((a, a + length))
                return a
        return None


def simulate(config: SimConfig | None = None) -> Simulation:
    cfg = config or SimConfig()
    rng = np.random.default_rng(cfg.seed)
    step = pd.Timedelta(cfg.step)
    per_min = pd.Timedelta("1min") / step
    start = (
        cfg.start if cfg.start is not None else (pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(days=cfg.days))
    )
    start = pd.Timestamp(start).tz_localize("UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start)
    n = int(pd.Timedelta(days=cfg.days) / step)
    grid = pd.date_range(start, periods=n, freq=step)
    hours = grid.hour.to_numpy() + grid.minute.to_numpy() / 60
    daily = 0.5 - 0.5 * np.cos(2 * np.pi * (hours - 2) / 24)  # trough ~02:00, peak ~14:00 UTC
    weekly = np.where(grid.dayofweek.to_numpy() >= 5, 0.65, 1.0)
    rhythm = daily * weekly

    hosts = [f"{HOST_ROLES[i % len(HOST_ROLES)]}-{i // len(HOST_ROLES) + 1:02d}" for i in range(cfg.hosts)]
    # dependencies: api depends on db, web on api, worker on db
    by_role = {r: [h for h in hosts if h.startswith(r)] for r in HOST_ROLES}
    upstream_role = {"api": "db", "web": "api", "worker": "db"}
    dependents: dict[str, list[str]] = {h: [] for h in hosts}
    for h in hosts:
        role = h.split("-")[0]
        ups = by_role.get(upstream_role.get(role, ""), [])
        if ups:
            dependents[ups[hosts.index(h) % len(ups)]].append(h)

    pairs = [(c, r) for c in list(CHANNELS)[: cfg.channels] for r in REGIONS[: cfg.regions]]
    timeline = _Timeline(n, int(n * cfg.warmup_fraction), rng)
    minutes = lambda m: max(1, int(round(m * per_min)))  # noqa: E731
    incidents: list[dict] = []

    def label(
        a: int, b: int, source: str, metric: str, kind: str, magnitude: float, root: str, cause: str = ""
    ) -> None:
        """Record an incident over grid steps [a, b)."""
        incidents.append(
            dict(
                start=grid[a],
                end=grid[min(b, n) - 1],
                source=source,
                metric=metric,
                kind=kind,
                magnitude=magnitude,
                root=root,
                cause=cause,
            )
        )

    host_fx = {h: {k: np.zeros(n) for k in ("cpu", "mem", "zombie", "hung", "cpu_dep")} for h in hosts}
    chan_fx = {channel_source(c, r): {k: np.zeros(n) for k in ("lat", "err", "tok", "rate")} for c, r in pairs}

    if cfg.recurring and pairs:
        rec_rng = np.random.default_rng([cfg.seed, 11])  # its own stream
        place = recurring.Placement.choose(hosts, dependents, [channel_source(c, r) for c, r in pairs], rec_rng)
        recurring.plan(grid, timeline.first, place, dependents, host_fx, chan_fx, timeline.busy, label, rec_rng)
    total = int(round(cfg.incidents_per_day * cfg.days))
    kinds = [*HOST_KINDS, *CHANNEL_KINDS]
    order = [kinds[j] for j in rng.permutation(len(kinds))]
    for i in range(total):
        kind = order[i % len(order)]
        subtle = rng.random() < 0.3
        if kind in CHANNEL_KINDS:
            if not pairs:
                continue
            c, r = pairs[int(rng.integers(0, len(pairs)))]
            src = channel_source(c, r)
            if kind == "latency_surge":
                length, onset = minutes(rng.uniform(15, 60)), minutes(rng.uniform(3, 10))
                mag = rng.uniform(1.6, 2.2) if subtle else rng.uniform(2.5, 5.0)
                metric, fx_key, value = "latency_ms_p95", "lat", mag - 1
            elif kind == "error_burst":
                length, onset = minutes(rng.uniform(8, 25)), minutes(rng.uniform(1, 4))
                mag = rng.uniform(0.15, 0.3) if subtle else rng.uniform(0.4, 0.85)
                metric, fx_key, value = "error_rate", "err", mag
            else:
                length, onset = minutes(rng.uniform(30, 120)), minutes(rng.uniform(5, 15))
                mag = rng.uniform(2.0, 3.0) if subtle else rng.uniform(4.0, 8.0)
                metric, fx_key, value = "cost_usd", "tok", mag - 1
            a = timeline.place(src, length, minutes(30))
            if a is None:
                continue
            chan_fx[src][fx_key] += value * _ramp(n, a, onset, a + length)
            label(a, a + length, src, metric, kind, round(float(mag), 3), src)
            continue
        h = hosts[int(rng.integers(0, len(hosts)))]
        if kind == "cascade":
            roots = [x for x in hosts if dependents[x]]
            if not roots:
                continue
            h = roots[int(rng.integers(0, len(roots)))]
        if kind in ("cpu_spike", "cascade"):
            length, onset = minutes(rng.uniform(10, 45)), minutes(rng.uniform(2, 6))
            level = rng.uniform(72, 84) if subtle else rng.uniform(86, 98)
            a = timeline.place(h, length, minutes(30))
            if a is None:
                continue
            host_fx[h]["cpu"] = np.maximum(host_fx[h]["cpu"], level * _ramp(n, a, onset, a + length))
            label(a, a + length, h, "cpu_percent", kind, round(float(level), 1), h)
            if kind == "cascade":
                for d in dependents[h]:
                    lag = minutes(rng.uniform(2, 8))
                    da, db = min(a + lag, n - 2), min(a + length + lag, n - 1)
                    bump = rng.uniform(25, 40)
                    host_fx[d]["cpu_dep"] += bump * _ramp(n, da, onset, db)
                    timeline.busy.setdefault(d, []).append((da, db))
                    label(da, db, d, "cpu_percent", "cascade", round(float(bump), 1), h)
        elif kind == "memory_leak":
            length = minutes(rng.uniform(120, 480))
            rise = rng.uniform(8, 14) if subtle else rng.uniform(18, 35)
            a = timeline.place(h, length, minutes(60))
            if a is None:
                continue
            host_fx[h]["mem"] += rise * _ramp(n, a, length, a + length)
            label(a, a + length, h, "mem_percent", kind, round(float(rise), 1), h)
        elif kind == "zombie_process":
            length = minutes(rng.uniform(10, 90))
            count = int(rng.integers(1, 3) if subtle else rng.integers(3, 9))
            a = timeline.place(h + "#z", length, minutes(30))
            if a is None:
                continue
            host_fx[h]["zombie"] += np.ceil(count * _ramp(n, a, max(1, length // 3), a + length))
            label(a, a + length, h, "zombie_count", kind, count, h)
        else:  # hung_process
            length = minutes(rng.uniform(10, 40))
            a = timeline.place(h + "#w", length, minutes(30))
            if a is None:
                continue
            host_fx[h]["hung"][a : a + length] = 1.0
            label(a, a + length, f"{h}/proc/worker", "heartbeat_age_s", kind, round(length / per_min, 1), h)

    metrics = _host_metrics(cfg, rng, grid, rhythm, hosts, host_fx, step)
    calls = _calls(cfg, rng, grid, daily, weekly, pairs, chan_fx, per_min)
    inc = pd.DataFrame(incidents, columns=["start", "end", "source", "metric", "kind", "magnitude", "root", "cause"])
    inc = inc.sort_values(["start", "source"], ignore_index=True)
    return Simulation(cfg, metrics, calls, inc, hosts, {h: d for h, d in dependents.items() if d})


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    eps = rng.normal(0, sigma, n)
    out = np.empty(n)
    acc = 0.0
    for i in range(n):  # n is a few thousand per series
        acc = phi * acc + eps[i]
        out[i] = acc
    return out


def _host_metrics(cfg, rng, grid, rhythm, hosts, fx, step) -> pd.DataFrame:
    n = len(grid)
    frames = []
    step_s = step.total_seconds()
    for h in hosts:
        f = fx[h]
        base, amp = rng.uniform(12, 25), rng.uniform(20, 35)
        cpu = base + amp * rhythm + _ar1(rng, n, 0.8, 2.5) + f["cpu_dep"]
        cpu = np.where(f["cpu"] > 0, np.maximum(cpu, f["cpu"] + rng.normal(0, 1.5, n)), cpu)
        cpu = np.clip(cpu, 0.5, 100)
        mem = np.clip(rng.uniform(35, 50) + 8 * rhythm + _ar1(rng, n, 0.95, 0.4) + f["mem"], 1, 99.5)
        swap = np.clip(2 + np.maximum(0, mem - 85) * 2 + rng.normal(0, 0.2, n), 0, 100)
        disk = np.clip(rng.uniform(30, 60) + np.linspace(0, rng.uniform(0.5, 2), n) + rng.normal(0, 0.05, n), 0, 100)
        load1 = np.clip(cpu / 100 * 2 * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1, n), 0, None)
        net = np.clip((2e5 + 3e6 * rhythm) * np.exp(rng.normal(0, 0.15, n)), 0, None)
        procs = np.round(rng.uniform(140, 220) + 10 * rhythm + rng.normal(0, 2, n))
        zombies = f["zombie"]
        hung = f["hung"] > 0
        # a worker process: its heartbeat age is a sawtooth under 10 s, growing while hung
        age = np.where(hung, 0.0, rng.uniform(0, 10, n))
        run = 0.0
        for i in np.flatnonzero(hung):
            run = run + step_s if i > 0 and hung[i - 1] else step_s
            age[i] = run
        w_cpu = np.where(hung, 0.0, np.clip(3 + 10 * rhythm + rng.normal(0, 1, n), 0.1, None))
        w_rss = np.clip(2.5e8 + 5e7 * rhythm + rng.normal(0, 4e6, n), 1e7, None)
        for metric, values, src in (
            ("cpu_percent", cpu, h),
            ("mem_percent", mem, h),
            ("swap_percent", swap, h),
            ("disk_percent", disk, h),
            ("load1", load1, h),
            ("net_recv_bytes_per_s", net, h),
            ("process_count", procs + zombies, h),
            ("zombie_count", zombies, h),
            ("heartbeat_age_s", age, f"{h}/proc/worker"),
            ("proc_cpu_percent", w_cpu, f"{h}/proc/worker"),
            ("proc_rss_bytes", w_rss, f"{h}/proc/worker"),
        ):
            frames.append(pd.DataFrame({"ts": grid, "source": src, "metric": metric, "value": values}))
    out = pd.concat(frames, ignore_index=True)
    out["tags"] = None
    return out


def _calls(cfg, rng, grid, daily, weekly, pairs, fx, per_min) -> pd.DataFrame:
    # effects are on the metric grid; calls are generated per minute
    minute_grid = pd.date_range(grid[0], grid[-1], freq="1min")
    idx = np.minimum(np.arange(len(minute_grid)) * per_min, len(grid) - 1).astype(int) if per_min else None
    out = []
    for c, r in pairs:
        src = channel_source(c, r)
        med, p_in, p_out = CHANNELS[c]
        region_factor = 1.0 + 0.15 * REGIONS.index(r)
        rate = cfg.calls_per_minute * (0.2 + 0.8 * daily[idx]) * weekly[idx] * (1 + fx[src]["rate"][idx])
        counts = rng.poisson(rate)
        total = int(counts.sum())
        minute_of = np.repeat(np.arange(len(minute_grid)), counts)
        gi = idx[minute_of]
        ts = minute_grid[minute_of] + pd.to_timedelta(rng.uniform(0, 60, total), unit="s")
        lat = (
            med * region_factor * np.exp(rng.normal(0, 0.35, total)) * (1 + 0.3 * daily[gi]) * (1 + fx[src]["lat"][gi])
        )
        p_err = 0.01 + fx[src]["err"][gi]
        u = rng.random(total)
        status = np.where(u < p_err, "error", np.where(u < p_err + 0.003, "timeout", "ok"))
        lat = np.where(status == "timeout", 30_000.0, np.where(status == "error", lat * 0.3, lat))
        tok_in = np.round(np.exp(rng.normal(6.5, 0.6, total))).astype("int64")
        tok_out = np.round(np.exp(rng.normal(5.3, 0.7, total)) * (1 + fx[src]["tok"][gi])).astype("int64")
        tok_out = np.where(status == "ok", tok_out, 0)
        cost = tok_in / 1000 * p_in + tok_out / 1000 * p_out
        out.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "channel": c,
                    "region": r,
                    "latency_ms": np.round(lat, 1),
                    "status": status,
                    "tokens_in": tok_in,
                    "tokens_out": tok_out,
                    "cost_usd": np.round(cost, 8),
                }
            )
        )
    calls = pd.concat(out, ignore_index=True).sort_values("ts", kind="stable", ignore_index=True)
    task_rng = np.random.default_rng([cfg.seed, 7])  # its own stream: tasks leave every other draw unchanged
    calls["task"] = ""
    for c, mix in TASK_MIX.items():
        on = (calls["channel"] == c).to_numpy()
        calls.loc[on, "task"] = task_rng.choice(list(mix), size=int(on.sum()), p=list(mix.values()))
    calls.insert(1, "request_id", [f"sim{cfg.seed}-{i:08d}" for i in range(len(calls))])
    return calls
