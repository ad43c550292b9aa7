"""A throw-away local InfluxDB 1.x server for development, tests and benchmarks.

Debian ships InfluxDB 1.6, which serves ``/write`` and ``/query`` but not the v2 ``/api/v2/write``
that influxdb-client speaks. :class:`LocalInflux` starts a real ``influxd`` on free loopback ports with
its data in a temporary directory, and a small HTTP front that translates ``/api/v2/write?bucket=db/rp``
into ``/write?db=db&rp=rp`` and passes everything else through unchanged. Stopping it kills the
server's process group and removes its data.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  max-row-limit = 0
[ifql]
  enabled = false
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _V2Shim(BaseHTTPRequestHandler):
    upstream: tuple[str, int] = ("127.0.0.1", 8086)
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        if path == "/api/v2/write":
            q = {k: v[-1] for k, v in parse_qs(query).items()}
            db, _, rp = q.get("bucket", "").partition("/")
            v1 = {"db": db, "precision": q.get("precision", "ns")}
            if rp:
                v1["rp"] = rp
            path, query = "/write", urlencode(v1)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(self.command, path + ("?" + query if query else ""), body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("content-type", "x-influxdb-version", "x-influxdb-error", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _forward  # noqa: N815


class LocalInflux:
    """``with LocalInflux() as server: InfluxMetricsStore(server.url, token="", bucket="db")``."""

    def __init__(self, influxd: str = "influxd", startup_timeout_s: float = 30.0):
        self.influxd = shutil.which(influxd) or influxd
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._shim: ThreadingHTTPServer | None = None
        self._root: Path | None = None

    @property
    def url(self) -> str:
        if self._shim is None:
            raise RuntimeError("the local InfluxDB is not started")
        return f"http://127.0.0.1:{self._shim.server_address[1]}"

    def start(self) -> LocalInflux:
        if not Path(self.influxd).exists():
            raise FileNotFoundError(
                f"influxd not found ({self.influxd}); install Debian's 'influxdb' package (apt-get install influxdb)"
            )
        self._root = Path(tempfile.mkdtemp(prefix="rhythm-influx-"))
        self.http_port = free_port()
        config = self._root / "influxdb.conf"
        config.write_text(_CONFIG.format(root=self._root, rpc_port=free_port(), http_port=self.http_port))
        log = open(self._root / "influxd.log", "wb")  # noqa: SIM115 - lives as long as the server
        self._proc = subprocess.Popen(  # noqa: S603  the influxd found on PATH, an argument list
            [self.influxd, "-config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=1)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 204:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"influxd did not answer /ping in {self.startup_timeout_s} s")
            time.sleep(0.1)
        handler = type("Shim", (_V2Shim,), {"upstream": ("127.0.0.1", self.http_port)})
        self._shim = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._shim.serve_forever, daemon=True).start()
        return self

    def log_tail(self, n: int = 2000) -> str:
        if self._root is None or not (self._root / "influxd.log").exists():
            return ""
        return (self._root / "influxd.log").read_text(errors="replace")[-n:]

    def create_database(self, name: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        conn.request(
            "POST",
            "/query?" + urlencode({"q": f'CREATE DATABASE "{name}"'}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b'"error"' in body:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {resp.status} {body!r}")

    def stop(self) -> None:
        if self._shim is not None:
            self._shim.shutdown()
            self._shim.server_close()
            self._shim = None
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(10)
        self._proc = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> LocalInflux:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
