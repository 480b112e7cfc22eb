"""PooledHTTPServer accepts what waits in the listen queue in one bounded batch (issue 12).

One accept per readiness event let a burst of 1,000 clients wait seconds for their accept
behind loop rounds serving the others (wrk -c1000: timeouts). These tests call the loop's
accept step once on a queue filled beforehand, without ``serve_forever``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from minihttp.eventloop import PooledHTTPServer
from minihttp.eventloop import loop as loop_module
from minihttp.eventloop.loop import Loop
from minihttp.server import BaseHTTPRequestHandler
from tests.helpers.servers import wait_for


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def queued(count: int, **attrs: Any) -> Iterator[tuple[PooledHTTPServer, Loop]]:
    """A server (not serving: its loop opened by hand) with ``count`` connections completed
    in its listen queue."""
    attrs.setdefault("max_workers", 2)
    cls = type("TestPooled", (PooledHTTPServer,), attrs)
    server = cls(("127.0.0.1", 0), Hello)
    loop = server._loop
    loop.open(0.05)
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            clients.append(socket.create_connection(server.server_address[:2], timeout=5))
        yield server, loop
    finally:
        for c in clients:
            c.close()
        server.server_close()
        loop.finish()


def test_one_accept_step_takes_the_whole_queue() -> None:
    with queued(20) as (server, loop):
        loop.accept()
        assert server.connection_count == 20
        # Accepted sockets stay blocking (timeout None) although the listener is not:
        # the non-blocking recv path (MSG_DONTWAIT) depends on it.
        assert all(c.sock.gettimeout() is None for c in server._conns.values())


def test_the_batch_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(loop_module, "ACCEPT_BATCH", 3)
    with queued(7) as (server, loop):
        loop.accept()
        assert server.connection_count == 3
        loop.accept()
        assert server.connection_count == 6


def test_the_batch_stops_at_the_connection_cap() -> None:
    with queued(5, max_connections=2) as (server, loop):
        loop.accept()
        assert server.connection_count == 2  # the other three wait in the kernel's queue


def test_an_empty_queue_ends_the_batch_without_blocking() -> None:
    with queued(2) as (server, loop):
        done = threading.Event()

        def step() -> None:
            loop.accept()
            done.set()

        t = threading.Thread(target=step, daemon=True)
        t.start()
        try:
            assert wait_for(done.is_set, timeout=5.0), "accept blocked on an empty queue"
        finally:
            if not done.is_set():  # unblock a broken build's accept() so the thread ends
                with contextlib.suppress(OSError):
                    server.socket.shutdown(socket.SHUT_RDWR)
            t.join(5)
        assert server.connection_count == 2
