"""Removing old files under a configured root, safely: which roots may be used, and removal that cannot be
redirected outside them.

The walk holds an open descriptor of every directory it is in and removes entries relative to it
(``unlink(name, dir_fd=...)``); each subdirectory is opened with ``O_NOFOLLOW | O_DIRECTORY`` and checked to
be the directory that was listed (same device and inode). Swapping a directory for a symlink while the walk
runs therefore makes the open fail instead of leading outside the root, and a symlink is never followed or
removed as if it were its target. The walk stays on the root's filesystem.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path

# never a root, nor anything under them: the system's own trees
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys",
                "/usr")  # fmt: skip
# never a root themselves (a directory under them may be one, e.g. /var/cache/myapp, /opt/app/cache)
SYSTEM_DIRS = ("/", "/home", "/root", "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/mail",
               "/opt", "/srv", "/mnt", "/media", "/run", "/snap")  # fmt: skip
MAX_DEPTH = 64


def home_dirs() -> set[str]:
    """Every account's home directory (system accounts' too: their homes hold their data)."""
    homes = set()
    for entry in pwd.getpwall():
        home = os.path.realpath(entry.pw_dir) if entry.pw_dir else ""
        if home and home != "/" and os.path.isdir(home):
            homes.add(home)
    return homes


def state_dirs() -> set[str]:
    """This product's own state: rhythm's home, store, landing zone, models and healing state, and Dagster's
    home. A removal root may not be one of them, lie inside one, or hold one."""
    from rhythm_pipelines.home import rhythm_home

    env = os.environ
    places = [str(rhythm_home()), env.get("DAGSTER_HOME", ""), env.get("RHYTHM_LANDING_DIR", ""),
              env.get("RHYTHM_HEALING_DIR", ""), os.path.dirname(env.get("RHYTHM_SQLITE_PATH", "")),
              env.get("RHYTHM_REPORTS_DIR", "")]  # fmt: skip
    registry = env.get("RHYTHM_MODEL_REGISTRY", "")
    if registry and not registry.startswith("s3://"):
        places.append(registry)
    return {os.path.realpath(p) for p in places if p}


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def root_problem(root: str) -> str | None:
    """Why ``root`` may not be a removal root (None: it may). Relative paths, ``/``, system directories,
    home directories, this product's own state (:func:`state_dirs`) and any directory holding one of those
    are refused, after resolving symlinks."""
    if not isinstance(root, str) or not root.strip():
        return "empty path"
    if root.startswith("~"):
        return f"{root!r} starts with '~', which is not expanded here; give an absolute path"
    if not os.path.isabs(root):
        return f"{root!r} is relative; give an absolute path"
    real = os.path.realpath(root)
    shown = root if real == root.rstrip("/") or root == "/" else f"{root} (= {real})"
    for tree in SYSTEM_TREES:
        if _under(real, tree):
            return f"{shown} is a system directory"
    if real in SYSTEM_DIRS:
        return f"{shown} is a system directory"
    homes = home_dirs()
    if real in homes:
        return f"{shown} is a home directory"
    for place in sorted(state_dirs()):
        if _under(real, place) or _under(place, real):
            return f"{shown} holds or lies in this product's own state ({place})"
    for place in (*SYSTEM_TREES, *SYSTEM_DIRS, *homes):
        if place != real and _under(place, real):
            return f"{shown} holds {place}"
    return None


@dataclass
class Removal:
    """What one pass removed (or, in a dry run, would remove)."""

    files: int = 0
    bytes: int = 0
    symlinks: int = 0  # left alone
    errors: list[str] = field(default_factory=list)


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def _open_root(real: str) -> int:
    """Open ``real`` (already resolved) one component at a time, refusing a symlink anywhere on the way."""
    fd = _open_dir("/", None)
    try:
        for part in Path(real).parts[1:]:
            nxt = _open_dir(part, fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_old_files(root: str, older_than_s: float, dry_run: bool, now: float) -> Removal:
    """Remove regular files under ``root`` last modified more than ``older_than_s`` before ``now``.
    Raises ``ValueError`` for a root :func:`root_problem` refuses.

    The root is resolved once, that resolved path is checked, and exactly it is opened, one component at a
    time with ``O_NOFOLLOW``: a symlink swapped into a parent after the check makes the open fail."""
    problem = root_problem(root)
    real = os.path.realpath(root) if problem is None else ""
    problem = problem or root_problem(real)
    if problem:
        raise ValueError(f"refused removal root: {problem}")
    out = Removal()
    try:
        fd = _open_root(real)
    except OSError as exc:
        out.errors.append(f"{root}: {exc.strerror}")
        return out
    try:
        _walk(fd, real, os.fstat(fd).st_dev, now - older_than_s, dry_run, out, 0)
    finally:
        os.close(fd)
    return out


def _walk(fd: int, where: str, dev: int, cutoff: float, dry_run: bool, out: Removal, depth: int) -> None:
    if depth > MAX_DEPTH:
        out.errors.append(f"{where}: deeper than {MAX_DEPTH} levels, not walked")
        return
    try:
        names = os.listdir(fd)
    except OSError as exc:
        out.errors.append(f"{where}: {exc.strerror}")
        return
    for name in names:
        path = f"{where}/{name}"
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                out.errors.append(f"{path}: {exc.strerror}")
            continue
        if stat.S_ISLNK(st.st_mode):
            out.symlinks += 1
        elif stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev:
                continue  # another filesystem mounted inside the root
            try:
                sub = _open_dir(name, fd)
            except OSError as exc:  # swapped for a symlink (ELOOP/ENOTDIR) or gone since the listing
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    out.symlinks += 1
                elif exc.errno != errno.ENOENT:
                    out.errors.append(f"{path}: {exc.strerror}")
                continue
            try:
                now_st = os.fstat(sub)
                if (now_st.st_dev, now_st.st_ino) == (st.st_dev, st.st_ino):
                    _walk(sub, path, dev, cutoff, dry_run, out, depth + 1)
                else:
                    out.errors.append(f"{path}: replaced while walking, left alone")
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode) and st.st_mtime <= cutoff:
            if not dry_run:
                try:
                    os.unlink(name, dir_fd=fd)  # relative to the open directory: never a path outside it
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        out.errors.append(f"{path}: {exc.strerror}")
                    continue
            out.files += 1
            out.bytes += st.st_size
