"""Which points this machine's own sampler measured: a signature in each point's tags.

A host name in the store is only what a writer asserted (``rhythm agent --host <this host>`` writes points
as if it were us). The local sampler signs each point it writes with a key that never leaves this machine
(``$RHYTHM_HOME/sampler.key``, created on first use, mode 0600): HMAC-SHA256 of (source, metric, time,
value), kept as ``sig`` in the point's tags. Healing acts on this machine only for events found in points
that verify, so an agent that can write the store cannot make healing act here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.schema import to_epoch_ns

SIG = "sig"


def sampler_key(home: Path | None = None) -> bytes:
    """This machine's sampler key, created on first use, whole and at once (written to a private temporary
    file, then linked to its name: a second sensor thread never reads it half-written), mode 0600."""
    from rhythm_pipelines.home import rhythm_home

    path = (home or rhythm_home()) / "sampler.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sampler.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):  # another thread made it first: theirs stands
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path}: a sampler key is at least 32 bytes; delete the file to make a new one")
    return key


def _sigs(frame: pd.DataFrame, key: bytes) -> list[str]:
    ns = to_epoch_ns(frame["ts"])
    return [
        hmac.new(key, f"{s}|{m}|{t}|{float(v)!r}".encode(), hashlib.sha256).hexdigest()[:32]
        for s, m, t, v in zip(frame["source"], frame["metric"], ns, frame["value"], strict=True)
    ]


def sign(frame: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """The sampler's points with their signature added to their tags."""
    if frame.empty:
        return frame
    tags = frame["tags"] if "tags" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    merged = [
        json.dumps(
            {**(json.loads(t) if isinstance(t, str) and t else {}), SIG: sig}, sort_keys=True, separators=(",", ":")
        )
        for t, sig in zip(tags, _sigs(frame, key), strict=True)
    ]
    return frame.assign(tags=merged)


def without_claims(points: pd.DataFrame, host: str, key: bytes) -> tuple[pd.DataFrame, int]:
    """``points`` less those that name ``host`` (or its processes) without its sampler's signature, and how
    many were left out."""
    ours = ((points["source"] == host) | points["source"].str.startswith(f"{host}/proc/")).to_numpy()
    claimed = ours & ~verified(points, key)
    return points[~claimed].reset_index(drop=True), int(claimed.sum())


def verified(frame: pd.DataFrame, key: bytes) -> np.ndarray:
    """Which points carry a valid signature of this machine's sampler."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    claimed = [(json.loads(t).get(SIG) if isinstance(t, str) and t.startswith("{") else None) for t in frame["tags"]]
    return np.array(
        [
            isinstance(c, str) and hmac.compare_digest(c, want)
            for c, want in zip(claimed, _sigs(frame, key), strict=True)
        ],
        dtype=bool,
    )
