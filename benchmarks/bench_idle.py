"""Issue 6: 10,000 idle keep-alive connections to the pooled server, and a normal client.

Each idle connection makes one request, then stays open and silent. Measured: the server's
threads (/proc/PID/status Threads), its resident memory (VmRSS), and the latency of a normal
client making ``--requests`` sequential keep-alive requests meanwhile. Targets: <= 64
threads, <= 250 MB, p99 < 50 ms. The descriptor limit is raised to the hard limit first (the
server inherits it).

    python3 benchmarks/bench_idle.py [--connections 10000] [--requests 500] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
BATCH = 500


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def read_one(sock: socket.socket, deadline: float) -> None:
    """Read one small response (Content-Length 12) whole, bounded by ``deadline``."""
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"Hello World\n")):
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk


def open_idle(port: int, count: int, log: object) -> list[socket.socket]:
    """``count`` connections that each made one request, in batches (bounded in time)."""
    socks: list[socket.socket] = []
    deadline = time.monotonic() + 300
    while len(socks) < count:
        batch = []
        for _ in range(min(BATCH, count - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(REQUEST)
            batch.append(s)
        for s in batch:
            read_one(s, deadline)
        socks += batch
        if len(socks) % 2000 == 0:
            print(f"  {len(socks)} idle connections", file=sys.stderr, flush=True)
    return socks


def latency(port: int, n: int) -> list[float]:
    """Milliseconds per request of ``n`` sequential keep-alive requests."""
    out = []
    deadline = time.monotonic() + 120
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(REQUEST)
            read_one(s, deadline)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    limit = raise_nofile()
    if limit < args.connections + 100:
        print(f"descriptor limit {limit} is too low for {args.connections} connections",
              file=sys.stderr)
        return 1
    port = h.free_port()
    argv_ = h.python_server_argv("minihttp_hello.py", "--port", str(port), "--pool")
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(h.start_server("minihttp-pool", argv_, port))
        pid = srv.proc.pid
        base = latency(port, args.requests)
        before = proc_status(pid)
        t0 = time.monotonic()
        socks = open_idle(port, args.connections, sys.stderr)
        opened = time.monotonic() - t0
        for s in socks:
            stack.callback(s.close)
        time.sleep(1.0)
        status = proc_status(pid)
        lat = sorted(latency(port, args.requests))
        still_open = sum(1 for s in socks[:200] if _alive(s))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rss_mb = int(status["VmRSS"].split()[0]) / 1024
    threads = int(status["Threads"])
    rows = [
        ["idle connections", args.connections, "", ""],
        ["seconds to open them", round(opened, 1), "", ""],
        ["server threads (before -> with idle)", f"{before['Threads']} -> {threads}",
         "<= 64", "yes" if threads <= 64 else "NO"],
        ["server RSS MB (before -> with idle)",
         f"{int(before['VmRSS'].split()[0]) / 1024:.0f} -> {rss_mb:.0f}",
         "<= 250", "yes" if rss_mb <= 250 else "NO"],
        ["normal client p50 ms (no idle -> idle)",
         f"{statistics.median(base):.2f} -> {p50:.2f}", "", ""],
        ["normal client p99 ms", round(p99, 2), "< 50", "yes" if p99 < 50 else "NO"],
        ["sample of idle connections still open", f"{still_open}/200", "", ""],
    ]
    print(f"### {args.connections} idle keep-alive connections, PooledHTTPServer\n")
    print(h.markdown_table(["measure", "value", "target", "met"], rows))
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("idle", {"connections": args.connections, "threads": threads,
                              "rss_mb": rss_mb, "p50_ms": p50, "p99_ms": p99,
                              "note": h.machine_note()})
    return 0


def _alive(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
