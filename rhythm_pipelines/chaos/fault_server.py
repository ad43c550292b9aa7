"""A loopback HTTP channel whose latency and errors shift over time: normal, slow, flapping, down.

``GET /call?id=R&n=N`` answers as the regime in force (counted from its epoch) says. Each answer is
drawn from a generator seeded by (seed, request id, attempt), so two clients replaying one request stream
against two servers with one epoch meet the same channel. Run it as its own process (the benchmark does):
``python -m rhythm_pipelines.chaos.fault_server --schedule normal:40,slow:40 --seed 1`` prints its port.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True)
class Regime:
    median_ms: float  # of a successful answer (lognormal)
    sigma: float
    error: float  # share of fast HTTP 503 answers
    hang: float = 0.0  # share of answers that hang ``hang_s`` and then fail
    hang_s: float = 5.0
    flap_s: float = 0.0  # > 0: alternate this long healthy (the regime) and this long failing


REGIMES = {
    "normal": Regime(80.0, 0.35, 0.01),
    "slow": Regime(350.0, 0.6, 0.02),
    "flapping": Regime(80.0, 0.35, 0.01, flap_s=4.0),
    "down": Regime(80.0, 0.35, 0.5, hang=0.5),
}


def parse_schedule(text: str) -> list[tuple[str, float]]:
    out = []
    for part in text.split(","):
        name, _, secs = part.partition(":")
        if name not in REGIMES or not secs:
            raise ValueError(f"schedule {text!r}: {part!r} is not regime:seconds with a regime of {', '.join(REGIMES)}")
        out.append((name, float(secs)))
    return out


def regime_at(schedule: list[tuple[str, float]], t: float) -> str:
    for name, secs in schedule:
        if t < secs:
            return name
        t -= secs
    return schedule[-1][0]


def answer(schedule: list[tuple[str, float]], t: float, seed: int, rid: str, n: int) -> tuple[int, float]:
    """(HTTP status, seconds to wait before answering) for attempt ``n`` of request ``rid`` at ``t``."""
    name = regime_at(schedule, t)
    r = REGIMES[name]
    rng = random.Random(zlib.crc32(f"{seed}|{rid}|{n}".encode()))  # noqa: S311 - a simulation, not a secret
    if r.flap_s and int(t // r.flap_s) % 2 == 1:
        return 503, 0.02
    u = rng.random()
    if u < r.hang:
        return 503, r.hang_s
    if u < r.hang + r.error:
        return 503, 0.02
    return 200, r.median_ms / 1000 * rng.lognormvariate(0.0, r.sigma)


def serve(schedule: list[tuple[str, float]], seed: int, port: int = 0, epoch: float | None = None
          ) -> ThreadingHTTPServer:  # fmt: skip
    """A server whose schedule starts at ``epoch`` (a ``time.time()``; default: now)."""
    start = time.time() if epoch is None else epoch

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            q = parse_qs(urlparse(self.path).query)
            status, wait = answer(schedule, time.time() - start, seed, q.get("id", ["?"])[0],
                                  int(q.get("n", ["0"])[0]))  # fmt: skip
            time.sleep(wait)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the client gave up (its timeout): nothing to answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    return server


def spawn(schedule: str, seed: int = 0, epoch: float | None = None) -> tuple[subprocess.Popen, int]:
    """Start a fault server as its own process: (the process, its port). It stops when its stdin is closed."""
    cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.fault_server", "--schedule", schedule, "--seed", str(seed)]
    if epoch is not None:
        cmd += ["--epoch", repr(epoch)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our module
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the fault server did not start (schedule {schedule!r}): it printed {line!r}")
    return proc, int(line)


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedule", required=True, help="regime:seconds,... (regimes: " + ", ".join(REGIMES) + ")")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--epoch", type=float, help="when the schedule starts (Unix time; default: now)")
    args = p.parse_args(argv)
    server = serve(parse_schedule(args.schedule), args.seed, args.port, args.epoch)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
