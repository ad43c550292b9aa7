"""Admin alerts: a JSON POST to a webhook (Slack-compatible: the message is in ``text``), plus a line in
``alerts.jsonl`` so an alert is never lost when no webhook is configured or it is down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Notifier:
    webhook_url: str | None = None
    alerts_file: Path | None = None
    timeout_s: float = 5.0

    def send(self, text: str, payload: dict[str, Any]) -> tuple[bool, str]:
        """Post the alert; returns (delivered, how). The alerts file gets it either way."""
        body = {"text": text, **payload}
        if self.alerts_file is not None:
            self.alerts_file.parent.mkdir(parents=True, exist_ok=True)
            with self.alerts_file.open("a") as f:
                f.write(json.dumps({"ts": pd.Timestamp.now(tz="UTC").isoformat(), **body}, default=str) + "\n")
        if not self.webhook_url:
            return True, f"no webhook configured: written to {self.alerts_file}" if self.alerts_file else "no webhook"
        if not self.webhook_url.startswith(("http://", "https://")):
            return False, f"webhook failed: {self.webhook_url.split(':')[0]!r} is not an http(s) URL"
        req = urllib.request.Request(  # noqa: S310  scheme checked above: http(s) only
            self.webhook_url,
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310  http(s) only
                return 200 <= resp.status < 300, f"webhook answered {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            return False, f"webhook failed: {exc}"
