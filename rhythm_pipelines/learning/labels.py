"""Operator labels for failure patterns: a name per pattern, and patterns never to act on.

``$RHYTHM_HOME/pattern_labels.yaml`` (or ``$RHYTHM_PATTERN_LABELS``); absent means no labels::

    version: 1
    patterns:
      9f2c41aa:                      # a pattern id, as the failure_patterns table shows it
        label: nightly batch overloads db-02
      5be0d1c3:
        label: gpt-4o quota at :40
        prevent: false               # learn and show it, never act on it

Pattern ids are hashes of kind, root and template, so a label keeps to its pattern across
re-materialisations. Every error names the file, the line and the field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rhythm_pipelines.yaml_lines import ConfigError, Reader, keys

PATTERN_ID = re.compile(r"^[0-9a-f]{8}(#\d+)?$")


class LabelError(ConfigError):
    """A pattern labels file that cannot be used: ``file:line: path: reason``."""


@dataclass(frozen=True)
class Label:
    label: str = ""
    prevent: bool = True


def default_path() -> Path:
    env = os.environ.get("RHYTHM_PATTERN_LABELS")
    if env:
        return Path(env)
    from rhythm_pipelines.home import rhythm_home

    return rhythm_home() / "pattern_labels.yaml"


def parse(text: str, origin: str) -> dict[str, Label]:
    r = Reader(origin, LabelError)
    doc = r.mapping(r.load(text), "(top)", ("version", "patterns"))
    if doc.get("version", 1) != 1:
        raise r.fail(doc, "version", f"unsupported version {doc.get('version')!r} (this code reads 1)", "version")
    pats = r.mapping(doc.get("patterns"), "patterns", None, doc, "patterns")
    out = {}
    for pid in keys(pats):
        path = f"patterns.{pid}"
        if not isinstance(pid, str) or not PATTERN_ID.match(pid):
            raise r.fail(pats, path, "not a pattern id (8 hex digits, maybe #N, as failure_patterns shows)", pid)
        node = r.mapping(pats[pid], path, ("label", "prevent"), pats, pid)
        label = node.get("label", "")
        if not isinstance(label, str):
            raise r.fail(node, f"{path}.label", f"expected text, got {label!r}", "label")
        prevent = node.get("prevent", True)
        if not isinstance(prevent, bool):
            raise r.fail(node, f"{path}.prevent", f"expected true or false, got {prevent!r}", "prevent")
        out[pid] = Label(label.strip(), prevent)
    return out


def load(path: str | Path | None = None) -> dict[str, Label]:
    """The labels at ``path`` (default: :func:`default_path`); none when that file does not exist."""
    p = Path(path) if path else default_path()
    if not p.exists():
        return {}
    try:
        text = p.read_text()
    except OSError as exc:
        raise LabelError(f"{p}: cannot read the pattern labels file: {exc.strerror}") from exc
    return parse(text, str(p))
