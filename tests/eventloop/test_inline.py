"""Inline serving (minihttp.eventloop.inline): the leader serves requests itself, in turns
the watchdog may depose; after a deposition the old thread finishes its connection as a
worker would and leaves the loop alone.

Real PooledHTTPServers on loopback; every wait bounded.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import BaseHTTPRequestHandler
from tests.helpers.servers import running

#: Set when the /own-socket handler starts waiting (it waits on its own client's socket).
WAITING = threading.Event()
#: Opened by the test to let /gate go on.
GATE = threading.Event()
GATED = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/own-socket":
            # The loop cannot wait for one of its own connections: the request is waited
            # for by its handler, which must not hold the loop meanwhile.
            def then(ready: bool) -> None:
                self.answer(b"own " + (b"ready" if ready else b"timed out"))

            assert self.defer_until_readable(self.connection, then, 1.5)
            WAITING.set()
            return
        if self.path == "/gate":
            GATED.set()
            GATE.wait(10)
        self.answer(f"hello {self.path}".encode())


def server(**attrs: Any) -> PooledHTTPServer:
    attrs.setdefault("max_workers", 4)
    cls = type("InlinePooled", (PooledHTTPServer,), attrs)
    s: PooledHTTPServer = cls(("127.0.0.1", 0), Handler)
    return s


_leftover: dict[int, bytes] = {}


def read_response(sock: socket.socket) -> bytes:
    """One response; bytes read past it (a pipelined next response that came in the same
    recv) are kept for the next call on that socket."""
    data = _leftover.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    if len(body) > length:
        _leftover[sock.fileno()] = body[length:]
        body = body[:length]
    return head + b"\r\n\r\n" + body


def get(srv: PooledHTTPServer, path: str, timeout: float) -> bytes:
    with socket.create_connection(srv.server_address[:2], timeout=timeout) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return read_response(c)


def test_a_deferral_the_loop_cannot_wait_for_is_a_turn_the_watchdog_may_depose() -> None:
    WAITING.clear()
    with running(server(inline_budget=0.005)) as srv, \
            socket.create_connection(srv.server_address[:2], timeout=5) as slow:
        slow.sendall(b"GET /own-socket HTTP/1.1\r\nHost: t\r\n\r\n")
        assert WAITING.wait(5)
        # The handler waits 1.5 s for its own client: another client is answered at once.
        started = time.monotonic()
        assert get(srv, "/other", timeout=5).endswith(b"hello /other")
        assert time.monotonic() - started < 1.0
        assert read_response(slow).endswith(b"own timed out")


def test_a_deposed_handler_hands_a_pipelined_request_back_to_the_loop() -> None:
    GATE.clear()
    GATED.clear()
    with running(server()) as srv, \
            socket.create_connection(srv.server_address[:2], timeout=5) as c:
        try:
            # Two requests at once: the first blocks (and loses the loop), the second is
            # buffered behind it and must be answered once the first ends.
            c.sendall(b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
            assert GATED.wait(5)
            assert get(srv, "/meanwhile", timeout=5).endswith(b"hello /meanwhile")
        finally:
            GATE.set()
        assert read_response(c).endswith(b"hello /gate")
        assert read_response(c).endswith(b"hello /next")
        c.sendall(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")  # and it is the loop's again
        assert read_response(c).endswith(b"hello /after")
