"""How long ``shutdown()`` takes on an idle server: minihttp.socketserver vs the stdlib.

The standard library's ``serve_forever`` notices ``shutdown()`` only when its
``poll_interval`` (0.5 s by default) runs out, so an idle server takes on average half the
interval to stop, up to all of it. minihttp's loop also waits on a wake-up socketpair that
``shutdown()`` writes to, so it stops at once whatever the interval.

Method: for each sample a ``TCPServer`` with a no-op handler is started on 127.0.0.1 port 0
in a thread, serving with ``poll_interval=0.5``; the loop is proven running by one served
connection, then left idle for a random time in [0, poll_interval) (so the stdlib is caught
at every phase of its poll), then ``shutdown()`` is timed from the main thread. Competitors
alternate (ours, stdlib, ours, ...); medians, minimum and maximum are printed as Markdown.

Usage: ``python benchmarks/shutdown_latency.py [--samples N] [--poll-interval S] [--json]``
"""

from __future__ import annotations

import argparse
import random
import socket
import socketserver as std_socketserver  # the competitor; minihttp itself never imports it
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from minihttp import socketserver as our_socketserver

COMPETITORS: dict[str, Any] = {
    "minihttp.socketserver": our_socketserver,
    "stdlib socketserver": std_socketserver,
}


def one_sample(module: Any, poll_interval: float, rng: random.Random) -> float:
    """Seconds taken by ``shutdown()`` on an idle, running server."""

    class Quiet(module.BaseRequestHandler):  # type: ignore[misc]
        def handle(self) -> None:
            self.request.recv(1)

    server = module.TCPServer(("127.0.0.1", 0), Quiet)
    loop = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    loop.start()
    try:
        with socket.create_connection(server.server_address, timeout=10) as c:
            c.sendall(b"x")
            c.settimeout(10)
            c.recv(1)  # EOF: the request was served, so the loop is running
        time.sleep(rng.uniform(0, poll_interval))
        start = time.perf_counter()
        server.shutdown()
        elapsed = time.perf_counter() - start
    finally:
        loop.join(10)
        server.server_close()
    if loop.is_alive():
        raise RuntimeError("serve_forever did not return")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="samples per competitor")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also write benchmarks/results/")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    samples: dict[str, list[float]] = {name: [] for name in COMPETITORS}
    for i in range(args.samples):
        for name, module in COMPETITORS.items():
            samples[name].append(one_sample(module, args.poll_interval, rng))
        print(f"sample {i + 1}/{args.samples}: " + ", ".join(
            f"{n} {v[-1] * 1e3:.2f} ms" for n, v in samples.items()), file=sys.stderr)
    rows = [[name, h.median(v) * 1e3, min(v) * 1e3, max(v) * 1e3] for name, v in samples.items()]
    print(f"shutdown() latency while idle, poll_interval={args.poll_interval} s, "
          f"{args.samples} samples each ({h.machine_note()})\n")
    print(h.markdown_table(["server", "median ms", "min ms", "max ms"], rows))
    ours, theirs = (h.median(v) for v in samples.values())
    print(f"\nstdlib median / minihttp median: {h.ratio(theirs, ours):,.0f}x")
    if args.json:
        path = h.write_json("shutdown", {"poll_interval": args.poll_interval,
                                         "samples_s": samples, "machine": h.machine_note()})
        print(f"raw samples: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
