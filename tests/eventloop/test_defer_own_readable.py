"""A deferred wait for the client's *own* connection to be readable (a request body read as
it arrives, ``rfile.read_nowait``): on the pooled server's loop it holds no thread, and the
client connection serves its next request afterwards. (``defer_until_writable(sock=...)``
for another socket is exercised by tests/proxy/test_upload.py.)"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import BaseHTTPRequestHandler
from tests.helpers.servers import running

#: Whether the server took each deferral asked for.
TOOK: list[bool] = []


class Echo(BaseHTTPRequestHandler):
    """POST: read the body as it arrives (deferring each wait), answer its length."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._got = 0
        self._more(True)

    def _more(self, ready: bool) -> None:
        assert ready
        while True:
            piece = self.rfile.read_nowait(65536)
            if piece is None:
                took = self.defer_until_readable(self.connection, self._more, 10)
                TOOK.append(took)
                if took:
                    return
                time.sleep(0.01)
                continue
            if not piece:
                break
            self._got += len(piece)
        body = str(self._got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _answer(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\n") or b"Content-Length" not in data:
        data += s.recv(4096)
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += s.recv(4096)
            return rest
    raise AssertionError(data)


def test_slow_bodies_read_as_they_arrive_hold_no_thread() -> None:
    TOOK.clear()
    server = PooledHTTPServer(("127.0.0.1", 0), Echo)
    with running(server):
        port = server.server_address[1]
        before = threading.active_count()
        clients = []
        for _ in range(30):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"a" * 10)
            clients.append(c)
        time.sleep(0.3)
        assert threading.active_count() <= before + 4, threading.active_count()
        for c in clients:
            c.sendall(b"b" * 199_990)
        for c in clients:
            assert _answer(c) == b"200000"
        # Each connection goes on: the next request on it is served.
        for c in clients:
            c.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz")
            assert _answer(c) == b"3"
            c.close()
    assert any(TOOK) and all(TOOK)
