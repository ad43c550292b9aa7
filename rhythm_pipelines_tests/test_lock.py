"""The lock installs on any machine: name==version lines only, checked by the script `make test` runs first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tools" / "check_lock.py"


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(path)], capture_output=True, text=True, timeout=30)


def test_the_shipped_lock_is_pins_only():
    res = check(ROOT / "requirements.lock")
    assert res.returncode == 0, res.stderr


def test_file_urls_paths_and_ranges_are_refused_by_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# a comment\n"
        "numpy==2.4.6\n"
        "Bottleneck @ file:///tmp/bn/bottleneck-1.6.0-cp311.whl#sha256=72\n"
        "pkg @ https://example.org/pkg-1.0.tar.gz\n"
        "./vendor/thing\n"
        "-e git+https://example.org/x.git#egg=x\n"
        "pandas>=2\n"
        "--index-url https://example.org/simple\n"
        "scipy==1.17.1\n"
    )
    res = check(lock)
    assert res.returncode == 1
    flagged = re.findall(rf"^{re.escape(str(lock))}:(\d+): not a 'name==version' pin", res.stderr, re.M)
    assert flagged == ["3", "4", "5", "6", "7", "8"]
    assert "6 line(s) would not install on another machine" in res.stderr
    assert "make lock" in res.stderr


def test_makefile_checks_the_lock_before_installing_and_testing():
    make = (ROOT / "Makefile").read_text()
    install = make.split("$(BIN)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "tools/check_lock.py" in install.splitlines()[1], "the lock is checked before anything installs"
    assert any(line.startswith("test:") and "lock-check" in line for line in make.splitlines())
