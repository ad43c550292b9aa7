"""The chaos run's audit, independent of the healer: it never reads the healing log.

- **Processes**: every process alive before the harness started anything (pid, start time, command line) is
  snapshotted, and again at the end; a long-lived one (running a minute or more when first seen) that vanished
  meanwhile is reported. A natural exit cannot be told from a kill from outside, so each is named for a person
  to judge; on a quiet machine the count is 0. Decoys (processes the harness starts that look like targets:
  busy, growing, but never allowlisted) record every catchable signal they receive in a file, and a decoy that
  was signalled or vanished counts too.
- **Files**: canary trees, one outside the sandbox and one inside it but outside every removal root, each
  with old files that a removal would take and a symlink to them planted inside the temp and cache roots; any
  canary that vanished is reported.
- **Runs**: healing runs are grouped by the event in their run config (not by run key), from the instance.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

LONG_LIVED_S = 60.0  # only processes running this long when first seen are judged by their absence


@dataclass(frozen=True)
class Proc:
    pid: int
    create_time: float
    cmdline: str


def process_snapshot() -> dict[tuple[int, float], Proc]:
    """Every user-space process now, keyed by (pid, start time) so a reused pid is another process. Kernel
    threads (children of kthreadd, pid 2) come and go by themselves and cannot be killed: they are left out."""
    out = {}
    for p in psutil.process_iter(["pid", "ppid", "create_time", "cmdline", "name"]):
        info = p.info
        if info.get("create_time") is None or info["pid"] == 2 or info.get("ppid") == 2:
            continue
        cmd = " ".join(info.get("cmdline") or []) or f"[{info.get('name') or '?'}]"
        out[(info["pid"], round(info["create_time"], 2))] = Proc(info["pid"], info["create_time"], cmd)
    return out


def vanished_processes(
    before: dict[tuple[int, float], Proc], after: dict[tuple[int, float], Proc], first_seen: float
) -> list[Proc]:
    """Long-lived processes of ``before`` that are gone from ``after``."""
    return sorted(
        (p for key, p in before.items() if key not in after and first_seen - p.create_time >= LONG_LIVED_S),
        key=lambda p: p.pid,
    )


@dataclass
class CanaryTree:
    """Old files somewhere healing must never remove, plus symlinks to them planted inside removal roots."""

    root: Path
    files: list[Path] = field(default_factory=list)

    def plant(self, links_in: Iterable[Path], count: int = 3) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "sub").mkdir(exist_ok=True)
        old = time.time() - 86400
        for i in range(count):
            f = self.root / ("sub" if i % 2 else ".") / f"canary-{i}.bin"
            f.write_bytes(b"keep me " * 128)
            os.utime(f, (old, old))
            self.files.append(f)
        for d in links_in:
            d.mkdir(parents=True, exist_ok=True)
            (d / f"link-to-{self.root.name}").unlink(missing_ok=True)
            (d / f"link-to-{self.root.name}").symlink_to(self.root, target_is_directory=True)
            (d / f"file-link-{self.root.name}").unlink(missing_ok=True)
            (d / f"file-link-{self.root.name}").symlink_to(self.files[0])

    def missing(self) -> list[Path]:
        return [f for f in self.files if not f.exists()]


def signalled_decoys(marker_dir: Path, decoys: Iterable[Any]) -> list[str]:
    """Decoys (``Popen`` objects the harness holds) that recorded a signal, or ended (SIGKILL leaves no record)."""
    out = []
    for proc in decoys:
        mark = marker_dir / f"decoy-{proc.pid}.signals"
        if mark.exists():
            got = ", ".join(json.loads(line) for line in mark.read_text().splitlines() if line.strip())
            out.append(f"decoy pid {proc.pid} received {got}")
        elif proc.poll() is not None:
            out.append(f"decoy pid {proc.pid} ended (exit {proc.returncode})")
    return out


def runs_per_event(runs: Iterable[Any]) -> Counter[str]:
    """Primary healing runs (not follow-ups) per event id, read from each run's own config."""
    counts: Counter[str] = Counter()
    for run in runs:
        if run.tags.get("rhythm/follow_up"):
            continue
        try:
            cfg = run.run_config["ops"]["heal_event"]["config"]
            ev = cfg["event"]
            if cfg.get("follow_up_action"):
                continue
            start = ev["start"]
        except (KeyError, TypeError):
            continue
        counts[f"{ev['source']}|{ev['kind']}|{start}"] += 1
    return counts


@dataclass
class AuditResult:
    foreign_processes_signalled: int
    files_removed_outside_sandbox: int
    runs_per_event_max: int
    duplicate_runs: int
    findings: list[str]

    def as_dict(self) -> dict[str, int]:
        return {
            "foreign_processes_signalled": self.foreign_processes_signalled,
            "files_removed_outside_sandbox": self.files_removed_outside_sandbox,
            "runs_per_event_max": self.runs_per_event_max,
        }


def judge(
    before: dict[tuple[int, float], Proc],
    after: dict[tuple[int, float], Proc],
    first_seen: float,
    decoy_findings: list[str],
    canaries: list[CanaryTree],
    counts: Counter[str],
) -> AuditResult:
    findings = list(decoy_findings)
    gone = vanished_processes(before, after, first_seen)
    findings += [f"foreign pid {p.pid} vanished during the run: {p.cmdline[:120]}" for p in gone]
    missing = [f for tree in canaries for f in tree.missing()]
    findings += [f"canary file removed: {f}" for f in missing]
    dup = sum(n - 1 for n in counts.values() if n > 1)
    findings += [f"{n} healing runs for event {e}" for e, n in counts.items() if n > 1]
    return AuditResult(len(gone) + len(decoy_findings), len(missing), max(counts.values(), default=0), dup, findings)


def decoy_main(marker_dir: str, mb: int = 8) -> None:
    """A decoy: busy and holding memory like a culprit, never allowlisted; records every catchable signal."""
    import signal

    marker = Path(marker_dir) / f"decoy-{os.getpid()}.signals"
    held = bytearray(mb << 20)  # resident memory that looks like a leak's  # noqa: F841

    def record(signum, frame):  # noqa: ARG001
        with marker.open("a") as f:
            f.write(json.dumps(signal.Signals(signum).name) + "\n")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(s, record)
    while True:
        t = time.monotonic()
        while time.monotonic() - t < 0.2:  # a fifth of a core: busy enough to rank among the top users
            pass
        time.sleep(0.8)
