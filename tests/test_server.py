"""End-to-end tests of minihttp.server over real loopback sockets.

Clients: ``requests``, raw sockets, and h11 as a strict client that checks the framing of
every response. Every server binds 127.0.0.1 port 0; every read is bounded in time.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import pytest
import requests

from minihttp._writer import ResponseTooLong
from minihttp.config import DEFAULT_LIMITS, Limits
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.servers import open_fds, running

TIMEOUT = 5.0


# --------------------------------------------------------------------------- helpers


class Recorder(BaseHTTPRequestHandler):
    """A handler whose behaviour is chosen by the path; records what it saw."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []
    errors: list[BaseException] = []
    sockopts: list[int] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        path = self.path
        if path == "/nolength":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"part one, ")
            self.wfile.write(b"part two")
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"12345")
        elif path == "/long":
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            try:
                self.wfile.write(b"12345")
            except ResponseTooLong as exc:
                self.errors.append(exc)
                raise
        elif path == "/inject":
            try:
                self.send_header("X-Bad", "a\r\nSet-Cookie: evil=1")
            except ValueError as exc:
                self.errors.append(exc)
            for name in ("X-Bad\r\nX", "X-Nul"):
                try:
                    self.send_header(name, "v\x00" if name == "X-Nul" else "v")
                except ValueError as exc:
                    self.errors.append(exc)
            self._ok(b"safe")
        elif path in ("/204", "/304"):
            self.send_response(int(path[1:]))
            self.end_headers()
            self.wfile.write(b"must not be sent")
        elif path == "/raise-before":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            raise RuntimeError("boom before anything was sent")
        elif path == "/raise-after":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            raise RuntimeError("boom after the head was sent")
        elif path == "/nodelay":
            self.sockopts.append(
                self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self._ok(b"ok")
        elif path == "/log":
            self.log_message("%s", "evil\x1b[31m\nfake line")
            self._ok(b"ok")
        elif path == "/nothing":
            pass
        else:
            self._ok(b"hello " + path.encode())

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "42")
        self.end_headers()
        self.wfile.write(b"dropped for HEAD")

    def do_POST(self) -> None:
        self.seen.append(self.path)
        if self.path == "/ignore":
            self._ok(b"ignored")
            return
        if self.path == "/lines":
            lines = list(self.rfile)
            self._ok(b"|".join(lines))
            return
        data = self.rfile.read()
        extra = self.rfile.read(10)
        self._ok(b"%d:%s:%d" % (len(data), data[:20], len(extra)))

    def _ok(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def _reset_recorder() -> None:
    Recorder.seen = []
    Recorder.errors = []
    Recorder.sockopts = []


@contextlib.contextmanager
def serve(handler: type = Recorder, limits: Limits | None = None) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if limits is not None:
        server.limits = limits
    with running(server):
        yield server.server_address[1]


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock


def recv_all(sock: socket.socket, deadline: float = TIMEOUT) -> bytes:
    """Everything until the server closes; a server that has not closed within ``deadline``
    seconds fails the test (every caller expects the close)."""
    end = time.monotonic() + deadline
    chunks = []
    while True:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            pytest.fail(f"the server did not close within {deadline} s; got "
                        f"{b''.join(chunks)[:300]!r}")
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def recv_until(sock: socket.socket, marker: bytes, deadline: float = TIMEOUT) -> bytes:
    end = time.monotonic() + deadline
    data = b""
    while marker not in data and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class H11Client:
    """A strict HTTP/1.1 client: h11 checks the framing of every response."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.conn = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
             body: bytes = b"", wire: bool = True) -> None:
        hdrs = [("Host", "test")] + (headers or [])
        if body:
            hdrs.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        if wire:
            self.sock.sendall(data)

    def response(self) -> tuple[Any, bytes]:
        """The next response and its body; raises h11.RemoteProtocolError on bad framing."""
        resp = None
        body = b""
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                resp = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return resp, body
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("connection closed before the response")
        raise AssertionError("no complete response in time")

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()

    def exchange(self, method: str, target: str, **kw: Any) -> tuple[Any, bytes]:
        self.send(method, target, **kw)
        resp, body = self.response()
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.next_cycle()
        return resp, body

    def server_closed(self) -> bool:
        """True if the server closes the connection (EOF within the timeout)."""
        self.sock.settimeout(TIMEOUT)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def header(resp: Any, name: bytes) -> bytes | None:
    for k, v in resp.headers:
        if k == name.lower():
            return bytes(v)
    return None


# --------------------------------------------------------------------------- basics


def test_requests_keepalive_session() -> None:
    with serve() as port, requests.Session() as s:
        for i in range(3):
            r = s.get(f"http://127.0.0.1:{port}/x{i}", timeout=TIMEOUT)
            assert r.status_code == 200
            assert r.content == f"hello /x{i}".encode()
            assert r.headers["Server"].startswith("BaseHTTP/")
            assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", r.headers["Date"])
    assert Recorder.seen == ["/x0", "/x1", "/x2"]


def test_tcp_nodelay_is_on() -> None:
    with serve() as port:
        requests.get(f"http://127.0.0.1:{port}/nodelay", timeout=TIMEOUT)
    assert Recorder.sockopts and Recorder.sockopts[0] != 0


def test_pipelined_requests_answered_in_order() -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            wire = b"".join(
                b"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(5))
            client.sock.sendall(wire)
            for i in range(5):
                client.send("GET", f"/p{i}", wire=False)
                resp, body = client.response()
                assert resp.status_code == 200
                assert body == b"hello /p%d" % i
                client.next_cycle()
        finally:
            client.close()
    assert Recorder.seen == [f"/p{i}" for i in range(5)]


def test_chunked_request_body_is_decoded() -> None:
    def gen() -> Iterator[bytes]:
        yield b"hello "
        yield b"chunked "
        yield b"world"

    with serve() as port:
        r = requests.post(f"http://127.0.0.1:{port}/echo", data=gen(), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"19:hello chunked world:0"


def test_chunked_body_then_pipelined_request() -> None:
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n"
                         b"Connection: close\r\n\r\n")
            data = recv_all(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert b"3:abc:0" in data and data.endswith(b"hello /after")


def test_body_lines_iterate() -> None:
    with serve() as port:
        r = requests.post(f"http://127.0.0.1:{port}/lines", data=b"a\nbb\nccc", timeout=TIMEOUT)
    assert r.content == b"a\n|bb\n|ccc"


def test_unread_body_is_discarded_never_parsed_as_request() -> None:
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    with serve() as port:
        client = H11Client(port)
        try:
            resp, body = client.exchange("POST", "/ignore", body=smuggled)
            assert (resp.status_code, body) == (200, b"ignored")
            resp, body = client.exchange("GET", "/next")
            assert (resp.status_code, body) == (200, b"hello /next")
        finally:
            client.close()
    assert Recorder.seen == ["/ignore", "/next"]


def test_unread_body_over_max_discard_closes_connection() -> None:
    limits = DEFAULT_LIMITS.replace(max_discard=1024)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            body = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n" * 200
            sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"ignored")  # then EOF: the server closed instead of draining
    assert "/smuggled" not in Recorder.seen


# --------------------------------------------------------------------------- response framing


def test_short_content_length_closes_connection_and_logs(caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="minihttp.error")
    with serve() as port:
        client = H11Client(port)
        try:
            client.send("GET", "/short")
            with pytest.raises(h11.RemoteProtocolError):
                client.response()
        finally:
            client.close()
    assert any("shorter than its Content-Length" in r.getMessage() for r in caplog.records)


def test_overlong_write_raises_and_closes() -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            client.send("GET", "/long")
            # The head was still buffered when the handler failed: it becomes a 500.
            resp, _body = client.response()
            assert resp.status_code == 500
        finally:
            client.close()
    assert Recorder.errors and isinstance(Recorder.errors[0], ResponseTooLong)
    assert isinstance(Recorder.errors[0], ValueError)


def test_no_content_length_http11_is_chunked_and_keeps_alive() -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            resp, body = client.exchange("GET", "/nolength")
            assert header(resp, b"transfer-encoding") == b"chunked"
            assert body == b"part one, part two"
            resp, body = client.exchange("GET", "/again")
            assert body == b"hello /again"
        finally:
            client.close()


def test_no_content_length_http10_is_close_delimited() -> None:
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"GET /nolength HTTP/1.0\r\n\r\n")
            data = recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert b"Connection: close" in head
    assert body == b"part one, part two"


def test_http10_keepalive_with_content_length() -> None:
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            first = recv_until(sock, b"hello /a")
            sock.sendall(b"GET /b HTTP/1.0\r\n\r\n")
            rest = recv_all(sock)
    assert b"Connection: keep-alive" in first
    assert rest.endswith(b"hello /b")


@pytest.mark.parametrize("target", ["/204", "/304"])
def test_204_304_have_no_body(target: str) -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            resp, body = client.exchange("GET", target)
            assert resp.status_code == int(target[1:])
            assert body == b""
            resp, body = client.exchange("GET", "/after")  # no stray bytes before it
            assert body == b"hello /after"
        finally:
            client.close()


def test_head_has_no_body_but_keeps_content_length() -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            resp, body = client.exchange("HEAD", "/")
            assert header(resp, b"content-length") == b"42"
            assert body == b""
            resp, body = client.exchange("GET", "/after")
            assert body == b"hello /after"
        finally:
            client.close()


def test_header_injection_rejected() -> None:
    with serve() as port:
        r = requests.get(f"http://127.0.0.1:{port}/inject", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"safe"
    assert "Set-Cookie" not in r.headers and "X-Bad" not in r.headers
    assert len(Recorder.errors) == 3
    assert all(isinstance(e, ValueError) for e in Recorder.errors)


def test_unknown_method_gets_501_with_allow() -> None:
    with serve() as port:
        client = H11Client(port)
        try:
            resp, _body = client.exchange("BREW", "/pot")
            assert resp.status_code == 501
            assert header(resp, b"allow") == b"GET, HEAD, OPTIONS, POST"
            resp, body = client.exchange("GET", "/still-open")
            assert body == b"hello /still-open"
        finally:
            client.close()


def test_handler_sending_nothing_closes(caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="minihttp.error")
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")
            assert recv_all(sock) == b""
    assert any("sent no response" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- errors


def test_exception_before_headers_sent_gives_500_and_keeps_connection(caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="minihttp.error")
    with serve() as port:
        client = H11Client(port)
        try:
            resp, _body = client.exchange("GET", "/raise-before")
            assert resp.status_code == 500
            assert header(resp, b"connection") != b"close"
            resp, body = client.exchange("GET", "/after")
            assert body == b"hello /after"
        finally:
            client.close()
    records = [r for r in caplog.records if r.exc_info]
    assert records and "boom before" in str(records[0].exc_info[1])


def test_exception_after_headers_sent_closes_connection(caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="minihttp.error")
    with serve() as port:
        client = H11Client(port)
        try:
            client.send("GET", "/raise-after")
            with pytest.raises(h11.RemoteProtocolError):
                client.response()
        finally:
            client.close()
    assert any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("wire, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n", 417),
])
def test_bad_requests_get_status_and_close(wire: bytes, status: int) -> None:
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(wire)
            data = recv_all(sock)
        assert data.startswith(b"HTTP/1.1 %d " % status)
        assert b"Connection: close" in data
        # The server is still fine.
        r = requests.get(f"http://127.0.0.1:{port}/ok", timeout=TIMEOUT)
        assert r.status_code == 200


def test_payload_too_large_without_reading() -> None:
    limits = DEFAULT_LIMITS.replace(max_body=100)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert Recorder.seen == []


def test_chunked_body_over_max_body_gets_413() -> None:
    limits = DEFAULT_LIMITS.replace(max_body=10)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"14\r\n" + b"x" * 20 + b"\r\n0\r\n\r\n")
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")


# --------------------------------------------------------------------------- Expect: 100-continue


def test_expect_100_sent_when_body_is_read() -> None:
    with serve() as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            interim = recv_until(sock, b"\r\n\r\n")
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"hello")
            final = recv_until(sock, b"5:hello:0")
    assert final.startswith(b"HTTP/1.1 200 OK") and final.endswith(b"5:hello:0")


def test_expect_100_not_sent_when_body_not_read() -> None:
    # A long discard_timeout: a server that waits for the body instead of closing fails.
    with serve(limits=DEFAULT_LIMITS.replace(discard_timeout=60.0)) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            data = recv_all(sock)  # the server closes instead of waiting for the body
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"100 Continue" not in data
    assert data.endswith(b"ignored")


def test_expect_100_oversized_gets_413_without_100() -> None:
    limits = DEFAULT_LIMITS.replace(max_body=10)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in data


def test_overridden_handle_expect_100_is_called_eagerly() -> None:
    class Refuse(Recorder):
        def handle_expect_100(self) -> bool:
            self.send_error(417)
            return False

    with serve(Refuse) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 417 ")
    assert Recorder.seen == []


# --------------------------------------------------------------------------- timeouts


def test_head_deadline_gives_408() -> None:
    limits = DEFAULT_LIMITS.replace(head_timeout=0.3)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            start = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\n")
            # Trickle bytes: a per-recv timeout would never fire, the deadline does.
            data = b""
            for _ in range(20):
                try:
                    sock.sendall(b"X")
                except OSError:
                    break
                time.sleep(0.05)
            data = recv_all(sock)
            elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ")
    assert elapsed < TIMEOUT


def test_idle_keepalive_timeout_closes_silently() -> None:
    # head_timeout far longer: the wait after a request must be the keep-alive one.
    limits = DEFAULT_LIMITS.replace(keepalive_timeout=0.2, head_timeout=60.0)
    with serve(limits=limits) as port:
        client = H11Client(port)
        try:
            resp, _body = client.exchange("GET", "/one")
            assert resp.status_code == 200
            assert client.server_closed()
        finally:
            client.close()


def test_idle_first_request_uses_head_timeout() -> None:
    """A connection that never sends a byte is closed after head_timeout, not after the
    (here much longer) keep-alive timeout: the client must see the server's EOF, and a
    client timeout (the server still waiting) fails the test."""
    limits = DEFAULT_LIMITS.replace(head_timeout=0.2, keepalive_timeout=60.0)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"no close within {TIMEOUT} s: head_timeout was not applied")
            except ConnectionResetError:
                data = b""
    assert data == b""  # closed silently: no 408 for a connection that sent nothing


def test_body_timeout_gives_408() -> None:
    limits = DEFAULT_LIMITS.replace(body_timeout=0.2)
    with serve(limits=limits) as port:
        sock = connect(port)
        with sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 408 ")


# --------------------------------------------------------------------------- logging


CLF = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] "GET /x HTTP/1\.1" 200 8$')


def test_access_log_common_log_format(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="minihttp.access")
    with serve() as port:
        requests.get(f"http://127.0.0.1:{port}/x", timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "minihttp.access"]
    assert lines and CLF.match(lines[0]), lines


def test_log_escapes_control_characters(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="minihttp.access")
    with serve() as port:
        requests.get(f"http://127.0.0.1:{port}/log", timeout=TIMEOUT)
    messages = [r.getMessage() for r in caplog.records if r.name == "minihttp.access"]
    joined = "\n".join(messages)
    assert "\x1b" not in joined
    assert r"evil\x1b[31m\x0afake line" in joined


def test_log_message_override_still_used() -> None:
    got: list[str] = []

    class Quiet(Recorder):
        def log_message(self, format: str, *args: Any) -> None:
            got.append(format % args)

    with serve(Quiet) as port:
        requests.get(f"http://127.0.0.1:{port}/q", timeout=TIMEOUT)
        # The line is written once the response is sent: the client may see it first.
        deadline = time.monotonic() + TIMEOUT
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any('"GET /q HTTP/1.1" 200' in line for line in got)


def test_noop_log_message_detection() -> None:
    """Only an override that provably does nothing is skipped; anything else is called."""
    from minihttp.server import _does_nothing

    def quiet(self: Any, format: str, *args: Any) -> None:
        pass

    def documented(self: Any, format: str, *args: Any) -> None:
        """Silenced."""

    def returns_none(self: Any, format: str, *args: Any) -> None:
        return None

    def prints(self: Any, format: str, *args: Any) -> None:
        print(format % args)

    def counts(self: Any, format: str, *args: Any) -> int:
        return 1

    assert _does_nothing(quiet) and _does_nothing(documented) and _does_nothing(returns_none)
    assert not _does_nothing(prints) and not _does_nothing(counts)
    assert not _does_nothing(BaseHTTPRequestHandler.log_message)
    assert not _does_nothing(len)  # no Python code: assume it does something


def test_access_log_enabled_later_is_honoured(caplog: Any) -> None:
    """The access-log check is per request: enabling the logger mid-connection works."""
    with serve() as port, requests.Session() as s:
        assert s.get(f"http://127.0.0.1:{port}/a", timeout=TIMEOUT).status_code == 200
        caplog.set_level(logging.INFO, logger="minihttp.access")
        assert s.get(f"http://127.0.0.1:{port}/x", timeout=TIMEOUT).status_code == 200
        deadline = time.monotonic() + TIMEOUT  # the line is written after the response
        while time.monotonic() < deadline and not any(
                CLF.match(r.getMessage()) for r in caplog.records):
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "minihttp.access"]
    assert any(CLF.match(line) for line in lines), lines


# --------------------------------------------------------------------------- resources


def test_no_fd_or_thread_leaks() -> None:
    fds_before = open_fds()
    threads_before = threading.active_count()
    with serve() as port:
        for i in range(10):
            with requests.Session() as s:
                assert s.get(f"http://127.0.0.1:{port}/{i}", timeout=TIMEOUT).status_code == 200
        for _ in range(5):
            sock = connect(port)
            sock.sendall(b"GARBAGE\r\n\r\n")
            recv_all(sock)
            sock.close()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (
            threading.active_count() > threads_before or open_fds() > fds_before):
        time.sleep(0.02)
    assert threading.active_count() <= threads_before
    assert open_fds() <= fds_before


def test_413_reaches_a_client_still_sending_its_body() -> None:
    # The response must not be destroyed by a RST when the server closes with unread input.
    limits = DEFAULT_LIMITS.replace(max_body=1000, discard_timeout=1.0)
    with serve(limits=limits) as port:
        r = requests.post(f"http://127.0.0.1:{port}/echo", data=b"x" * 3_000_000,
                          timeout=TIMEOUT)
    assert r.status_code == 413


def test_expect_not_read_with_big_body_still_answers() -> None:
    with serve() as port:
        r = requests.post(f"http://127.0.0.1:{port}/ignore", data=b"y" * 2_000_000,
                          timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"ignored"


def test_handler_failing_after_100_continue_still_answers_500() -> None:
    """The 100 Continue sent on the first body read is not the final response: a handler
    that then fails gets its 500 (the connection used to close with no answer at all)."""

    class Fails(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read()
            raise RuntimeError("boom after reading the body")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fails)
    logger = logging.getLogger("minihttp.error")
    previous = logger.disabled
    logger.disabled = True  # the handler's traceback is expected
    try:
        with running(server), socket.create_connection(server.server_address[:2],
                                                       timeout=5) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            got = b""
            deadline = time.monotonic() + 5
            while b"100 Continue\r\n\r\n" not in got and time.monotonic() < deadline:
                got += c.recv(4096)
            c.sendall(b"abc")
            while time.monotonic() < deadline:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got.split(b"100 Continue\r\n\r\n", 1)[-1]:
                    break
    finally:
        logger.disabled = previous
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got
    assert got.split(b"\r\n\r\n", 1)[1].startswith(b"HTTP/1.1 500 "), got
