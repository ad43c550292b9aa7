"""Channel routes while a channel is unhealthy: ``routes.json`` maps ``channel@region`` to its fallback
until a time. The gateway (or the chaos channel client) reads it before each call."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def read_routes(path: Path, now: pd.Timestamp | None = None) -> dict[str, dict]:
    """The routes in force at ``now`` (all of them when ``now`` is None)."""
    try:
        routes = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if now is None:
        return routes
    return {k: v for k, v in routes.items() if pd.Timestamp(v["until"]) > now}


def _write(path: Path, routes: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".routes-")
    with os.fdopen(fd, "w") as f:
        json.dump(routes, f, indent=1, sort_keys=True)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of it


def set_route(path: Path, source: str, to: str, until: pd.Timestamp, event_id: str) -> None:
    routes = read_routes(path)
    routes[source] = {"to": to, "until": until.isoformat(), "event_id": event_id}
    _write(path, routes)


def clear_route(path: Path, source: str, event_id: str | None = None) -> bool:
    """Remove ``source``'s route (with ``event_id``: only the route that event set, not a later one's)."""
    routes = read_routes(path)
    if source not in routes or (event_id is not None and routes[source].get("event_id") != event_id):
        return False
    del routes[source]
    _write(path, routes)
    return True


def route_for(path: Path, source: str, now: pd.Timestamp) -> str:
    """Where a call meant for ``source`` goes now."""
    r = read_routes(path, now).get(source)
    return r["to"] if r else source
