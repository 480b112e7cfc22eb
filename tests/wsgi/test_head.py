"""The application's head on the wire: its fields as it gave them, checked, in its order.

``start_response`` checks and encodes the fields (minihttp.wsgi.response); the gateway
appends them to the head in one piece. These tests read the raw bytes a real loopback
connection carries, on both server kinds.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import requests

from minihttp.wsgi import WSGIRequestHandler
from tests.wsgi.conftest import StrictClient, header


def raw_get(port: int, target: str = "/") -> bytes:
    """One GET on a new connection (closed after it); every byte of the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        for _ in range(1000):
            piece = s.recv(65536)
            if not piece:
                return data
            data += piece
    raise AssertionError("the server did not close")


def test_injected_line_in_a_value_is_a_500_and_never_sent(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Note", "a\r\nSet-Cookie: evil=1"),
                                  ("Content-Length", "1")])
        return [b"x"]

    # Not validated: wsgiref's validator would refuse the value before the gateway sees it.
    with serve_app(app, validate=False) as port:
        data = raw_get(port)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in data and b"X-Note" not in data


def test_fields_keep_the_applications_order(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-First", "1"), ("Content-Length", "2"),
                                  ("Content-Type", "text/plain"), ("X-Last", "3")])
        return [b"ok"]

    with serve_app(app) as port:
        for _ in range(2):  # the second time from the remembered head
            data = raw_get(port)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            assert body == b"ok"
            at = {line.split(b":")[0]: i for i, line in enumerate(lines[1:])}
            assert at[b"X-First"] < at[b"Content-Length"] < at[b"Content-Type"] < at[b"X-Last"]
            assert b"Content-Length: 2" in lines


def test_alternating_heads_on_one_connection(serve_app: Any) -> None:
    """Equal field lists with another status, and other fields with the same status: each
    response gets its own head (the gateway remembers heads across requests)."""
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/missing":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"none"]
        if path == "/plain":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"here"]
        kind = "b" if path == "/b" else "a"
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Kind", kind)])
        return [b"here"]

    with serve_app(app) as port, StrictClient(port) as c:
        for _ in range(3):
            for target, status, kind, body in (("/", 200, "a", b"here"),
                                               ("/plain", 200, None, b"here"),
                                               ("/missing", 404, None, b"none"),
                                               ("/b", 200, "b", b"here")):
                resp, got = c.request("GET", target)
                assert (resp.status_code, header(resp, "x-kind"), got) == (status, kind, body)


class Recording(WSGIRequestHandler):
    """A user's class with its own ``send_header``: it sees every field."""

    names: ClassVar[list[str]] = []

    def send_header(self, keyword: str, value: Any) -> None:
        self.names.append(keyword)
        super().send_header(keyword, value)


def test_a_class_with_its_own_send_header_gets_every_field(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-A", "1")])
        return [b"abc"]

    Recording.names.clear()
    with serve_app(app, handler=Recording) as port:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 200 and r.content == b"abc" and r.headers["X-A"] == "1"
    assert [n for n in Recording.names if n in ("Content-Type", "X-A")] == ["Content-Type",
                                                                            "X-A"]
