"""A socket stand-in for the CPU-per-request benchmarks (cpu_hello.py, cpu_static.py).

Every read returns the same whole request head and every write is dropped (or kept, to check
the first response), so a handler's ``handle_one_request`` can be timed without the kernel:
what remains is minihttp's own Python work per request.
"""

from __future__ import annotations

import time
from typing import Any

from minihttp.server import ThreadingHTTPServer


class FakeSocket:
    """Reads give ``request`` whole, every time; writes are dropped, or kept in ``sent``."""

    def __init__(self, request: bytes, keep: bool = False) -> None:
        self.request = request
        self.sent: list[bytes] | None = [] if keep else None

    def recv(self, n: int) -> bytes:
        return self.request

    def recv_into(self, buf: Any, n: int = 0) -> int:
        request = self.request
        buf[: len(request)] = request
        return len(request)

    def sendall(self, data: Any) -> None:
        if self.sent is not None:
            self.sent.append(bytes(data))

    def send(self, data: Any) -> int:
        self.sendall(data)
        return len(data)

    def settimeout(self, t: float | None) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def gettimeout(self) -> float | None:
        return None


class FakeServer:
    """What a handler reads from its server on the request path."""

    limits = ThreadingHTTPServer.limits


def start_loop(server: Any, name: str, pin: bool, profile: Any = None) -> tuple[Any, int]:
    """Run a pooled ``server``'s ``serve_forever`` on a new thread: (thread, CPU clock id).

    ``pin``: the process is first pinned to one CPU, so the loop and the in-process client
    share it and the figure is stable. The watchdog's budget is raised to 0.5 s: on a busy
    machine a descheduled loop thread looks like a blocking handler, and the loop would move
    to another thread, out of the measured clock. ``profile`` (a ``cProfile.Profile``)
    profiles the loop thread's whole life.
    """
    import os
    import threading

    if pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    server.inline_budget = 0.5
    clocks: list[int] = []
    started = threading.Event()

    def serve() -> None:
        clocks.append(time.pthread_getcpuclockid(threading.get_ident()))
        started.set()
        if profile is not None:
            profile.runcall(server.serve_forever)
        else:
            server.serve_forever()

    loop = threading.Thread(target=serve, name=name)
    loop.start()
    if not started.wait(10.0):
        raise SystemExit("the server's loop did not start")
    return loop, clocks[0]


def cpu_per_request(handler: Any, n: int) -> float:
    """Seconds of process CPU time per ``handle_one_request`` over ``n`` requests."""
    one = handler.handle_one_request
    started = time.process_time()
    for _ in range(n):
        one()
    spent = time.process_time() - started
    if handler.close_connection:
        raise SystemExit("the connection was closed: the fake request is not understood")
    return spent / n
