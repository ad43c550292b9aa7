import subprocess
import sys
import time
import uuid

import psutil
import pytest


@pytest.fixture
def spawn():
    """Start a chaos workload (``kind``, extra args) tagged uniquely; every one is killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(kind: str, *args: str, tag: str | None = None) -> tuple[subprocess.Popen, str]:
        tag = tag or f"rhythm-test-{kind}-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", kind, "--tag", tag, *args]
        p = subprocess.Popen(cmd)
        started.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the interpreter is up and its cmdline visible
            try:
                if tag in " ".join(psutil.Process(p.pid).cmdline()):
                    break
            except psutil.Error:
                pass
            time.sleep(0.05)
        return p, tag

    yield start
    for p in started:
        try:
            for child in psutil.Process(p.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        p.kill()
        p.wait(timeout=10)
