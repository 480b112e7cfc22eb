"""Issue 12 item 5: 1,000 idle or slow-handshaking TLS connections vs a normal HTTPS client.

The server is ``python -m minihttp --tls-cert ... --tls-key ...`` (the pooled event-loop
server, the command line's default) in a subprocess, serving a 12-byte file. Measured, first
alone, then while ``--idle`` TCP connections stay silent (no ClientHello) and ``--slow``
ones drip a real ClientHello one byte every ``--drip`` seconds (a connection the server
closes is opened again at once, so the pressure stays):

* a normal HTTPS client's latency over ``--requests`` sequential GETs, each on a new
  connection (TCP + handshake + request: what ``curl https://...`` does) and, in a second
  series, on one keep-alive connection; each request may take ``--timeout`` seconds, each
  series at most ``--time-limit`` seconds (a timed-out request counts as a failure and as
  ``--timeout`` in the percentiles);
* the server's threads (/proc/PID/status Threads), resident memory (VmRSS) and open
  descriptors.

Targets: with the pressure on, p99 <= 50 ms, no failures, and no thread per handshake. The
descriptor limit is raised to the hard limit first (the server inherits it). Figures on a
shared 2-core machine are indicative.

    python3 benchmarks/bench_tls_idle.py [--idle 1000] [--slow 0] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks.bench_idle import proc_status, raise_nofile

BODY = b"Hello World\n"
P99_TARGET_MS = 50.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000,
                        help="TCP connections that never send a byte (default 1000)")
    parser.add_argument("--slow", type=int, default=0,
                        help="connections that drip a ClientHello byte by byte (default 0)")
    parser.add_argument("--drip", type=float, default=1.0,
                        help="seconds between two bytes of a slow ClientHello (default 1)")
    parser.add_argument("--requests", type=int, default=200,
                        help="sequential requests of the normal client per series")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds one request of the normal client may take")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="most seconds per series (a stalled server ends it early)")
    parser.add_argument("--threads", type=int, default=None,
                        help="the server's --threads (default: its own default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("idle", "slow", "requests"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0")
    if args.requests == 0 or args.timeout <= 0 or args.time_limit <= 0 or args.drip <= 0:
        parser.error("--requests, --timeout, --time-limit and --drip must be positive")
    return args


# -- pure helpers ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100); NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def series_row(name: str, latencies_ms: Sequence[float], failures: int,
               timeout_ms: float) -> list[object]:
    """One table row: failures count as ``timeout_ms`` in the percentiles (they waited)."""
    samples = list(latencies_ms) + [timeout_ms] * failures
    p99 = percentile(samples, 99)
    met = "yes" if failures == 0 and p99 <= P99_TARGET_MS else "NO"
    return [name, len(latencies_ms), failures, percentile(samples, 50), p99,
            max(samples, default=float("nan")), met]


def status_figures(status: dict[str, str], fds: int) -> tuple[int, float, int]:
    """(threads, RSS in MiB, open descriptors) from a /proc/PID/status mapping."""
    return int(status["Threads"]), int(status["VmRSS"].split()[0]) / 1024, fds


def client_hello(context: ssl.SSLContext) -> bytes:
    """A real TLS ClientHello, as a client using ``context`` would send first."""
    out = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), out, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


# -- the pressure: idle and slow connections, on one thread --------------------------------------


class Pressure:
    """``idle`` silent connections and ``slow`` ones dripping ``hello``, kept open: one
    closed by the server is opened again at once (counted in ``reconnects``)."""

    def __init__(self, port: int, idle: int, slow: int, hello: bytes, drip: float) -> None:
        self.port, self.hello, self.drip = port, hello, drip
        self.kinds = ["idle"] * idle + ["slow"] * slow
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.sent = [0] * len(self.kinds)
        self.reconnects = 0
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pressure", daemon=True)

    def _open(self, i: int) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            self.socks[i] = None
            return
        s.setblocking(False)
        self.socks[i], self.sent[i] = s, 0
        self.sel.register(s, selectors.EVENT_READ, i)

    def _reopen(self, i: int) -> None:
        s = self.socks[i]
        if s is not None:
            self.sel.unregister(s)
            s.close()
        self.reconnects += 1
        self._open(i)

    def start(self) -> None:
        for i in range(len(self.kinds)):
            self._open(i)
        self.thread.start()

    def _run(self) -> None:
        next_drip = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.1):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the server (head_timeout): keep the pressure up
                    self._reopen(i)
            for i, s in enumerate(self.socks):
                if s is None and not self.stop.is_set():
                    self._open(i)
            if time.monotonic() >= next_drip:
                next_drip += self.drip
                for i, kind in enumerate(self.kinds):
                    s = self.socks[i]
                    if kind == "slow" and s is not None and self.sent[i] < len(self.hello):
                        with contextlib.suppress(OSError):
                            self.sent[i] += s.send(self.hello[self.sent[i]:self.sent[i] + 1])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            if s is not None:
                s.close()
        self.sel.close()


# -- the normal client ---------------------------------------------------------------------------


def latencies(port: int, context: ssl.SSLContext, n: int, timeout: float, limit: float,
              fresh: bool) -> tuple[list[float], int]:
    """Milliseconds per successful GET of ``n`` sequential ones, and the failures."""
    out: list[float] = []
    failures = 0
    end = time.monotonic() + limit
    conn: http.client.HTTPSConnection | None = None
    for _ in range(n):
        if time.monotonic() >= end:
            break
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context,
                                                   timeout=timeout)
            conn.request("GET", "/hello.txt")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or body != BODY:
                raise RuntimeError(f"status {response.status}, {len(body)} bytes")
            out.append((time.perf_counter() - t0) * 1000)
        except (OSError, http.client.HTTPException, RuntimeError):
            failures += 1
            if conn is not None:
                conn.close()
            conn = None
            continue
        if fresh:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return out, failures


def server_figures(pid: int) -> tuple[int, float, int]:
    return status_figures(proc_status(pid), len(os.listdir(f"/proc/{pid}/fd")))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limit = raise_nofile()
    if limit < args.idle + args.slow + 100:
        print(f"descriptor limit {limit} is too low for {args.idle + args.slow} connections",
              file=sys.stderr)
        return 1
    trustme = _import_trustme()
    ca = trustme.CA()
    cctx = ssl.create_default_context()
    ca.configure_trust(cctx)
    rows: list[list[object]] = []
    figures: list[list[object]] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(h.temp_dir("bench-tls-idle-"))
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        (tmp / "www").mkdir()
        (tmp / "www" / "hello.txt").write_bytes(BODY)
        port = h.free_port()
        cmd = [sys.executable, "-m", "minihttp", "--bind", "127.0.0.1", "--quiet",
               "--tls-cert", str(tmp / "server.pem"), "-d", str(tmp / "www"), str(port)]
        if args.threads:
            cmd[3:3] = ["--threads", str(args.threads)]
        srv = stack.enter_context(h.start_server("minihttp-tls", cmd, port))
        pid = srv.proc.pid
        series = (("new connection each", True), ("keep-alive", False))
        h.log("no pressure ...")
        latencies(port, cctx, 20, args.timeout, args.time_limit, True)  # warm-up
        for name, fresh in series:
            lat, failed = latencies(port, cctx, args.requests, args.timeout,
                                    args.time_limit, fresh)
            rows.append(series_row(f"alone, {name}", lat, failed, args.timeout * 1000))
        figures.append(["alone", *server_figures(pid)])
        pressure = Pressure(port, args.idle, args.slow, client_hello(cctx), args.drip)
        h.log(f"opening {args.idle} idle and {args.slow} slow connections ...")
        pressure.start()
        stack.callback(pressure.close)
        time.sleep(2.0)  # accepted, and the slow ones have sent a byte or two
        figures.append([f"{args.idle} idle + {args.slow} slow", *server_figures(pid)])
        for name, fresh in series:
            h.log(f"under pressure, {name} ...")
            lat, failed = latencies(port, cctx, args.requests, args.timeout,
                                    args.time_limit, fresh)
            rows.append(series_row(f"pressure, {name}", lat, failed, args.timeout * 1000))
        figures.append(["pressure, at the end", *server_figures(pid)])
        reconnects = pressure.reconnects
    print(f"### Normal HTTPS client vs {args.idle} idle + {args.slow} slow-handshaking "
          f"connections (python -m minihttp --tls-cert)\n")
    print(h.markdown_table(["series", "ok", "failed", "p50 ms", "p99 ms", "max ms",
                            f"p99 <= {P99_TARGET_MS:.0f} ms, 0 failed"], rows))
    print()
    print(h.markdown_table(["server", "threads", "RSS MiB", "open fds"], figures))
    print(f"\n{reconnects} pressure connections closed by the server and reopened; "
          f"requests time out after {args.timeout} s, series end after {args.time_limit} s.")
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("tls-idle", {"args": vars(args), "rows": rows, "server": figures,
                                  "reconnects": reconnects, "note": h.machine_note()})
    return 0


def _import_trustme() -> Any:
    try:
        import trustme
    except ImportError:
        raise SystemExit("trustme is needed for the throw-away certificates: "
                         "pip install trustme") from None
    return trustme


if __name__ == "__main__":
    sys.exit(main())
