"""``rhythm chaos run``: real incidents on this machine, in a sandbox, against a real Dagster daemon.

The sandbox is a temporary directory with its own ``DAGSTER_HOME`` (queued run coordinator, one healing run
per target), store, healing state and a chaos playbook file: the shipped playbooks with the **chaos
profile** (:data:`CHAOS_PROFILE`: detection windows of seconds instead of minutes, a 2 s host sampler, short
cooldowns) and allowlists that name only this run's workloads (their command lines carry the sandbox tag).
A bystander process under load, not allowlisted, runs throughout. Each scenario starts an incident, waits
for the healing run the sensors launch (detection) and for its verified resolution in the healing log, then
cleans up. The daemon is restarted once half-way, to show that no event gets a second run. The audit
(``chaos/audit.py``) never reads the healing log: process snapshots before and after, a decoy that records
every signal it gets, canary files inside and outside the sandbox, and healing runs counted per event from
the instance.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rhythm_pipelines.chaos.audit import (
    AuditResult,
    CanaryTree,
    judge,
    process_snapshot,
    runs_per_event,
    signalled_decoys,
)
from rhythm_pipelines.chaos.channel import FAIL, OK, SLOW, ChannelServer, Gateway
from rhythm_pipelines.healing.playbooks import default_text

CHAOS_PROFILE: dict[str, dict[str, Any]] = {
    "detectors": {
        "cpu_sustain_s": 10,
        "stale_s": 15,
        "leak_window_s": 60,
        "leak_min_points": 8,
        "leak_min_rss_frac_per_h": 10,  # a minute's window: a process warming up grows a few x per hour...
        "leak_min_mem_pct_per_h": 60,  # ...and the host's memory a few points (the leak: 25 MB/s, ~375 %/h here)
        "leak_p_value": 0.001,
        "leak_horizon_s": 1200,  # the leak fills the host in minutes; a warm-up's point a minute would not
        "latency_window_s": 10,
        "latency_baseline_s": 50,
        "latency_min_calls": 5,
        "failure_window_s": 300,
        "hung_after_s": 5,
        "zombie_persist_s": 3,
        "cascade_window_s": 300,
        "temp_max_bytes": 50_000_000,
        "breaker_open_s": 5,
        "breaker_history_s": 60,
    },
    "safety": {"cooldown_s": 5, "max_actions_per_hour": 300, "flap_max_events": 10},
    "verify": {"wait_s": 1, "timeout_s": 15},
}
SAMPLE_INTERVAL_S = 2  # the chaos host sampler; the healing sensors keep their default 10 s
SCENARIOS = (
    "cpu_spike",
    "memory_leak",
    "zombie",
    "hung_process",
    "temp_flood",
    "task_failure_pattern",
    "circuit_breaker",
    "high_latency",
    "cascade",
    "critical",
)
CHANNELS = {"breaker": "chaos-a@local", "latency": "chaos-b@local"}


@dataclass
class Sandbox:
    root: Path
    tag: str = field(default_factory=lambda: f"rhythm-chaos-{uuid.uuid4().hex[:10]}")

    def __post_init__(self) -> None:
        for d in (self.dagster_home, self.healing_dir, self.chaos_dir, self.tmp_root, self.cache_dir, self.hb_dir):
            d.mkdir(parents=True, exist_ok=True)

    dagster_home = property(lambda self: self.root / "dagster_home")
    rhythm_home = property(lambda self: self.root / "rhythm")
    store_path = property(lambda self: self.root / "rhythm" / "metrics.db")
    healing_dir = property(lambda self: self.root / "rhythm" / "healing")
    chaos_dir = property(lambda self: self.root / "rhythm" / "chaos")
    tmp_root = property(lambda self: self.root / "sandbox" / "tmp")
    cache_dir = property(lambda self: self.root / "sandbox" / "cache")
    hb_dir = property(lambda self: self.root / "sandbox" / "heartbeats")
    playbooks = property(lambda self: self.root / "chaos_playbooks.yaml")
    routes_file = property(lambda self: self.root / "rhythm" / "healing" / "routes.json")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "RHYTHM_HOME": str(self.rhythm_home),
            "RHYTHM_STORE": "sqlite",
            "RHYTHM_SQLITE_PATH": str(self.store_path),
            "RHYTHM_HEALING_DIR": str(self.healing_dir),
            "RHYTHM_PLAYBOOKS": str(self.playbooks),
            "RHYTHM_CHAOS": "1",
            "RHYTHM_CHAOS_DIR": str(self.chaos_dir),
            "RHYTHM_SAMPLE_INTERVAL_S": str(SAMPLE_INTERVAL_S),
            "RHYTHM_MODEL_REGISTRY": str(self.rhythm_home / "models"),
        }

    def write_config(self) -> None:
        (self.dagster_home / "dagster.yaml").write_text(
            yaml.safe_dump(
                {
                    "run_coordinator": {
                        "module": "dagster._core.run_coordinator",
                        "class": "QueuedRunCoordinator",
                        "config": {
                            "max_concurrent_runs": 4,
                            "dequeue_interval_seconds": 1,
                            "tag_concurrency_limits": [
                                {"key": "rhythm/target", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                            ],
                        },
                    },
                    "sensors": {"use_threads": True, "num_workers": 3},
                    "telemetry": {"enabled": False},
                }
            )
        )
        self.playbooks.write_text(chaos_playbooks(self))


def cpu_bar(background: list[float]) -> float:
    """The cpu_spike bar for this run: over the machine's own background while the suite warms up (10 points over
    its p90, and 3 over its p99), between the profile's 80 % and 95 %, so a machine busy with other work does not
    raise the scenario's event before the scenario starts, nor hide it."""
    if not background:
        return 80.0
    over = max(np.percentile(background, 90) + 10.0, np.percentile(background, 99) + 3.0)  # spiky: its peaks too
    return float(min(95.0, max(80.0, over)))


def chaos_playbooks(sb: Sandbox, cpu_percent: float | None = None) -> str:
    """The shipped playbooks with the chaos profile (its CPU bar calibrated when given) and this sandbox's
    allowlists."""
    doc = yaml.safe_load(default_text())
    mine = f".*{re.escape(sb.tag)}.*"  # the whole command line: only the sandbox's tagged workloads
    doc["safety"] |= CHAOS_PROFILE["safety"] | {
        "allow_processes": [{"cmdline": mine, "user": pwd.getpwuid(os.getuid()).pw_name}],
        "cache_dirs": [str(sb.cache_dir)],
        "temp_roots": [str(sb.tmp_root)],
    }
    doc["detectors"] = dict(CHAOS_PROFILE["detectors"]) | ({"cpu_percent": cpu_percent} if cpu_percent else {})
    doc["verify"] = dict(CHAOS_PROFILE["verify"])
    doc["watch"] = [{"cmdline": mine, "heartbeat_dir": str(sb.hb_dir)}]
    doc["routing"] = {"fallbacks": {src: src.replace("@local", "@backup") for src in CHANNELS.values()}}
    for step in doc["playbooks"]["disk_pressure"]["soft"]:
        if step["action"] == "remove_temp_files":
            step["params"]["older_than_s"] = 0  # the flood's files are seconds old
    return "# generated by rhythm chaos run: the shipped playbooks with the chaos profile\n" + yaml.safe_dump(doc)


class Daemon:
    """``dagster-daemon run`` on the sandbox, in its own process group."""

    def __init__(self, sb: Sandbox):
        self.sb, self.proc = sb, None
        self.log = open(sb.root / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        exe = Path(sys.executable).parent / "dagster-daemon"
        self.proc = subprocess.Popen(  # noqa: S603  our own dagster-daemon, an argument list
            [str(exe), "run", "-m", "rhythm_pipelines.definitions"],
            env=self.sb.env(),
            cwd=self.sb.root,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, close: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if close:
            self.log.close()


@dataclass
class ScenarioResult:
    name: str
    detected: bool = False
    resolved: bool = False
    detect_s: float | None = None
    resolve_s: float | None = None
    actions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("name", "detected", "resolved", "detect_s", "resolve_s", "actions")}
        return out | {"events": self.events, **({"notes": self.notes} if self.notes else {})}


class Chaos:
    def __init__(self, sb: Sandbox, progress: Callable[[str], None]):
        import dagster as dg
        import psutil

        self.sb, self.progress, self.dg, self.psutil = sb, progress, dg, psutil
        self.host = os.environ.get("RHYTHM_HOST") or __import__("socket").gethostname()
        self.workloads: list[subprocess.Popen] = []
        self.server = ChannelServer()
        self.daemon = Daemon(sb)
        self.instance = None
        self.gateway: Gateway | None = None
        self.bystander: subprocess.Popen | None = None
        self.decoys: list[subprocess.Popen] = []  # look like culprits, never allowlisted: the audit's witnesses
        self.learning = False  # tuned channel policies in force (the gateway's timeouts, the health sensor's breaker)
        self._reaping = threading.Event()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        """Wait for our workloads as they die (healing kills them): a parent's job, or they stay zombies."""
        while not self._reaping.wait(0.2):
            for p in list(self.workloads):
                p.poll()

    # -- processes -----------------------------------------------------------------------------------------

    def spawn(self, kind: str, *args: str, tag: str | None = None, nice: int = 10) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", kind, "--tag", tag or self.sb.tag, *args]
        p = subprocess.Popen(cmd, env=self.sb.env(), preexec_fn=lambda: os.nice(nice))  # noqa: S603  our workloads
        self.workloads.append(p)
        return p

    def _tree(self, p: subprocess.Popen) -> set[int]:
        try:
            return {p.pid, *(c.pid for c in self.psutil.Process(p.pid).children(recursive=True))}
        except self.psutil.Error:
            return {p.pid}

    def kill_workloads(self, keep: tuple[subprocess.Popen | None, ...] = ()) -> None:
        for p in self.workloads:
            if p in keep or p.poll() is not None:
                continue
            for pid in self._tree(p) - {p.pid}:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            p.kill()
            p.wait(timeout=10)
        self.workloads = [p for p in self.workloads if p in keep]

    def run_job(self, job: str, timeout_s: float = 180) -> None:
        """Launch a chaos job through the instance's queue, as the UI would (so a failed run can be re-executed
        from failure through the queue too), and wait until it has finished (its failure is the point)."""
        exe = Path(sys.executable).parent / "dagster"
        run_id = str(uuid.uuid4())
        subprocess.run(  # noqa: S603  our own dagster CLI, an argument list
            [str(exe), "job", "launch", "-m", "rhythm_pipelines.definitions", "-j", job, "--run-id", run_id],
            env=self.sb.env(),
            cwd=self.sb.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                return
            time.sleep(0.5)
        raise RuntimeError(f"chaos: {job} run {run_id} did not finish within {timeout_s:.0f} s")

    # -- the loop ------------------------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            beats = self.instance.get_daemon_heartbeats()
            ready = "SENSOR" in beats and "QUEUED_RUN_COORDINATOR" in beats
            if ready and time.time() - beats["SENSOR"].timestamp < 30:
                return
            time.sleep(1)
        raise RuntimeError(f"the Dagster daemon did not start: see {self.sb.root / 'daemon.log'}")

    def healing_runs(self, since: float) -> list:
        dg = self.dg
        records = self.instance.get_run_records(filters=dg.RunsFilter(job_name="healing_job"))
        return [
            r
            for r in records
            if r.create_timestamp.timestamp() >= since and not r.dagster_run.tags.get("rhythm/follow_up")
        ]

    def log_of(self, event_id: str) -> pd.DataFrame:
        from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

        with SQLiteMetricsStore(str(self.sb.store_path)) as s:
            return s.read_table("healing_log", event_id=event_id)

    def background_cpu(self, seconds: float) -> list[float]:
        """Host CPU % each second for ``seconds`` (the daemon, the bystander and whatever else runs here)."""
        return [self.psutil.cpu_percent(interval=1.0) for _ in range(int(seconds))]

    def scenario(self, name: str) -> tuple[set[str], Callable[[str], bool], str | None]:
        """Start ``name``'s incident; returns (event kinds that count, a target predicate, the level wanted)."""
        sb, host = self.sb, self.host
        if name == "cpu_spike":
            self.spawn("burn", "--procs", "2", "--duty", "0.95")
            return {"cpu_spike"}, lambda t: t == host, None
        if name == "memory_leak":
            p = self.spawn("leak", "--mb-per-s", "25", "--max-mb", "4000")
            return {"memory_leak"}, lambda t: t in (host, f"{host}/proc/{p.pid}"), None
        if name == "zombie":
            zombie_cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", "zombies", "--tag", sb.tag]
            p = self.spawn("subreaper", "--", *zombie_cmd, "--count", "4")
            return {"process_zombie"}, lambda t: int(t.rsplit("/", 1)[-1]) in self._tree(p), None
        if name == "hung_process":
            p = self.spawn("hung", "--heartbeat-dir", str(sb.hb_dir), "--beat-s", "2")
            return {"process_hung"}, lambda t: t == f"{host}/proc/{p.pid}", None
        if name == "temp_flood":
            canary = sb.root / "outside" / "precious.bin"
            canary.parent.mkdir(exist_ok=True)
            canary.write_bytes(b"keep me")
            os.utime(canary, (time.time() - 86400,) * 2)
            link = sb.tmp_root / "link-to-outside"
            link.unlink(missing_ok=True)
            link.symlink_to(canary)
            self.spawn("flood", "--dir", str(sb.tmp_root), "--count", "12", "--mb", "6")
            return {"disk_pressure"}, lambda t: t == f"{host}:{sb.tmp_root}", None
        if name == "task_failure_pattern":
            (sb.chaos_dir / "flaky.fail").write_text("3")
            for _ in range(3):
                self.run_job("chaos_flaky_job")
            return {"task_failure_pattern"}, lambda t: t == "chaos_flaky_job", None
        if name == "circuit_breaker":
            self.server.modes[CHANNELS["breaker"]] = FAIL
            return {"circuit_breaker_open"}, lambda t: t == CHANNELS["breaker"], None
        if name == "high_latency":
            self.server.modes[CHANNELS["latency"]] = SLOW
            # with a tuned timeout under the slow answers, the gateway's calls time out: the breaker sees it
            kinds = {"high_latency", "circuit_breaker_open"} if self.learning else {"high_latency"}
            return kinds, lambda t: t == CHANNELS["latency"], None
        if name == "cascade":
            (sb.chaos_dir / "upstream.fail").write_text("1")
            self.run_job("chaos_upstream_job")
            self.run_job("chaos_downstream_job")
            return {"cascade_failure"}, lambda t: t == "chaos_upstream", None
        if name == "critical":
            self.spawn("burn", "--procs", "2")
            self.spawn("leak", "--mb-per-s", "25", "--max-mb", "2000")
            return {"cpu_spike"}, lambda t: t == host, "critical"
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")

    def clean_up(self, name: str) -> None:
        self.kill_workloads(keep=(self.bystander, *self.decoys))
        for src in CHANNELS.values():
            self.server.modes[src] = OK
        self.sb.routes_file.unlink(missing_ok=True)
        for f in self.sb.tmp_root.glob("flood-*"):
            f.unlink()

    def settle(self, bar: float, quiet_s: int = 5, limit_s: float = 90) -> float:
        """Before a scenario: wait until the previous one's healing runs are done and the host's CPU has been
        under the bar for ``quiet_s`` seconds (at most ``limit_s``), so its episode is not this one's. Returns
        the seconds waited."""
        dg, t0, quiet = self.dg, time.monotonic(), 0
        while time.monotonic() - t0 < limit_s:
            busy = self.instance.get_runs(
                filters=dg.RunsFilter(
                    job_name="healing_job",
                    statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
                )
            )
            quiet = quiet + 1 if not busy and self.psutil.cpu_percent(interval=1.0) < bar else 0
            if quiet >= quiet_s:
                break
            if busy:
                time.sleep(1.0)
        return round(time.monotonic() - t0, 1)

    def run_one(self, name: str, detect_timeout_s: float = 120, resolve_timeout_s: float = 90) -> ScenarioResult:
        res = ScenarioResult(name)
        t0 = time.time()
        self.progress(f"{name}: starting the incident")
        try:
            kinds, target_ok, level = self.scenario(name)
            # the onset: when the incident is whole (a spawned workload at once; a failure pattern once its
            # failing runs have ended: launching them is the scenario, not the detector's delay)
            onset = time.time()
            matched: dict[str, Any] = {}  # run_id -> record
            deadline = time.time() + detect_timeout_s
            first_at = None
            while time.time() < deadline:
                for r in self.healing_runs(t0):
                    tags = r.dagster_run.tags
                    if tags.get("rhythm/event_kind") in kinds and _safe(target_ok, tags.get("rhythm/target", "")):
                        matched.setdefault(r.dagster_run.run_id, r)
                if matched and first_at is None:
                    first_at = min(r.create_timestamp.timestamp() for r in matched.values())
                    res.detected, res.detect_s = True, round(max(0.0, first_at - onset), 2)
                    self.progress(f"{name}: detected after {res.detect_s} s")
                    deadline = first_at + resolve_timeout_s
                if first_at is not None:
                    done, ok, last, levels = self._outcomes(matched)
                    if done:
                        res.resolved = ok and (level is None or level in levels)
                        res.resolve_s = round(last - first_at, 2) if ok else None
                        break
                time.sleep(0.5)
            for r in matched.values():
                log = self.log_of(r.dagster_run.tags.get("dagster/run_key", ""))
                res.events.append(r.dagster_run.tags.get("dagster/run_key", ""))
                acts = log[(log["step"] == "act") & (log["outcome"] == "done")]
                res.actions += [f"{a.action} {a.target}" for a in acts.itertuples()]
            if res.detected and not res.resolved:
                res.notes = "not resolved in time" if not self._outcomes(matched)[0] else "healing did not resolve it"
            self.progress(f"{name}: {'resolved in ' + str(res.resolve_s) + ' s' if res.resolved else 'NOT resolved'}")
        finally:
            self.clean_up(name)
        return res

    def _outcomes(self, matched: dict) -> tuple[bool, bool, float, set[str]]:
        """(every matched run finished its healing, all resolved, when the last resolved, levels reached)."""
        ok, last, levels = True, 0.0, set()
        for r in matched.values():
            log = self.log_of(r.dagster_run.tags.get("dagster/run_key", ""))
            log = log[log["run_id"] == r.dagster_run.run_id]
            levels |= set(log["level"].dropna()) - {""}
            end = log[
                log["step"].isin(["resolve", "alert"])
                | ((log["step"] == "decide") & (log["outcome"] == "suppressed"))
                | (log["outcome"] == "already_resolved")
            ]
            if end.empty:
                return False, False, 0.0, levels
            row = end.iloc[-1]
            if row["step"] == "resolve":
                last = max(last, pd.Timestamp(row["ts"]).timestamp())
            elif row["outcome"] != "already_resolved":
                ok = False
        return True, ok and last > 0, last, levels

    def audit(self, before: dict, first_seen: float, canaries: list[CanaryTree]) -> tuple[AuditResult, int]:
        """The independent audit (``chaos/audit.py``), and unsafe actions: foreign processes signalled, canary
        files removed, and the bystander killed. Nothing here reads the healing log."""
        result = judge(
            before,
            process_snapshot(),
            first_seen,
            signalled_decoys(self.sb.chaos_dir, self.decoys),
            canaries,
            runs_per_event(self.instance.get_runs(filters=self.dg.RunsFilter(job_name="healing_job"))),
        )
        unsafe = result.foreign_processes_signalled + result.files_removed_outside_sandbox
        if self.bystander is not None and self.bystander.poll() is not None:
            unsafe += 1
            result.findings.append("the bystander was killed")
        return result, unsafe


def _safe(fn: Callable[[str], bool], value: str) -> bool:
    try:
        return bool(fn(value))
    except (ValueError, IndexError):
        return False


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def tune_chaos_channels(sb: Sandbox) -> str:
    """Tune each chaos channel from the gateway's calls in the sandbox store and put the policies in force."""
    from rhythm_pipelines.learning.tuning import PolicyFile, tune_channels
    from rhythm_pipelines.metrics.store import open_store

    with open_store(str(sb.store_path)) as store:
        calls = store.read_table("channel_calls")
    policies, reasons, counts = tune_channels(calls, {})
    files = PolicyFile(sb.rhythm_home / "policies")
    version = files.write(policies, reasons, note="chaos warm-up")
    shown = ", ".join(f"{k} timeout {p.timeout_s * 1000:.0f} ms ({counts[k]} calls)"
                      for k, p in sorted(policies.items()))  # fmt: skip
    return f"learning on: policy version {version} tuned from the warm-up's calls: {shown}"


def run_chaos(
    scenarios: list[str] | None = None,
    progress: Callable[[str], None] = lambda m: None,
    keep: bool = False,
    restart_daemon: bool = True,
    learning: bool = False,
) -> dict[str, Any]:
    """Run the scenarios and return the report (the ``--json`` object). ``learning``: after the warm-up, each
    chaos channel's policy is tuned from the gateway's calls so far and put in force (``tuned_policies``' rule)."""
    names = list(scenarios or SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    import dagster as dg

    first_seen, before = time.time(), process_snapshot()  # before the harness starts anything
    sb = Sandbox(Path(tempfile.mkdtemp(prefix="rhythm-chaos-")))
    sb.write_config()
    canaries = [CanaryTree(Path(tempfile.mkdtemp(prefix="rhythm-chaos-canary-"))), CanaryTree(sb.root / "keep")]
    for tree in canaries:
        tree.plant([sb.tmp_root, sb.cache_dir])
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in sb.env().items() if k.startswith(("DAGSTER_HOME", "RHYTHM_"))})
    chaos = Chaos(sb, progress)
    results: list[ScenarioResult] = []
    try:
        chaos.instance = dg.DagsterInstance.from_config(str(sb.dagster_home))
        chaos.instance.get_runs(limit=1)  # create the run storage now, not in a race with the daemon starting
        progress(f"sandbox {sb.root}; starting the Dagster daemon")
        chaos.daemon.start()
        chaos.server.__enter__()
        chaos.gateway = Gateway(chaos.server.url, list(CHANNELS.values()), sb.routes_file, str(sb.store_path))
        chaos.gateway.start()
        chaos.bystander = chaos.spawn("burn", "--duty", "0.3", tag=f"rhythm-bystander-{uuid.uuid4().hex[:8]}", nice=5)
        chaos.decoys = [chaos.spawn("decoy", "--dir", str(sb.chaos_dir), tag=f"rhythm-decoy-{uuid.uuid4().hex[:8]}")]
        chaos.wait_ready()
        progress("daemon ready; warming up the detectors' windows and measuring the machine's background CPU")
        background = chaos.background_cpu(max(CHAOS_PROFILE["detectors"]["leak_window_s"], 20))
        bar = cpu_bar(background)
        tmp = sb.playbooks.with_suffix(".new")
        tmp.write_text(chaos_playbooks(sb, bar))
        os.replace(tmp, sb.playbooks)  # whole at once: the sensors read the file on every tick
        progress(f"background CPU p90 {np.percentile(background, 90):.0f} %: the cpu_spike bar is {bar:.0f} %")
        if learning:
            progress(tune_chaos_channels(sb))
            chaos.learning = True
        for i, name in enumerate(names):
            waited = chaos.settle(bar)
            if waited > 10:
                progress(f"{name}: waited {waited:g} s for the machine to settle")
            results.append(chaos.run_one(name))
            if restart_daemon and i == len(names) // 2 - 1 and len(names) > 1:
                progress("restarting the Dagster daemon")
                chaos.daemon.stop()
                chaos.daemon.start()
                chaos.wait_ready()
            time.sleep(3)
        audit, unsafe = chaos.audit(before, first_seen, canaries)
    finally:
        if chaos.gateway is not None:
            chaos.gateway.stop()
        chaos.kill_workloads()
        chaos._reaping.set()
        chaos.daemon.stop(close=True)
        chaos.server.__exit__(None, None, None)
        if chaos.instance is not None:
            chaos.instance.dispose()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(canaries[0].root, ignore_errors=True)
        if not keep:
            shutil.rmtree(sb.root, ignore_errors=True)
    resolved = [r.resolve_s for r in results if r.resolved and r.resolve_s is not None]
    detected = [r.detect_s for r in results if r.detected and r.detect_s is not None]
    report = {
        "scenarios": [r.as_dict() for r in results],
        "detection_rate": round(sum(r.detected for r in results) / len(results), 4),
        "auto_resolution_rate": round(sum(r.resolved for r in results) / len(results), 4),
        "mttr_s": {"p50": _percentile(resolved, 50), "p95": _percentile(resolved, 95)},
        "unsafe_actions": unsafe,
        "duplicate_runs": audit.duplicate_runs,
        "audit": audit.as_dict(),
        "findings": audit.findings,
        "detect_s": {
            "p50": _percentile(detected, 50),
            "p95": _percentile(detected, 95),
            "max": max(detected, default=None),
        },
        "profile": CHAOS_PROFILE,
        "cpu_bar": bar,
        "learning": learning,
    }
    if keep:
        report["sandbox"] = str(sb.root)
    return report


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def print_table(report: dict[str, Any]) -> str:
    """The report as a table, then the headline figures and any finding."""
    rows = [
        f"{s['name']:<22} {'yes' if s['detected'] else 'NO':<9} {'yes' if s['resolved'] else 'NO':<9} "
        f"{_cell(s['detect_s']):<9} {_cell(s['resolve_s']):<10} {'; '.join(s['actions'])[:70]}"
        for s in report["scenarios"]
    ]
    head = f"{'scenario':<22} {'detected':<9} {'resolved':<9} {'onset→det':<9} {'det→res s':<10} actions"
    mttr, det = report["mttr_s"], report.get("detect_s", {})
    tail = (
        f"detection rate {report['detection_rate']:.2f}, auto-resolution rate {report['auto_resolution_rate']:.2f}, "
        f"onset→detection p50 {_cell(det.get('p50'))} s, p95 {_cell(det.get('p95'))} s; "
        f"MTTR (detection→resolution) p50 {_cell(mttr['p50'])} s, p95 {_cell(mttr['p95'])} s, "
        f"unsafe actions {report['unsafe_actions']}, duplicate runs {report['duplicate_runs']}"
    )
    return "\n".join([head, *rows, "", tail, *report["findings"]])


def main_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, default=str)
