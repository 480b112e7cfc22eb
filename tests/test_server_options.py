"""``OPTIONS`` without a ``do_OPTIONS``: 204 with ``Allow`` (RFC 9110 section 9.3.7), not 501.

Checked with h11 as the strict client (204 framing: no body, no Content-Length, the
connection stays usable), on both server kinds (thread per connection and the pooled event
loop), for a path and for the asterisk form; a subclass's own ``do_OPTIONS`` still wins.
"""

from __future__ import annotations

import socket
import time

import h11
import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.servers import running

TIMEOUT = 5.0
SERVERS = [ThreadingHTTPServer, PooledHTTPServer]


class Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"got " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.send_error(405)


class OwnOptions(Plain):
    def do_OPTIONS(self) -> None:
        self.send_response(200)
        self.send_header("X-Own", "yes")
        self.send_header("Content-Length", "0")
        self.end_headers()


def exchange(port: int, requests: list[tuple[str, str, bytes]]
             ) -> list[tuple[h11.Response, bytes]]:
    """Send each (method, target, body) on one keep-alive connection; h11 parses answers."""
    conn = h11.Connection(h11.CLIENT)
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        for method, target, body in requests:
            headers = [("Host", "t")]
            if body:
                headers.append(("Content-Length", str(len(body))))
            sock.sendall(conn.send(h11.Request(method=method, target=target,
                                               headers=headers)))
            if body:
                sock.sendall(conn.send(h11.Data(data=body)))
            sock.sendall(conn.send(h11.EndOfMessage()))
            resp, data = None, b""
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    resp = event
                elif isinstance(event, h11.Data):
                    data += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert resp is not None
            out.append((resp, data))
            conn.start_next_cycle()
    return out


def fields(resp: h11.Response) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in resp.headers}


@pytest.mark.parametrize("server_class", SERVERS)
def test_options_is_204_with_allow(server_class: type[ThreadingHTTPServer]) -> None:
    with running(server_class(("127.0.0.1", 0), Plain)) as server:
        answers = exchange(server.server_address[1], [
            ("OPTIONS", "/any/path", b""),
            ("OPTIONS", "*", b""),
            ("OPTIONS", "/with-body", b"ignored"),  # the body is read past, not parsed
            ("GET", "/after", b""),
        ])
    for resp, body in answers[:3]:
        assert resp.status_code == 204 and body == b""
        assert fields(resp)[b"allow"] == b"GET, OPTIONS, PUT"
        assert b"content-length" not in fields(resp)  # RFC 9110 section 8.6
    assert answers[3][0].status_code == 200 and answers[3][1] == b"got /after"


@pytest.mark.parametrize("server_class", SERVERS)
def test_own_do_options_wins(server_class: type[ThreadingHTTPServer]) -> None:
    with running(server_class(("127.0.0.1", 0), OwnOptions)) as server:
        (resp, _body), = exchange(server.server_address[1], [("OPTIONS", "/x", b"")])
    assert resp.status_code == 200 and fields(resp)[b"x-own"] == b"yes"


def test_unknown_method_501_allow_lists_options() -> None:
    with running(ThreadingHTTPServer(("127.0.0.1", 0), Plain)) as server:
        (resp, _body), = exchange(server.server_address[1], [("BREW", "/pot", b"")])
    assert resp.status_code == 501
    assert fields(resp)[b"allow"] == b"GET, OPTIONS, PUT"
