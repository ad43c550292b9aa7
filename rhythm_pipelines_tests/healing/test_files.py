"""Removal roots and removal that a symlink swapped in mid-walk cannot redirect outside the root."""

from __future__ import annotations

import os
import time

import pytest

from rhythm_pipelines.healing import files
from rhythm_pipelines.healing.files import remove_old_files, root_problem
from rhythm_pipelines.healing.safety import SafetyPolicy


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("/", "system directory"),
        ("/etc", "system directory"),
        ("/usr/local/share", "system directory"),
        ("/var", "system directory"),
        ("/home", "system directory"),
        ("/root", "system directory"),
        ("..", "relative"),
        ("tmp/x", "relative"),
        ("~", "not expanded"),
        ("/tmp/../etc", "system directory"),
        ("", "empty"),
    ],
)
def test_hostile_roots_are_refused(root, why):
    assert why in root_problem(root)
    with pytest.raises(ValueError, match="refused"):
        remove_old_files(root, 0, dry_run=True, now=time.time())
    with pytest.raises(ValueError, match="removal root refused"):
        SafetyPolicy(temp_roots=(root,))


def test_symlinks_homes_and_our_own_state_are_refused(tmp_path, monkeypatch):
    (tmp_path / "etc_link").symlink_to("/etc")
    assert "(= /etc) is a system directory" in root_problem(str(tmp_path / "etc_link"))
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "state" / "rhythm"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "state" / "dagster"))
    assert root_problem(str(tmp_path / "cache")) is None
    for mine in ("state", "state/rhythm", "state/dagster/storage"):  # holds it, is it, lies in it
        assert "this product's own state" in root_problem(str(tmp_path / mine))
    assert "this product's own state" in root_problem(str(tmp_path))  # an ancestor of RHYTHM_HOME
    home = os.path.expanduser("~")
    assert "home directory" in root_problem(home) or "system directory" in root_problem(home)
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("RHYTHM_HOME", "/var/lib/rhythm-test-never")
    assert root_problem("/tmp") is None


def _tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    old = time.time() - 7200
    for f in (root / "sub" / "victim.tmp", outside / "victim.tmp", root / "top.tmp"):
        f.write_bytes(b"x" * 10)
        os.utime(f, (old, old))
    return root, outside


def test_a_directory_swapped_for_a_symlink_mid_walk_never_leads_outside(tmp_path, monkeypatch):
    """Between reading a file's status and removing it, `sub` becomes a symlink to a directory outside:
    removal by path would follow it and delete outside/victim.tmp; removal relative to the open directory
    removes the (moved) file inside the root."""
    root, outside = _tree(tmp_path)
    real_stat, real_lstat = os.stat, os.lstat
    swapped = []

    def swap_once(path):
        if str(path).endswith("victim.tmp") and not swapped:
            swapped.append(True)
            os.rename(root / "sub", root / "sub.moved")
            os.symlink(outside, root / "sub")

    def stat(path, *a, **kw):
        out = real_stat(path, *a, **kw)
        swap_once(path)
        return out

    def lstat(path, *a, **kw):
        out = real_lstat(path, *a, **kw)
        swap_once(path)
        return out

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    removal = remove_old_files(str(root), 3600, dry_run=False, now=time.time())
    monkeypatch.undo()
    assert swapped, "the swap happened during the walk"
    assert (outside / "victim.tmp").read_bytes() == b"x" * 10
    assert not (root / "sub.moved" / "victim.tmp").exists() and not (root / "top.tmp").exists()
    assert removal.files == 2 and removal.errors == []


def test_a_symlinked_subdirectory_is_not_entered_even_when_it_is_opened(tmp_path, monkeypatch):
    """The swap lands between listing and opening: O_NOFOLLOW refuses the symlink."""
    root, outside = _tree(tmp_path)
    real_open = files._open_dir

    def open_dir(name, dir_fd):
        if name == "sub":
            os.rename(root / "sub", root / "sub.moved")
            os.symlink(outside, root / "sub")
        return real_open(name, dir_fd)

    monkeypatch.setattr(files, "_open_dir", open_dir)
    removal = remove_old_files(str(root), 3600, dry_run=False, now=time.time())
    assert (outside / "victim.tmp").exists()
    assert removal.symlinks == 1 and removal.files == 1  # top.tmp; sub.moved appeared after the listing


def test_age_cutoff_and_dry_run(tmp_path):
    root, _ = _tree(tmp_path)
    (root / "fresh.tmp").write_bytes(b"new")
    dry = remove_old_files(str(root), 3600, dry_run=True, now=time.time())
    assert (dry.files, dry.bytes) == (2, 20) and (root / "top.tmp").exists()
    done = remove_old_files(str(root), 3600, dry_run=False, now=time.time())
    assert done.files == 2 and (root / "fresh.tmp").exists() and not (root / "top.tmp").exists()
