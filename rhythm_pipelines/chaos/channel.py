"""A local API channel for chaos scenarios, and a gateway that calls it the way production traffic would.

:class:`ChannelServer` answers ``GET /<channel@region>`` quickly, slowly or with HTTP 500, per channel, as the
scenario sets it. :class:`Gateway` calls each of its sources every ``interval_s``, honouring healing's
``routes.json`` (a rerouted channel's calls go to its fallback) and each channel's tuned timeout (the policy in
force under ``$RHYTHM_HOME/policies``, re-read every second; 5 s without one), and writes every call to the
store's ``channel_calls`` table: the log the healing sensor reads.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from rhythm_pipelines.healing.routing import route_for
from rhythm_pipelines.learning.tuning import PolicyFile
from rhythm_pipelines.metrics.store import open_store

OK, SLOW, FAIL = "ok", "slow", "fail"
TIMEOUT_S = 5.0  # a channel with no tuned policy
DELAY_S = {OK: 0.03, SLOW: 0.9, FAIL: 0.02}


class ChannelServer:
    def __init__(self) -> None:
        self.modes: dict[str, str] = {}
        modes = self.modes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                mode = modes.get(self.path.strip("/"), OK)
                time.sleep(DELAY_S[mode])
                try:
                    self.send_response(500 if mode == FAIL else 200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the gateway gave up first (its timeout): nothing to answer

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> ChannelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class Gateway(threading.Thread):
    """Calls ``sources`` (``channel@region``) round after round and logs the calls to the store."""

    def __init__(self, url: str, sources: list[str], routes_file: Path, store_url: str, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.url, self.sources, self.routes_file = url, sources, routes_file
        self.store_url, self.interval_s = store_url, interval_s
        self._halt = threading.Event()
        self._pending: list[dict] = []
        self.calls = 0
        self._policies: tuple[float, dict] = (-1.0, {})

    def timeout_for(self, channel: str) -> float:
        """The tuned timeout of ``channel@region`` (a damaged or missing policy file: the default)."""
        read_at, policies = self._policies
        if time.monotonic() - read_at >= 1.0:
            try:
                policies = PolicyFile.at_home().policies()
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                policies = {}
            self._policies = (time.monotonic(), policies)
        p = policies.get(channel)
        return p.timeout_s if p is not None else TIMEOUT_S

    def _call(self, source: str) -> dict:
        target = route_for(self.routes_file, source, pd.Timestamp.now(tz="UTC"))
        t0 = time.monotonic()
        try:
            # the sandbox's own local HTTP channel (self.url is http://127.0.0.1:PORT)
            with urllib.request.urlopen(f"{self.url}/{target}", timeout=self.timeout_for(target)) as resp:  # noqa: S310
                status = "ok" if resp.status == 200 else "error"
        except urllib.error.HTTPError:
            status = "error"
        except (urllib.error.URLError, TimeoutError, OSError):
            status = "timeout"
        channel, _, region = target.partition("@")
        return {
            "ts": pd.Timestamp.now(tz="UTC"),
            "call_id": f"chaos-{uuid.uuid4().hex}",
            "channel": channel,
            "region": region,
            "latency_ms": (time.monotonic() - t0) * 1000,
            "status": status,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
            "origin": "chaos-gateway",
        }

    def flush(self, store) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            store.write_table("channel_calls", pd.DataFrame(rows))
            self.calls += len(rows)

    def run(self) -> None:
        with open_store(self.store_url) as store:
            last = time.monotonic()
            while not self._halt.is_set():
                for source in self.sources:
                    self._pending.append(self._call(source))
                if time.monotonic() - last >= 1.0:
                    self.flush(store)
                    last = time.monotonic()
                self._halt.wait(self.interval_s)
            self.flush(store)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
