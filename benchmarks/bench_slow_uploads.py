"""Issue 16 item 2: 500 slow uploaders through the proxy and a normal client.

nginx (one process) answers uploads to ``/upload`` (``return 200``, the body discarded) and
serves a 12-byte hello; the proxy is the command line's default (``python -m minihttp.proxy
--quiet``, one process). This script opens ``--uploaders`` connections through the proxy
that each start a POST of a 1 MB body (Content-Length, above the loop's 64 KiB prefetch)
and then send it a byte every ``--interval`` seconds (one thread cycling over the sockets),
and meanwhile a normal client makes sequential keep-alive requests for the hello through
the same proxy for ``--seconds``. Measured: the normal client's p50 and p99 (target p99 <=
20 ms), the proxy's threads (target <= 64) and RSS. Before ``minihttp.proxy.upload`` each
slow uploader held a thread of the proxy (its body was read blocking).

    python3 benchmarks/bench_slow_uploads.py [--uploaders 500] [--seconds 10] [--json]
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
from benchmarks.bench_slow_readers import normal_client, percentile
from benchmarks.bench_tunnels import proc_status, raise_nofile

BODY = b"Hello World\n"
UPLOAD = 1000 * 1000
THREADS_TARGET = 64
P99_TARGET_MS = 20.0


class SlowUploaders:
    """``count`` connections each sending a 1 MB body a byte every ``interval`` seconds."""

    def __init__(self, proxy: int, upstream: int, count: int, interval: float) -> None:
        head = (f"POST http://127.0.0.1:{upstream}/upload HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{upstream}\r\nContent-Length: {UPLOAD}\r\n\r\n").encode()
        self.socks: list[socket.socket] = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
            s.sendall(head + b"x")
            s.setblocking(False)
            self.socks.append(s)
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for s in self.socks:
                with contextlib.suppress(BlockingIOError, OSError):
                    self.sent += s.send(b"x")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.socks:
            s.close()


_LOCATION = """root {root};
        location /upload {{
            client_max_body_size 0;
            return 200 "ok\\n";
        }}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between two bytes of each uploader")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    raise_nofile(4 * args.uploaders + 1000)
    up_port, px_port = h.free_port(), h.free_port()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(h.temp_dir("bench-slow-uploads-"))
        root = work / "www"
        root.mkdir()
        (root / "index.html").write_bytes(BODY)
        conf = _nginx.write_nginx_conf(work, root, up_port)
        conf.write_text(conf.read_text().replace(f"root {root};",
                                                 _LOCATION.format(root=root)))
        stack.enter_context(h.start_server(
            "nginx", _nginx.nginx_argv(conf, work), up_port))
        proxy = stack.enter_context(h.start_server("proxy", [
            sys.executable, "-m", "minihttp.proxy", "--bind", "127.0.0.1", "--quiet",
            str(px_port)], px_port))
        pid = proxy.proc.pid
        alone = sorted(normal_client(px_port, up_port, min(3.0, args.seconds)))
        before = proc_status(pid)
        uploaders = SlowUploaders(px_port, up_port, args.uploaders, args.interval)
        stack.callback(uploaders.close)
        time.sleep(2.0)  # every upload under way, the proxy waiting for its client
        lat = sorted(normal_client(px_port, up_port, args.seconds))
        status = proc_status(pid)
        sent = uploaders.sent

    p50, p99 = statistics.median(lat), percentile(lat, 0.99)
    threads = int(status["Threads"])
    rss_mb = int(status["VmRSS"].split()[0]) / 1024
    rows: list[list[object]] = [
        ["slow uploaders (1 MB bodies, a byte every s)", f"{args.uploaders} ({args.interval:g})",
         "", ""],
        ["normal client p50 ms (alone -> with uploaders)",
         f"{statistics.median(alone):.2f} -> {p50:.2f}", "", ""],
        ["normal client p99 ms (alone -> with uploaders)",
         f"{percentile(alone, 0.99):.2f} -> {p99:.2f}", f"<= {P99_TARGET_MS:g}",
         "yes" if p99 <= P99_TARGET_MS else "NO"],
        ["normal client requests", len(lat), "", ""],
        ["proxy threads (before -> with uploaders)", f"{before['Threads']} -> {threads}",
         f"<= {THREADS_TARGET}", "yes" if threads <= THREADS_TARGET else "NO"],
        ["proxy RSS MB (before -> with uploaders)",
         f"{int(before['VmRSS'].split()[0]) / 1024:.0f} -> {rss_mb:.0f}", "", ""],
        ["body bytes the uploaders sent", sent, "", ""],
    ]
    print(f"### {args.uploaders} slow uploaders through the proxy, one proxy process\n")
    print(h.markdown_table(["measure", "value", "target", "met"], rows))
    print(f"\n_{h.machine_note()}_")
    if args.json:
        h.write_json("slow-uploads", {"uploaders": args.uploaders, "p50_ms": p50,
                                      "p99_ms": p99, "threads": threads, "rss_mb": rss_mb,
                                      "note": h.machine_note()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
