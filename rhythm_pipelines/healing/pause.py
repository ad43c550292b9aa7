"""Low-priority work paused by healing: ``paused.json`` holds who paused it and since when.

Low-priority schedules and sensors (tag ``rhythm/priority: low``) check :func:`paused_by` before each tick
and skip while any event holds a pause; the pausing event's follow-up (or a later run) resumes. A pause
older than ``max_age`` lapses by itself, so a lost resume never stops work for good.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

PRIORITY_TAG = "rhythm/priority"
MAX_AGE = pd.Timedelta("2h")


def _read(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write(path: Path, state: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".paused-")
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def pause(path: Path, event_id: str, now: pd.Timestamp) -> bool:
    """Hold a pause for ``event_id``; False if it already held one."""
    state = _read(path)
    if event_id in state:
        return False
    state[event_id] = now.isoformat()
    _write(path, state)
    return True


def resume(path: Path, event_id: str) -> bool:
    """Release ``event_id``'s pause; False if it held none."""
    state = _read(path)
    if state.pop(event_id, None) is None:
        return False
    _write(path, state)
    return True


def paused_by(path: Path, now: pd.Timestamp, max_age: pd.Timedelta = MAX_AGE) -> list[str]:
    """The events holding a pause now (lapsed ones ignored)."""
    return sorted(k for k, since in _read(path).items() if now - pd.Timestamp(since) < max_age)
