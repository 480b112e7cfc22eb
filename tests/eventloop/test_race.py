"""The deposition race (issue 12): a deposition that fails (no worker free) must be invisible.

When the watchdog tries to hand the loop over while every worker is busy, the leader it
tried to depose keeps the loop. Before the fix the deposition bumped the leader's epoch and
rolled it back on failure, and the leader read the epoch without the lock when its handler
returned: inside that window a leader that was never deposed believed it was, skipped
suspending its deferred request, and waited for it on the loop thread (``finish_deferred``),
so every other client waited with it (the issue measured 2.00 s instead of 0.00 s).

The test opens the window on purpose, with events: a pool whose ``try_run_now`` fails and
holds the deposition open until the handler has returned (its frame left the leader's
stack), plus 50 ms for the leader to reach its check. Everything is loopback and bounded.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import BaseHTTPRequestHandler
from minihttp.socketserver import WorkerPool
from tests.helpers.servers import running, wait_for


class NoFreeWorker(WorkerPool):
    """Every worker busy as far as handing the loop over goes: ``try_run_now`` fails. The
    first call is held open (the deposition under way) until the test releases it."""

    def __init__(self) -> None:
        super().__init__(4, 4, name="minihttp-pool")
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def try_run_now(self, fn: Callable[..., object], *args: Any) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(10)
        return False


class State:
    pool: NoFreeWorker
    aux: socket.socket
    peer: socket.socket
    deferred: list[bool] = []
    #: The thread the deferring handler ran on (the loop's leader).
    leader = 0
    #: Threads on which a deferred request was waited for by its handler (finish_deferred).
    finished_here: list[str] = []


class DefersWhileDeposed(BaseHTTPRequestHandler):
    """``/hello``; ``/wait``: defers on State.aux, then holds the loop until the watchdog is
    inside its (failing) deposition, then returns."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/wait":
            self.answer(b"hello")
            return

        def then(ready: bool) -> None:
            self.answer(b"got " + (State.aux.recv(16) if ready else b"nothing"))

        State.leader = threading.get_ident()
        deferred = self.defer_until_readable(State.aux, then, 5.0)
        State.deferred.append(deferred)
        if not deferred:
            then(bool(State.aux.recv(16)))
            return
        State.pool.entered.wait(10)  # the watchdog is deposing us, and will fail

    def finish_deferred(self, until: float | None = None) -> None:
        State.finished_here.append(threading.current_thread().name)
        super().finish_deferred(until)


@pytest.fixture
def state() -> Iterator[type[State]]:
    State.pool = NoFreeWorker()
    State.aux, State.peer = socket.socketpair()
    State.deferred = []
    State.finished_here = []
    State.leader = 0
    try:
        yield State
    finally:
        State.pool.release.set()
        State.aux.close()
        State.peer.close()


def in_stack(ident: int, name: str) -> bool:
    """Whether thread ``ident`` is running a function called ``name`` right now."""
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


def get(server: Any, path: str, timeout: float) -> bytes:
    with socket.create_connection(server.server_address[:2], timeout=timeout) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"hello") and len(data) < 4096:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_failed_deposition_does_not_make_the_leader_wait_on_the_loop(
        state: type[State]) -> None:
    cls = type("RacePooled", (PooledHTTPServer,), {"inline_budget": 0.005})
    server = cls(("127.0.0.1", 0), DefersWhileDeposed)
    server._pool = state.pool
    with (running(server),
          socket.create_connection(server.server_address[:2], timeout=10) as slow):
        slow.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        assert state.pool.entered.wait(5), "the watchdog never tried to depose"
        # The handler returns while the deposition is held open; the leader then asks
        # whether it still leads. Give it that moment, then let the deposition fail.
        assert wait_for(lambda: not in_stack(state.leader, "handle_one_request"), 5)
        time.sleep(0.05)
        state.pool.release.set()
        assert state.deferred == [True]
        # The leader was never deposed: the loop waits for the deferred request and
        # answers others meanwhile (before the fix: blocked for the 5 s wait).
        started = time.monotonic()
        assert get(server, "/hello", timeout=2.0).endswith(b"hello")
        assert time.monotonic() - started < 2.0
        assert state.finished_here == [], "the leader waited on the loop thread"
        state.peer.sendall(b"x")
        slow.settimeout(5)
        assert slow.recv(4096).endswith(b"got x")
    assert state.pool.calls >= 1
