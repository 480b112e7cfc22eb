"""Soak run: many requests over keep-alive and new connections, with abrupt disconnects.

Client threads in this process drive a server running in this process (so its threads and
descriptors can be counted): each picks, at random (seeded), keep-alive sessions of 1-20
requests or one request per connection; 10% of requests end with an abrupt disconnect
(SO_LINGER 0 then close) mid-head, right after the request, or after part of the response.
Every response read to the end is checked: exact status line, Content-Length, and the body
the path asks for (its size and content are derived from the path). Afterwards the server's
thread count and open descriptors must be back where they started.

    python3 -m benchmarks.soak                       # 100,000 requests, ThreadingHTTPServer
    python3 -m benchmarks.soak --server pooled       # minihttp.eventloop.PooledHTTPServer
    python3 -m benchmarks.soak --requests 2000 --clients 4

Prints one JSON object (requests/s, errors, fds/threads before and after). Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from typing import Any

from minihttp.config import Limits
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIMITS = Limits(head_timeout=5.0, keepalive_timeout=5.0, body_timeout=5.0, send_timeout=5.0,
                discard_timeout=0.5)


def body_for(n: int) -> bytes:
    """The body of /n/<n>: size n % 20011, content a function of n (so a mix-up shows)."""
    size = n % 20011
    unit = b"%d;" % n
    return (unit * (size // len(unit) + 1))[:size]


class SoakHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        try:
            n = int(self.path.rsplit("/", 1)[1])
        except (ValueError, IndexError):
            self.send_error(404)
            return
        body = body_for(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def server_class(kind: str) -> type:
    base: type = ThreadingHTTPServer
    if kind == "pooled":
        from minihttp.eventloop import PooledHTTPServer

        base = PooledHTTPServer
    return type("SoakServer", (base,), {"limits": LIMITS, "daemon_threads": True,
                                        "request_queue_size": 256})


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclasses.dataclass
class Tally:
    completed: int = 0
    aborted: int = 0
    connections: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, completed: int = 0, aborted: int = 0, connections: int = 0,
            error: str | None = None) -> None:
        with self.lock:
            self.completed += completed
            self.aborted += aborted
            self.connections += connections
            if error is not None and len(self.errors) < 20:
                self.errors.append(error)


class Client:
    """A keep-alive connection with a strict little response reader."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed mid-response")
            self.buf += data

    def get(self, n: int) -> None:
        self.sock.sendall(b"GET /n/%d HTTP/1.1\r\nHost: soak\r\n\r\n" % n)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._need(len(self.buf) + 1)
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        if lines[0] != "HTTP/1.1 200 OK":
            raise ValueError(f"bad status line {lines[0]!r}")
        fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = body_for(n)
        if fields.get("content-length") != str(len(want)) or "connection" in fields:
            raise ValueError(f"bad fields for /n/{n}: {fields}")
        self._need(len(want))
        body, self.buf = self.buf[:len(want)], self.buf[len(want):]
        if body != want:
            raise ValueError(f"wrong body for /n/{n}")

    def abort(self, rng: random.Random, n: int) -> None:
        """Disconnect abruptly: mid-head, after the request, or after part of the response."""
        how = rng.randrange(3)
        req = b"GET /n/%d HTTP/1.1\r\nHost: soak\r\n\r\n" % n
        if how == 0:
            self.sock.sendall(req[: rng.randrange(1, len(req) - 1)])
        else:
            self.sock.sendall(req)
            if how == 2:
                with contextlib.suppress(OSError):
                    self.sock.recv(rng.randrange(1, 200))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _worker(addr: tuple[str, int], quota: int, seed: int, abort_ratio: float,
            tally: Tally) -> None:
    rng = random.Random(seed)
    done = 0
    while done < quota:
        session = 1 if rng.random() < 0.5 else rng.randint(2, 20)
        try:
            client = Client(addr)
        except OSError as err:
            tally.add(error=f"connect: {err!r}")
            done += 1
            continue
        tally.add(connections=1)
        try:
            for _ in range(min(session, quota - done)):
                n = rng.randrange(1_000_000)
                done += 1
                if rng.random() < abort_ratio:
                    client.abort(rng, n)
                    tally.add(aborted=1)
                    break
                client.get(n)
                tally.add(completed=1)
        except (OSError, EOFError, ValueError) as err:
            tally.add(error=f"{type(err).__name__}: {err}")
        finally:
            client.close()


def settle(cond: Any, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def run(requests: int = 100_000, clients: int = 8, server: str = "threading",
        abort_ratio: float = 0.1, seed: int = 7) -> dict[str, Any]:
    """Run the soak; return its figures (see the module docstring)."""
    threads_before, fds_before = threading.active_count(), open_fds()
    srv = server_class(server)(("127.0.0.1", 0), SoakHandler)
    loop = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                            daemon=True)
    loop.start()
    addr = srv.server_address[:2]
    Client(addr).close()  # the server is up
    time.sleep(0.1)
    threads_start, fds_start = threading.active_count(), open_fds()
    tally = Tally()
    per = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    workers = [threading.Thread(target=_worker, args=(addr, per[i], seed + i, abort_ratio, tally))
               for i in range(clients)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    # Workers of a pool stay; per-connection threads and sockets must all be gone.
    settle(lambda: open_fds() <= fds_start and threading.active_count() <= max(
        threads_start, threads_start if server == "threading" else threads_start + srv.max_workers))
    threads_idle, fds_idle = threading.active_count(), open_fds()
    srv.shutdown()
    loop.join(10)
    srv.server_close()
    settle(lambda: threading.active_count() <= threads_before and open_fds() <= fds_before)
    return {
        "server": server, "requests": requests, "clients": clients,
        "completed": tally.completed, "aborted": tally.aborted, "connections": tally.connections,
        "errors": tally.errors, "seconds": round(elapsed, 2),
        "requests_per_s": round((tally.completed + tally.aborted) / elapsed),
        "threads": {"before": threads_before, "serving_start": threads_start,
                    "serving_after": threads_idle, "after_close": threading.active_count()},
        "fds": {"before": fds_before, "serving_start": fds_start, "serving_after": fds_idle,
                "after_close": open_fds()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--server", choices=["threading", "pooled"], default="threading")
    p.add_argument("--abort-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    out = run(a.requests, a.clients, a.server, a.abort_ratio, a.seed)
    print(json.dumps(out, indent=2))
    ok = (not out["errors"] and out["fds"]["after_close"] <= out["fds"]["before"]
          and out["threads"]["after_close"] <= out["threads"]["before"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
