"""Issue 16 item 2: 1,000 slow readers of a 10 MB proxied response and a normal client.

nginx (one process) serves a 10 MB file and a 12-byte hello; the proxy is the command line's
default (``python -m minihttp.proxy --quiet``, one process). This script opens
``--readers`` connections through the proxy that each ask for the 10 MB file and then read
it slowly (``--rate`` bytes a second each, by one thread cycling over non-blocking sockets;
small receive buffers, so the proxy soon has to wait for them), and meanwhile a normal
client makes sequential keep-alive requests for the hello through the same proxy for
``--seconds``. Measured: the normal client's p50 and p99 (target p99 <= 20 ms), the proxy's
threads and RSS. Before ``defer_until_writable`` each slow reader held a thread of the proxy
while its send waited (and the loop moved from thread to thread).

    python3 benchmarks/bench_slow_readers.py [--readers 1000] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks import _nginx
from benchmarks.bench_tunnels import proc_status, raise_nofile

BODY = b"Hello World\n"
BIG = 10 * 1000 * 1000
P99_TARGET_MS = 20.0


def _read_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            raise ConnectionError("proxy closed the connection")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer {head[:60]!r}")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)


def normal_client(proxy: int, upstream: int, seconds: float) -> list[float]:
    """Milliseconds per sequential keep-alive hello request through the proxy."""
    request = (f"GET http://127.0.0.1:{upstream}/ HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{upstream}\r\n\r\n").encode()
    out = []
    end = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", proxy), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.monotonic() < end:
            t0 = time.perf_counter()
            s.sendall(request)
            _read_response(s)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank)."""
    return values[min(len(values) - 1, int(len(values) * q))]


class SlowReaders:
    """``count`` connections reading the big file at ``rate`` bytes a second each."""

    def __init__(self, proxy: int, upstream: int, count: int, rate: int) -> None:
        request = (f"GET http://127.0.0.1:{upstream}/big.bin HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{upstream}\r\n\r\n").encode()
        self.socks: list[socket.socket] = []
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.connect(("127.0.0.1", proxy))
            s.sendall(request)
            s.setblocking(False)
            self.socks.append(s)
        self.rate = rate
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0.1
        per_tick = max(1, int(self.rate * tick))
        while not self._stop.wait(tick):
            for s in self.socks:
                with contextlib.suppress(BlockingIOError, OSError):
                    self.received += len(s.recv(per_tick))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.socks:
            s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=16384, help="bytes/s per slow reader")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    raise_nofile(4 * args.readers + 1000)
    up_port, px_port = h.free_port(), h.free_port()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(h.temp_dir("bench-slow-readers-"))
        root = work / "www"
        root.mkdir()
        (root / "index.html").write_bytes(BODY)
        (root / "big.bin").write_bytes(b"x" * BIG)
        stack.enter_context(h.start_server(
            "nginx", _nginx.nginx_argv(_nginx.write_nginx_conf(work, root, up_port), work),
            up_port))
        proxy = stack.enter_context(h.start_server("proxy", [
            sys.executable, "-m", "minihttp.proxy", "--bind", "127.0.0.1", "--quiet",
            str(px_port)], px_port))
        pid = proxy.proc.pid
        alone = sorted(normal_client(px_port, up_port, min(3.0, args.seconds)))
        before = proc_status(pid)
        readers = SlowReaders(px_port, up_port, args.readers, args.rate)
        stack.callback(readers.close)
        time.sleep(2.0)  # every reader's response under way, the proxy waiting for them
        lat = sorted(normal_client(px_port, up_port, args.seconds))
        status = proc_status(pid)
        received = readers.received

    p50, p99 = statistics.median(lat), percentile(lat, 0.99)
    rss_mb = int(status["VmRSS"].split()[0]) / 1024
    rows: list[list[object]] = [
        ["slow readers (10 MB each, bytes/s each)", f"{args.readers} ({args.rate})", "", ""],
        ["normal client p50 ms (alone -> with readers)",
         f"{statistics.median(alone):.2f} -> {p50:.2f}", "", ""],
        ["normal client p99 ms (alone -> with readers)",
         f"{percentile(alone, 0.99):.2f} -> {p99:.2f}", f"<= {P99_TARGET_MS:g}",
         "yes" if p99 <= P99_TARGET_MS else "NO"],
        ["normal client requests", len(lat), "", ""],
        ["proxy threads (before -> with readers)", f"{before['Threads']} -> {status['Threads']}",
         "", ""],
        ["proxy RSS MB (before -> with readers)",
         f"{int(before['VmRSS'].split()[0]) / 1024:.0f} -> {rss_mb:.0f}", "", ""],
        ["MB the slow readers received", f"{received / 1e6:.1f}", "", ""],
    ]
    print(f"### {args.readers} slow readers of a 10 MB proxied response, one proxy process\n")
    print(h.markdown_table(["measure", "value", "target", "met"], rows))
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("slow-readers", {"readers": args.readers, "p50_ms": p50, "p99_ms": p99,
                                      "threads": int(status["Threads"]), "rss_mb": rss_mb,
                                      "note": h.machine_note()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
