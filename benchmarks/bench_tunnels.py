"""Issue 16 item 2: 10,000 open idle CONNECT tunnels through one proxy process, a normal
client meanwhile, and how long a graceful stop takes with them open.

Three processes: an upstream (this script with ``--serve-upstream PORT``: one thread, one
selector, echoes whatever a connection sends), the proxy (``python -m minihttp.proxy --quiet
--connect-port PORT``, the command line's default server) and this script as the client:
it opens ``--tunnels`` tunnels (CONNECT, 200, one echoed "ping" each), leaves them open and
silent, then measures

* the proxy's threads (/proc/PID/status Threads) and resident memory (VmRSS): targets <= 64
  threads and <= 300 MB;
* the latency of ``--requests`` sequential CONNECT + ping round trips of a new tunnel each
  meanwhile (a normal client; no target, for the record);
* the seconds from SIGINT to the proxy's exit with the tunnels still open (a graceful stop
  must not wait the whole grace, 5 s, for idle tunnels).

Each side needs a descriptor per tunnel (the proxy two): the soft and hard limits are raised
for this process and its children (as root the hard limit too, up to ``2 * tunnels +
1000``), which is what ``minihttp.cli.raise_open_file_limit`` would do at the proxy's start.

With ``--workers N`` the proxy runs as N pre-forked processes (``--workers N`` of the
command line) and threads and memory are summed over the supervisor and its workers: each
worker then needs only ``2 * tunnels / N`` descriptors, which is how 10,000 tunnels fit under
a hard limit of 20,000 (this machine's; a process may not raise it).

    python3 benchmarks/bench_tunnels.py [--tunnels 10000] [--requests 200] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

BATCH = 500
THREADS_TARGET = 64
RSS_TARGET_MB = 300


def raise_nofile(want: int) -> int:
    """Soft (and, when allowed, hard) RLIMIT_NOFILE up to ``want``; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve_upstream(port: int) -> None:
    """The echo upstream: one thread, one selector (runs until killed)."""
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if sock is listener:
                for _ in range(64):
                    try:
                        conn, _addr = listener.accept()
                    except (BlockingIOError, OSError):
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                with contextlib.suppress(OSError):
                    sock.send(data)  # tiny pings: the buffer always takes them
                continue
            sel.unregister(sock)
            sock.close()


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (the pre-forked workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def summed_status(pid: int) -> dict[str, str]:
    """Threads and VmRSS (kB) summed over ``pid`` and its children, as proc_status says."""
    threads = rss = 0
    for p in family(pid):
        with contextlib.suppress(OSError):
            st = proc_status(p)
            threads += int(st["Threads"])
            rss += int(st["VmRSS"].split()[0])
    return {"Threads": str(threads), "VmRSS": f"{rss} kB"}


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _read_head(s: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        piece = s.recv(4096)
        if not piece:
            raise ConnectionError(f"proxy closed the connection: {head!r}")
        head += piece
    return head


def open_tunnels(proxy: int, target: int, count: int) -> list[socket.socket]:
    """``count`` tunnels that each echoed one ping, opened in batches."""
    request = f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\n\r\n"
    socks: list[socket.socket] = []
    while len(socks) < count:
        batch = []
        for _ in range(min(BATCH, count - len(socks))):
            s = socket.create_connection(("127.0.0.1", proxy), timeout=30)
            s.sendall(request.encode())
            batch.append(s)
        for s in batch:
            head = _read_head(s)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"CONNECT refused: {head[:60]!r}")
            s.sendall(b"ping")
        for s in batch:
            if s.recv(4) != b"ping":
                raise RuntimeError("no echo through the tunnel")
        socks += batch
        if len(socks) % 2000 == 0:
            h.log(f"  {len(socks)} tunnels open")
    return socks


def tunnel_latency(proxy: int, target: int, n: int) -> list[float]:
    """Milliseconds for CONNECT + 200 + one echoed ping, ``n`` times, a new tunnel each."""
    out = []
    request = f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\n\r\n"
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", proxy), timeout=10) as s:
            s.sendall(request.encode())
            _read_head(s)
            s.sendall(b"ping")
            if s.recv(4) != b"ping":
                raise RuntimeError("no echo")
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0,
                        help="run the proxy as N pre-forked processes (sums their figures)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    per_process = 2 * args.tunnels // max(1, args.workers) + 1000
    limit = raise_nofile(max(per_process, args.tunnels + 1000))
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if limit < per_process - 800:
        h.log(f"descriptor limit {limit} is too low for {args.tunnels} tunnels (the proxy "
              "needs two descriptors a tunnel): raise the hard limit or use --workers")
        return 1
    up_port, px_port = h.free_port(), h.free_port()
    proxy_argv = [sys.executable, "-m", "minihttp.proxy", "--bind", "127.0.0.1", "--quiet",
                  "--connect-port", str(up_port), "--tunnel-idle-timeout", "600",
                  str(px_port)] + (["--workers", str(args.workers)] if args.workers else [])
    with contextlib.ExitStack() as stack:
        stack.enter_context(h.start_server(
            "upstream", [sys.executable, str(Path(__file__).resolve()),
                         "--serve-upstream", str(up_port)], up_port))
        proxy = stack.enter_context(h.start_server("proxy", proxy_argv, px_port))
        pid = proxy.proc.pid
        base = tunnel_latency(px_port, up_port, args.requests)
        status_of = summed_status if args.workers else proc_status
        before = status_of(pid)
        t0 = time.monotonic()
        socks = open_tunnels(px_port, up_port, args.tunnels)
        opened = time.monotonic() - t0
        for s in socks:
            stack.callback(s.close)
        time.sleep(1.0)
        status = status_of(pid)
        lat = sorted(tunnel_latency(px_port, up_port, args.requests))
        t0 = time.monotonic()
        proxy.proc.send_signal(signal.SIGINT)
        try:
            proxy.proc.wait(30)
            stop_s: float | str = round(time.monotonic() - t0, 2)
        except subprocess.TimeoutExpired:
            stop_s = "> 30"
        closed = sum(1 for s in socks[:200] if _closed(s))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rss_mb = int(status["VmRSS"].split()[0]) / 1024
    threads = int(status["Threads"])
    rows = [
        ["open idle tunnels", args.tunnels, "", ""],
        ["seconds to open them", round(opened, 1), "", ""],
        ["proxy threads (before -> with tunnels)", f"{before['Threads']} -> {threads}",
         f"<= {THREADS_TARGET}", "yes" if threads <= THREADS_TARGET else "NO"],
        ["proxy RSS MB (before -> with tunnels)",
         f"{int(before['VmRSS'].split()[0]) / 1024:.0f} -> {rss_mb:.0f}",
         f"<= {RSS_TARGET_MB}", "yes" if rss_mb <= RSS_TARGET_MB else "NO"],
        ["new tunnel + ping p50 ms (none open -> open)",
         f"{statistics.median(base):.2f} -> {p50:.2f}", "", ""],
        ["new tunnel + ping p99 ms", round(p99, 2), "", ""],
        ["seconds from SIGINT to exit, tunnels open", stop_s, "< 5 (the grace)",
         "yes" if isinstance(stop_s, float) and stop_s < 5 else "NO"],
        ["sample of tunnels closed by the stop", f"{closed}/{min(200, args.tunnels)}", "", ""],
    ]
    who = (f"{args.workers} proxy worker processes (figures summed)" if args.workers
           else "one proxy process (CLI default)")
    print(f"### {args.tunnels} open idle CONNECT tunnels, {who}\n")
    print(h.markdown_table(["measure", "value", "target", "met"], rows))
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("tunnels", {"tunnels": args.tunnels, "threads": threads, "rss_mb": rss_mb,
                                 "p50_ms": p50, "p99_ms": p99, "stop_s": stop_s,
                                 "note": h.machine_note()})
    return 0


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


if __name__ == "__main__":
    sys.exit(main())
