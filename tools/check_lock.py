#!/usr/bin/env python3
"""Refuse a lock file that holds anything but ``name==version`` lines.

A lock must install the same on every machine: no ``@ file:`` or URL pins, no local paths, no options,
no ranges. Runs with the system Python before ``.venv`` exists (stdlib only).
Usage: ``python3 tools/check_lock.py [requirements.lock]``; exit 1 naming every bad line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9](?:[A-Za-z0-9.+!_-]*[A-Za-z0-9])?$")


def bad_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that is not blank, a ``#`` comment or a ``name==version`` pin."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#") and not PIN.match(line):
            out.append((n, raw))
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "requirements.lock")
    try:
        text = path.read_text()
    except OSError as exc:
        print(f"{path}: cannot read the lock: {exc.strerror}", file=sys.stderr)
        return 1
    bad = bad_lines(text)
    for n, line in bad:
        print(f"{path}:{n}: not a 'name==version' pin: {line.strip()[:160]}", file=sys.stderr)
    if bad:
        print(
            f"{path}: {len(bad)} line(s) would not install on another machine (file paths, URLs, options or "
            "ranges). Regenerate the lock in a clean venv: make lock",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
