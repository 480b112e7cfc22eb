"""Issue 6: 1,000 slowloris clients vs wrk with 8 normal keep-alive connections.

For each server (the pooled minihttp server, the standard library's ThreadingHTTPServer):
wrk alone, then wrk while ``--slow`` clients each send one byte of a never-ending request
head per second (a client that is answered or closed reconnects at once, so the pressure
stays). Target for the pooled server: throughput under attack >= 0.8 of the unloaded
figure, 0 errors. The descriptor limit is raised to the hard limit first.

    python3 benchmarks/bench_slowloris.py [--slow 1000] [--duration 8] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks.bench_idle import proc_status, raise_nofile

HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 4000


class Slowloris:
    """``count`` connections, one byte each per ``interval`` seconds, on one thread."""

    def __init__(self, port: int, count: int, interval: float = 1.0) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.socks: list[tuple[socket.socket, int]] = []
        self.reconnects = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> tuple[socket.socket, int] | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        s.setblocking(False)
        return s, 0

    def start(self) -> None:
        for _ in range(self.count):
            c = self._connect()
            if c is not None:
                self.socks.append(c)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            for i, (s, pos) in enumerate(self.socks):
                try:
                    try:
                        if s.recv(4096, socket.MSG_PEEK) is not None:
                            raise ConnectionError("answered or closed")  # 408 or EOF
                    except BlockingIOError:
                        pass
                    s.send(HEAD[pos % len(HEAD):pos % len(HEAD) + 1])
                    self.socks[i] = (s, pos + 1)
                except OSError:
                    s.close()
                    self.reconnects += 1
                    c = self._connect()
                    if c is not None:
                        self.socks[i] = c
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s, _ in self.socks:
            s.close()


def measure(name: str, argv: list[str], port: int, args: argparse.Namespace) -> list[object]:
    url = f"http://127.0.0.1:{port}/"
    with h.start_server(name, argv, port) as srv:
        h.check_get(port, "/", b"Hello World\n")
        h.run_wrk(url, connections=8, duration=1)  # warm-up
        alone = h.run_wrk(url, connections=8, duration=args.duration)
        attack = Slowloris(port, args.slow)
        attack.start()
        try:
            time.sleep(2.0)  # every slow client has sent a few bytes
            threads = proc_status(srv.proc.pid)["Threads"]
            loaded = h.run_wrk(url, connections=8, duration=args.duration)
        finally:
            attack.close()
    ratio = h.ratio(loaded.requests_per_sec, alone.requests_per_sec)
    return [name, round(alone.requests_per_sec), round(loaded.requests_per_sec), ratio,
            loaded.errors, threads, attack.reconnects,
            "yes" if ratio >= 0.8 and loaded.errors == 0 else "NO"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000, help="slowloris clients")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    h.require_wrk()
    raise_nofile()
    rows = []
    for name, script, extra in (("minihttp-pool", "minihttp_hello.py", ["--pool"]),
                                ("stdlib", "stdlib_hello.py", [])):
        port = h.free_port()
        print(f"{name} ...", file=sys.stderr, flush=True)
        with contextlib.suppress(h.WrkError):
            rows.append(measure(name, h.python_server_argv(script, "--port", str(port), *extra),
                                port, args))
            continue
        rows.append([name, "wrk failed", "", "", "", "", "", "NO"])
    print(f"### {args.slow} slowloris clients (1 byte/s) + wrk -c8 -d{args.duration}s\n")
    print(h.markdown_table(["server", "req/s alone", "req/s attacked", "ratio", "errors",
                            "server threads", "slow reconnects", ">= 0.8, 0 errors"], rows))
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("slowloris", {"rows": rows, "note": h.machine_note()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
