"""CPU cost of one keep-alive hello request in minihttp's own Python code, without a network.

wrk figures on a 2-core machine swing with whatever else runs; this one does not much. It
drives ``handle_one_request`` of the hello handler (benchmarks/servers/minihttp_hello.py)
over a fake socket that always holds one whole request head, and reports the best of
several runs of process CPU time per request: parsing, dispatch, the handler's five API
calls and building the response, but no system calls.

    python3 benchmarks/cpu_hello.py [--requests N] [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minihttp_hello  # type: ignore[import-not-found]

from benchmarks._fakesock import FakeServer, FakeSocket

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


def per_request(n: int) -> float:
    """Seconds of process CPU time per request over ``n`` requests on one connection."""
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        handler = minihttp_hello.HelloHandler.attach(a, ("127.0.0.1", 1), FakeServer())
        handler.reader.sock = FakeSocket(REQUEST)
        handler._writer.sock = FakeSocket(REQUEST)
        one = handler.handle_one_request
        started = time.process_time()
        for _ in range(n):
            one()
        spent = time.process_time() - started
        if handler.close_connection:
            raise SystemExit("the connection was closed: the fake request is not understood")
        return spent / n
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile one run instead")
    args = parser.parse_args()
    per_request(2_000)  # warm caches
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(per_request, args.requests)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    best = min(per_request(args.requests) for _ in range(args.runs))
    print(f"minihttp hello: {best * 1e6:.2f} us of Python CPU per request "
          f"(best of {args.runs} x {args.requests})")


if __name__ == "__main__":
    main()
