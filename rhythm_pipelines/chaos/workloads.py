"""Misbehaving processes for chaos scenarios and tests (standard library only: they start fast).

``python -m rhythm_pipelines.chaos.workloads KIND --tag TAG [options] [-- COMMAND]``; every workload carries
``--tag`` in its command line so allowlists (and the bystander check) can match it exactly.

- ``burn``: busy-loops on ``--procs`` processes, ``--duty`` of the time each (CPU pressure);
- ``leak``: grows its RSS by ``--mb-per-s`` up to ``--max-mb`` (a memory leak);
- ``zombies``: forks ``--count`` children that exit and are never waited for (zombies);
- ``flood``: writes ``--count`` files of ``--mb`` MB each into ``--dir``, then idles;
- ``hung``: touches ``<--heartbeat-dir>/<pid>.hb`` every second for ``--beat-s`` seconds, then hangs;
- ``idle``: sleeps (a bystander or an idle allowlisted process);
- ``subreaper``: becomes a child subreaper, runs the rest of its command line as a child and reaps every
  orphan that lands on it (what tini does; this machine's PID 1 does not reap).
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """A burner's worker dies with its burner (SIGKILL on parent death), or killing the burner orphans it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _spin(duty: float = 1.0, child: bool = False) -> None:
    if child:
        _die_with_parent()
    while True:
        if duty >= 1.0:
            continue
        end = time.monotonic() + 0.1 * duty
        while time.monotonic() < end:
            pass
        time.sleep(0.1 * (1.0 - duty))


def burn(procs: int, duty: float) -> None:
    workers = [multiprocessing.Process(target=_spin, args=(duty, True), daemon=True) for _ in range(max(0, procs - 1))]
    for w in workers:
        w.start()
    _spin(duty)


def leak(mb_per_s: float, max_mb: float) -> None:
    hoard, grown = [], 0.0
    while True:
        if grown < max_mb:
            hoard.append(bytearray(os.urandom(1)) * int(mb_per_s * 1e6 / 4))  # touched pages count in RSS
            grown += mb_per_s / 4
        time.sleep(0.25)


def zombies(count: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # default: exited children stay zombies until waited for
    for _ in range(count):
        if os.fork() == 0:
            os._exit(0)
    while True:
        time.sleep(1)


def flood(directory: str, count: int, mb: float) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    block = b"\0" * int(mb * 1e6)
    for i in range(count):
        (d / f"flood-{os.getpid()}-{i}.tmp").write_bytes(block)
    while True:
        time.sleep(3600)


def hung(heartbeat_dir: str, beat_s: float) -> None:
    hb = Path(heartbeat_dir) / f"{os.getpid()}.hb"
    hb.parent.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + beat_s
    while time.monotonic() < end:
        hb.touch()
        time.sleep(1)
    while True:  # hung: no heartbeat, no CPU
        time.sleep(3600)


def subreaper(command: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    child = subprocess.Popen(command)  # noqa: S603  the subreaper runs the workload the harness gave it
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, 0)  # our child and every orphan adopted by us
        except ChildProcessError:
            return status or 0
        except InterruptedError:
            continue
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(st)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rhythm_pipelines.chaos.workloads")
    ap.add_argument("kind", choices=("burn", "leak", "zombies", "flood", "hung", "idle", "subreaper", "decoy"))
    ap.add_argument("--tag", required=True, help="a marker in the command line, for allowlists")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--duty", type=float, default=1.0)
    ap.add_argument("--mb-per-s", type=float, default=20.0)
    ap.add_argument("--max-mb", type=float, default=400.0)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--heartbeat-dir", default=".")
    ap.add_argument("--dir", default=".")
    ap.add_argument("--mb", type=float, default=5.0)
    ap.add_argument("--beat-s", type=float, default=3.0)
    argv = sys.argv[1:] if argv is None else argv
    command = argv[argv.index("--") + 1 :] if "--" in argv else []  # subreaper: the command to run under it
    a = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if a.kind == "burn":
        burn(a.procs, a.duty)
    elif a.kind == "leak":
        leak(a.mb_per_s, a.max_mb)
    elif a.kind == "zombies":
        zombies(a.count)
    elif a.kind == "flood":
        flood(a.dir, a.count, a.mb)
    elif a.kind == "hung":
        hung(a.heartbeat_dir, a.beat_s)
    elif a.kind == "decoy":
        from rhythm_pipelines.chaos.audit import decoy_main

        decoy_main(a.dir)
    elif a.kind == "subreaper":
        if not command:
            ap.error("subreaper needs a command after --")
        return subreaper(command)
    else:
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
