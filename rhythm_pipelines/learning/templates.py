"""Error-text templates, mined with Drain (the ``drain3`` package, in its maintained ``drain3-improved`` fork).

Numbers, hex ids, UUIDs, IPs, paths, durations and quoted values are masked first, so
``database is locked (attempt 3 of 5)`` and ``database is locked (attempt 1 of 5)`` share one template. The miner's
state is never persisted (its snapshots are jsonpickle, which can build arbitrary objects): templates are mined
afresh from the messages each time, in time order, and each message is then matched against the final set, so
the same messages always give the same templates. A template's id is a hash of its text, not Drain's counter, so
it is stable across re-materialisations that add messages without changing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

MASKS = (  # (regex, mask name): order matters (a UUID before a hex id before a number)
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?", "TIME"),
    (r"\b\d{4}-\d{2}-\d{2}(?:-\d{2}:\d{2})?\b", "DATE"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "IP"),
    (r"(?<![\w/])(?:/[\w.@-]+)+/?", "PATH"),
    (r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{12,}\b", "HEX"),
    (r"'[^']*'|\"[^\"]*\"", "QUOTED"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?:\s?(?:ms|s|min|h|KiB|MiB|GiB|KB|MB|GB|B|%))?(?![\w.])", "NUM"),
)
EMPTY = "(no message)"


def template_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _miner(sim_th: float) -> TemplateMiner:
    cfg = TemplateMinerConfig()
    cfg.masking_instructions = [MaskingInstruction(p, name) for p, name in MASKS]
    cfg.drain_sim_th = sim_th
    cfg.drain_depth = 4
    cfg.parametrize_numeric_tokens = True
    return TemplateMiner(config=cfg)  # no persistence handler: nothing is ever loaded from disk


def mine(messages: Sequence[str | None], sim_th: float = 0.5) -> list[tuple[str, str]]:
    """(template id, template text) for each message, in order. Messages are mined in the order given (give
    them in time order); an empty message has the template ``(no message)``."""
    miner = _miner(sim_th)
    text = [(m or "").strip().splitlines()[0][:500] if (m or "").strip() else "" for m in messages]
    for t in text:
        if t:
            miner.add_log_message(t)
    out = []
    for t in text:
        if not t:
            out.append((template_id(EMPTY), EMPTY))
            continue
        cluster = miner.match(t, full_search_strategy="fallback") or miner.add_log_message(t)
        tpl = cluster.get_template() if hasattr(cluster, "get_template") else str(cluster["template_mined"])
        out.append((template_id(tpl), tpl))
    return out
