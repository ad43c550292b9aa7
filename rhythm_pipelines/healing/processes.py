"""Processes as healing sees them (psutil), and the signals it may send to allowlisted ones."""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from typing import Protocol

import psutil

# Dagster's own processes: never signalled by healing, whatever an allowlist says (matched on the command line,
# in console-script and module form: `dagster-daemon run`, `python -m dagster._daemon run` (as `dagster dev`
# starts it), `python -m dagster_webserver`, `/venv/bin/dagster api grpc ...`, `python -m dagster api
# execute_run ...`, `dagster-graphql`)
_DAGSTER = r"(?:^|[\s/])(?:-m\s+)?"
DAGSTER_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("daemon", re.compile(_DAGSTER + r"(?:dagster-daemon|dagster\._daemon)(?:\s|$)")),
    ("webserver", re.compile(_DAGSTER + r"(?:dagster-webserver|dagster_webserver|dagit)(?:\s|$)")),
    ("dagster dev", re.compile(_DAGSTER + r"dagster\s+dev(?:\s|$)")),
    ("code server", re.compile(_DAGSTER + r"dagster\s+(?:api\s+grpc|code-server\s+start)(?:\s|$)")),
    ("run worker", re.compile(_DAGSTER + r"dagster\s+api\s+execute_(?:run|step)(?:\s|$)")),
    ("graphql client", re.compile(_DAGSTER + r"(?:dagster-graphql|dagster_graphql)(?:\s|$)")),
)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    name: str
    cmdline: str
    user: str | None
    status: str
    cpu_seconds: float
    rss_bytes: int
    create_time: float

    @property
    def zombie(self) -> bool:
        return self.status == psutil.STATUS_ZOMBIE


def dagster_role(cmdline: str) -> str | None:
    """``daemon``, ``webserver``, ``dagster dev``, ``code server`` or ``run worker`` for a Dagster process."""
    for role, pattern in DAGSTER_ROLES:
        if pattern.search(cmdline or ""):
            return role
    return None


def instance_roles(procs: list[ProcInfo], me: int) -> dict[int, str]:
    """The processes of the Dagster instance ``me`` runs in: pid -> role (``code server``, ``run worker``...).

    Membership comes from the process tree, not from names: the topmost Dagster ancestor of ``me`` (``dagster
    dev``, the daemon or the webserver) and everything under it. A process elsewhere whose command line only
    looks like Dagster's is not ours (it is still never signalled: see :mod:`.safety`). Outside Dagster
    (``me`` has no Dagster ancestor) the answer is empty.
    """
    by_pid = {p.pid: p for p in procs}
    root, pid, seen = None, me, set()
    while pid in by_pid and pid not in seen:
        seen.add(pid)
        if dagster_role(by_pid[pid].cmdline):
            root = pid
        pid = by_pid[pid].ppid
    if root is None:
        return {}
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    out, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out[pid] = dagster_role(by_pid[pid].cmdline) or f"child of {out.get(by_pid[pid].ppid, 'dagster')}"
        stack.extend(children.get(pid, ()))
    return out


def _info(p: psutil.Process) -> ProcInfo | None:
    try:
        with p.oneshot():
            status = p.status()
            zombie = status == psutil.STATUS_ZOMBIE
            cpu = 0.0 if zombie else sum(p.cpu_times()[:2])
            rss = 0 if zombie else p.memory_info().rss
            try:
                cmdline = "" if zombie else " ".join(p.cmdline())
            except psutil.Error:
                cmdline = ""
            try:
                user = p.username()
            except (psutil.Error, KeyError):
                user = None
            return ProcInfo(p.pid, p.ppid(), p.name(), cmdline, user, status, cpu, rss, p.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def snapshot() -> list[ProcInfo]:
    """Every process we can see now."""
    return [i for i in map(_info, psutil.process_iter()) if i is not None]


def process(pid: int, alive: bool = False) -> ProcInfo | None:
    """The process ``pid`` (None if gone; with ``alive``, None for a zombie too: it is dead)."""
    try:
        info = _info(psutil.Process(pid))
    except psutil.Error:
        return None
    return None if info is None or (alive and info.zombie) else info


def same_process(info: ProcInfo) -> bool:
    """Is ``info.pid`` still the live process we looked at (not a reused pid, not dead)?"""
    now = process(info.pid, alive=True)
    return now is not None and abs(now.create_time - info.create_time) < 1e-3


def _ended(p: psutil.Process) -> bool:
    """Gone, or a zombie (dead: only its parent's wait is missing)."""
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def terminate(info: ProcInfo, grace_s: float = 5.0) -> str:
    """SIGTERM, then SIGKILL after ``grace_s``; returns how it ended (``terminated``, ``killed``, ``gone``)."""
    if not same_process(info):
        return "gone"
    p = psutil.Process(info.pid)
    try:
        p.terminate()
    except psutil.NoSuchProcess:
        return "gone"
    if wait_until(lambda: _ended(p), grace_s, 0.05):
        return "terminated"
    try:
        p.kill()
    except psutil.NoSuchProcess:
        return "terminated"
    return "killed" if wait_until(lambda: _ended(p), 5.0, 0.05) else "kill sent, still present"


def signal_parent(info: ProcInfo) -> None:
    """SIGCHLD to a zombie's parent: a well-behaved parent reaps its children."""
    os.kill(info.pid, signal.SIGCHLD)


def zombies_of(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def wait_until(predicate, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


class Signaller(Protocol):
    """Who sends the signals: the OS for real, a recorder in tests of the rails."""

    def terminate(self, info: ProcInfo, grace_s: float) -> str: ...

    def sigchld(self, info: ProcInfo) -> None: ...


class OsSignaller:
    """Real signals (SIGTERM, then SIGKILL; SIGCHLD to a zombie's parent)."""

    def terminate(self, info: ProcInfo, grace_s: float) -> str:
        return terminate(info, grace_s)

    def sigchld(self, info: ProcInfo) -> None:
        signal_parent(info)
