"""A connection's remembered head (minihttp.wsgi.repeat) against the general path.

Differential: the same requests on one keep-alive connection go to the gateway as it is
(which reuses what a repeated head or repeated field lines made) and to a handler class
that may not reuse anything (it overrides a method, so :func:`reusable` is False); every
environ the application sees must be the same. The sequence repeats heads, changes only
the request line, changes only a field, repeats a head with a different body, and has the
application change its environ (which must never reach the next request).
"""

from __future__ import annotations

import socket
from typing import Any

from minihttp.wsgi import WSGIRequestHandler, make_handler
from minihttp.wsgi.repeat import MAX_HEAD, reusable
from tests.wsgi.conftest import StrictClient

#: (method, target, extra fields, body): on one connection, in this order.
SEQUENCE: list[tuple[str, str, list[tuple[str, str]], bytes]] = [
    ("GET", "/a?x=1", [("Cookie", "s=1"), ("Accept", "*/*")], b""),
    ("GET", "/a?x=1", [("Cookie", "s=1"), ("Accept", "*/*")], b""),  # the same head
    ("GET", "/a?x=1", [("Cookie", "s=1"), ("Accept", "*/*")], b""),  # and again (reused)
    ("GET", "/b/%C3%A9?y", [("Cookie", "s=1"), ("Accept", "*/*")], b""),  # new line only
    ("GET", "/c", [("Cookie", "s=1"), ("Accept", "*/*")], b""),  # and another
    ("GET", "/b/%C3%A9?y", [("Cookie", "s=2"), ("Accept", "*/*")], b""),  # a field only
    ("GET", "/b/%C3%A9?y", [("Cookie", "s=2"), ("Accept", "*/*")], b""),
    ("HEAD", "/b/%C3%A9?y", [("Cookie", "s=2"), ("Accept", "*/*")], b""),
    ("POST", "/form", [("Content-Type", "text/plain")], b"first"),
    ("POST", "/form", [("Content-Type", "text/plain")], b"other"),  # same head, new body
    ("POST", "/form", [("Content-Type", "text/plain")], b"third"),
    ("GET", "/a?x=1", [("Cookie", "s=1"), ("Cookie", "t=2"), ("X-Forwarded-Proto", "https")],
     b""),
    ("GET", "/a?x=1", [("Cookie", "s=1"), ("Cookie", "t=2"), ("X-Forwarded-Proto", "https")],
     b""),
    ("GET", "/a?x=1", [("Accept", "*/*")], b""),
]


class NotReused(WSGIRequestHandler):
    """The general path: a method of a user's class keeps every request from reusing."""

    def parse_request(self) -> bool:
        return super().parse_request()


def recording_app(seen: list[dict[str, Any]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        # (the validator wraps the two streams anew for every request)
        seen.append({**{k: v for k, v in environ.items()
                        if k not in ("wsgi.input", "wsgi.errors")}, "_body": body})
        # What an application may do to its environ must not reach the next request.
        environ["HTTP_COOKIE"] = "changed"
        environ["PATH_INFO"] = "/changed"
        environ["X_ADDED"] = "1"
        out = b"ok"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(out)))])
        return [out]

    return app


def run_sequence(serve_app: Any, handler: type[WSGIRequestHandler]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    with serve_app(recording_app(seen), handler=handler) as port, StrictClient(port) as c:
        for method, target, fields, body in SEQUENCE:
            resp, _ = c.request(method, target, fields, body)
            assert resp.status_code == 200
    assert len(seen) == len(SEQUENCE)
    return seen


def test_reused_environs_equal_the_general_path(serve_app: Any) -> None:
    assert reusable(make_handler(recording_app([])))
    assert not reusable(make_handler(recording_app([]), base=NotReused))
    general = run_sequence(serve_app, NotReused)
    reused = run_sequence(serve_app, WSGIRequestHandler)
    for i, (want, got) in enumerate(zip(general, reused, strict=True)):
        for key in ("REMOTE_PORT", "SERVER_PORT"):  # two servers, two connections
            assert want.pop(key) and got.pop(key)
        assert got == want, (i, SEQUENCE[i])
    # The general path itself saw what was sent (so equal means right, not equally wrong).
    assert [e["HTTP_COOKIE"] for e in general[:7]] == ["s=1"] * 5 + ["s=2"] * 2
    assert [e["_body"] for e in general[8:11]] == [b"first", b"other", b"third"]
    assert general[3]["PATH_INFO"] == "/b/\xc3\xa9" and general[3]["QUERY_STRING"] == "y"
    assert general[4]["PATH_INFO"] == "/c" and general[4]["QUERY_STRING"] == ""
    assert general[11]["HTTP_COOKIE"] == "s=1; t=2"
    assert "HTTP_COOKIE" not in general[13] and "X_ADDED" not in general[1]


class Counting(WSGIRequestHandler):
    """A user's class that changes the request's fields per request: never reused."""

    count = 0

    def parse_request(self) -> bool:
        ok = super().parse_request()
        type(self).count += 1
        self.headers["X-Count"] = str(self.count)
        return ok


def test_a_class_that_changes_the_fields_gets_them_on_every_request(serve_app: Any) -> None:
    seen: list[dict[str, Any]] = []
    with serve_app(recording_app(seen), handler=Counting) as port, StrictClient(port) as c:
        for _ in range(3):
            assert c.request("GET", "/same")[0].status_code == 200
    assert [e["HTTP_X_COUNT"] for e in seen] == ["1", "2", "3"]


def test_leading_empty_line_and_long_heads_are_served_right(serve_app: Any) -> None:
    """A head after an empty line (RFC 9112 section 2.2) and one over MAX_HEAD are never
    remembered, and the heads around them are not confused with them."""
    seen: list[dict[str, Any]] = []
    big = "v" * MAX_HEAD
    plain = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    small = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: s\r\n\r\n"
    large = f"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n".encode()
    heads = [plain, b"\r\n" + plain, plain, small, small, large, large, plain, b"\r\n" + plain]
    with serve_app(recording_app(seen)) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for head in heads:
            s.sendall(head)
            got = b""
            for _ in range(100):
                got += s.recv(65536)
                if got.endswith(b"\r\n\r\nok"):
                    break
            assert got.startswith(b"HTTP/1.1 200 ")
    assert [e["PATH_INFO"] for e in seen] == ["/x"] * len(heads)
    assert [e.get("HTTP_X_BIG") for e in seen] == [None, None, None, "s", "s", big, big,
                                                   None, None]


def test_trusted_proxy_client_per_request_with_reuse(serve_app: Any) -> None:
    """REMOTE_ADDR and wsgi.url_scheme follow each request's forwarding fields also when
    the head repeats."""
    seen: list[dict[str, Any]] = []
    with serve_app(recording_app(seen), forwarded_allow_ips="127.0.0.1") as port, \
            StrictClient(port) as c:
        for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", None, None):
            fields = [("X-Forwarded-For", client), ("X-Forwarded-Proto", "https")] \
                if client else []
            assert c.request("GET", "/", fields)[0].status_code == 200
    assert [e["REMOTE_ADDR"] for e in seen] == ["10.0.0.1", "10.0.0.1", "10.0.0.2",
                                                "10.0.0.2", "127.0.0.1", "127.0.0.1"]
    assert [e["wsgi.url_scheme"] for e in seen] == ["https"] * 4 + ["http"] * 2
