"""Code written for http.server keeps working: CPython's socketless handler tests, adapted.

The patterns of CPython's Lib/test/test_httpservers.py (``SocketlessRequestHandler``,
``BaseHTTPRequestHandlerTestCase``): a handler built around a mock socket whose
``makefile`` gives ``BytesIO``, then ``rfile`` / ``wfile`` replaced by ``BytesIO`` and
``handle_one_request()`` or ``handle()`` called. Differences from the standard library that
are deliberate (no HTTP/0.9, errors never echo request bytes) are tested as such.
"""

from __future__ import annotations

import html
import socket
import time
from http import HTTPStatus
from io import BytesIO
from typing import Any
from unittest import mock

import pytest

import minihttp.server as server_module
from minihttp.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


class SocketlessRequestHandler(BaseHTTPRequestHandler):
    def __init__(self) -> None:
        request = mock.Mock()
        request.makefile.return_value = BytesIO()
        super().__init__(request, None, None)
        self.get_called = False
        self.protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.get_called = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>Data</body></html>\r\n")

    def do_POST(self) -> None:
        body = self.rfile.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.upper())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RejectingSocketlessRequestHandler(SocketlessRequestHandler):
    def handle_expect_100(self) -> bool:
        self.send_error(HTTPStatus.EXPECTATION_FAILED)
        return False


class AuditableBytesIO:
    def __init__(self) -> None:
        self.datas: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.datas.append(data)

    def getData(self) -> bytes:
        return b"".join(self.datas)

    @property
    def numWrites(self) -> int:
        return len(self.datas)


@pytest.fixture
def handler() -> SocketlessRequestHandler:
    return SocketlessRequestHandler()


def send_typical_request(handler: BaseHTTPRequestHandler, message: bytes) -> list[bytes]:
    handler.rfile = BytesIO(message)
    output = BytesIO()
    handler.wfile = output
    handler.handle_one_request()
    output.seek(0)
    return output.readlines()


def verify_expected_headers(headers: list[bytes]) -> None:
    for field in b"Server: ", b"Date: ", b"Content-Type: ":
        assert sum(h.startswith(field) for h in headers) == 1, field


def test_http_1_1(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(handler, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert result[0] == b"HTTP/1.1 200 OK\r\n"
    verify_expected_headers(result[1:-1])
    assert handler.get_called
    assert result[-1] == b"<html><body>Data</body></html>\r\n"
    assert handler.requestline == "GET / HTTP/1.1"
    assert handler.command == "GET"
    assert handler.path == "/"
    assert handler.request_version == "HTTP/1.1"
    assert list(handler.headers.items()) == [("Host", "x")]


def test_http_1_0(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(handler, b"GET / HTTP/1.0\r\n\r\n")
    assert result[0] == b"HTTP/1.1 200 OK\r\n"
    verify_expected_headers(result[1:-1])
    assert result[-1] == b"<html><body>Data</body></html>\r\n"
    assert handler.request_version == "HTTP/1.0"
    assert list(handler.headers.items()) == []


@pytest.mark.parametrize("request_line, status_line", [
    (b"GET / HTTP/0.9", b"HTTP/1.1 505 HTTP Version Not Supported\r\n"),
    (b"GET / HTTP/2.0", b"HTTP/1.1 505 HTTP Version Not Supported\r\n"),
    (b"GET /", b"HTTP/1.1 400 Bad Request\r\n"),  # HTTP/0.9's versionless line
], ids=["0.9", "2.0", "versionless"])
def test_http_0_9_is_refused(handler: SocketlessRequestHandler, request_line: bytes,
                             status_line: bytes) -> None:
    # Deliberate difference: minihttp does not speak HTTP/0.9 (RFC 9112 leaves it out): a
    # version other than 1.x is 505 (RFC 9110 section 15.6.6), a line without one is 400.
    result = send_typical_request(handler, request_line + b"\r\n\r\n")
    assert result[0] == status_line
    assert not handler.get_called
    assert handler.close_connection


def test_extra_space(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(handler, b"GET /spaced out HTTP/1.1\r\nHost: dummy\r\n\r\n")
    assert result[0].startswith(b"HTTP/1.1 400 ")
    verify_expected_headers(result[1:result.index(b"\r\n")])
    assert not handler.get_called


def test_with_continue_1_0(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(handler, b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")
    assert result[0] == b"HTTP/1.1 200 OK\r\n"
    assert result[-1] == b"<html><body>Data</body></html>\r\n"
    assert list(handler.headers.items()) == [("Expect", "100-continue")]


def test_with_continue_1_1(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(
        handler, b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
    assert result[0] == b"HTTP/1.1 100 Continue\r\n"
    assert result[1] == b"\r\n"
    assert result[2] == b"HTTP/1.1 200 OK\r\n"
    verify_expected_headers(result[2:-1])
    assert handler.get_called
    assert result[-1] == b"<html><body>Data</body></html>\r\n"


def test_with_continue_rejected() -> None:
    handler = RejectingSocketlessRequestHandler()
    result = send_typical_request(
        handler, b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
    assert result[0] == b"HTTP/1.1 417 Expectation Failed\r\n"
    verify_expected_headers(result[1:-1])
    assert not handler.get_called
    assert sum(r == b"Connection: close\r\n" for r in result[1:-1]) == 1


def test_header_buffering_of_send_error(handler: SocketlessRequestHandler) -> None:
    output = AuditableBytesIO()
    handler.rfile = BytesIO(b"GET / HTTP/1.1\r\n\r\n")
    handler.wfile = output
    handler.request_version = "HTTP/1.1"
    handler.requestline = ""
    handler.command = None
    handler.send_error(418)
    assert output.numWrites == 2


def test_header_buffering_of_send_response_only(handler: SocketlessRequestHandler) -> None:
    output = AuditableBytesIO()
    handler.wfile = output
    handler.request_version = "HTTP/1.1"
    handler.send_response_only(418)
    assert output.numWrites == 0
    handler.end_headers()
    assert output.numWrites == 1


def test_header_buffering_of_send_header(handler: SocketlessRequestHandler) -> None:
    output = AuditableBytesIO()
    handler.wfile = output
    handler.request_version = "HTTP/1.1"
    handler.send_header("Foo", "foo")
    handler.send_header("bar", "bar")
    assert output.numWrites == 0
    handler.end_headers()
    assert output.getData() == b"Foo: foo\r\nbar: bar\r\n\r\n"
    assert output.numWrites == 1


def test_header_unbuffered_when_continue(handler: SocketlessRequestHandler) -> None:
    handler.rfile = BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
    output = BytesIO()
    handler.wfile = output
    handler.handle_one_request()
    result = output.getvalue().split(b"\r\n")
    assert result[0] == b"HTTP/1.1 100 Continue"
    assert result[1] == b""
    assert result[2] == b"HTTP/1.1 200 OK"


def test_request_length(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(handler, b"GET " + b"x" * 65537)
    assert result[0].startswith(b"HTTP/1.1 414 ")
    assert not handler.get_called
    assert isinstance(handler.requestline, str)


def test_header_length(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(
        handler, b"GET / HTTP/1.1\r\nX-Foo: bar" + b"r" * 65537 + b"\r\n\r\n")
    assert result[0].startswith(b"HTTP/1.1 431 ")
    assert not handler.get_called


def test_too_many_headers(handler: SocketlessRequestHandler) -> None:
    result = send_typical_request(
        handler, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Foo: bar\r\n" * 101 + b"\r\n")
    assert result[0].startswith(b"HTTP/1.1 431 ")
    assert not handler.get_called
    assert handler.requestline == "GET / HTTP/1.1"


def test_html_escape_on_error(handler: SocketlessRequestHandler) -> None:
    result = b"".join(send_typical_request(
        handler, b'<script>alert("hello")</script> / HTTP/1.1\r\n\r\n'))
    assert result.startswith(b"HTTP/1.1 400 ")
    assert b"<script>" not in result


def test_send_error_escapes_message(handler: SocketlessRequestHandler) -> None:
    output = BytesIO()
    handler.wfile = output
    handler.request_version = "HTTP/1.1"
    handler.command = "GET"
    handler.send_error(404, explain='<script>alert("x")</script>')
    assert html.escape('<script>alert("x")</script>', quote=False).encode() in output.getvalue()


def test_close_connection(handler: SocketlessRequestHandler) -> None:
    close_values = iter((True,))

    def handle_one_request() -> None:
        handler.close_connection = next(close_values)

    handler.handle_one_request = handle_one_request  # type: ignore[method-assign]
    handler.handle()
    with pytest.raises(StopIteration):
        next(close_values)
    close_values = iter((False, False, True))
    handler.handle()
    with pytest.raises(StopIteration):
        next(close_values)


def test_date_time_string(handler: SocketlessRequestHandler) -> None:
    now = time.time()
    year, month, day, hh, mm, ss, wd, _y, _z = time.gmtime(now)
    expected = "%s, %02d %3s %4d %02d:%02d:%02d GMT" % (  # noqa: UP031 (the stdlib test)
        handler.weekdayname[wd], day, handler.monthname[month], year, hh, mm, ss)
    assert handler.date_time_string(timestamp=now) == expected
    import email.utils
    assert handler.date_time_string(now) == email.utils.formatdate(now, usegmt=True)


def test_body_is_exactly_the_body_and_keepalive_loop(handler: SocketlessRequestHandler) -> None:
    handler.rfile = BytesIO(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    output = BytesIO()
    handler.wfile = output
    handler.handle()
    data = output.getvalue()
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b"\r\n\r\nHELLO" in data and b"\r\n\r\nABC" in data
    assert handler.get_called


def test_unread_body_not_parsed_as_request() -> None:
    class Ignoring(SocketlessRequestHandler):
        paths: list[str] = []

        def do_POST(self) -> None:
            self.paths.append(self.path)
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            self.paths.append(self.path)
            super().do_GET()

    h = Ignoring()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    h.rfile = BytesIO(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(smuggled) + smuggled +
                      b"GET /real HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    h.wfile = BytesIO()
    h.handle()
    assert h.paths == ["/p", "/real"]


def test_header_injection_rejected_socketless(handler: SocketlessRequestHandler) -> None:
    handler.wfile = BytesIO()
    handler.request_version = "HTTP/1.1"
    with pytest.raises(ValueError):
        handler.send_header("Location", "/x\r\nSet-Cookie: a=b")
    with pytest.raises(ValueError):
        handler.send_header("Bad Name", "v")


def test_log_message_default_escapes(caplog: Any) -> None:
    caplog.set_level("INFO", logger="minihttp.access")
    h = SocketlessRequestHandler()
    h.client_address = ("127.0.0.1", 1337)
    log_message = BaseHTTPRequestHandler.log_message
    log_message(h, "/foo")
    log_message(h, "/\033bar\000\033")
    log_message(h, "/spam %s.", "\033\x7f\x9f\xa0beans")
    log_message(h, '"GET /foo\\b"ar\007 HTTP/1.0"')
    lines = [r.getMessage() for r in caplog.records]
    assert "\033" not in "".join(lines) and "\000" not in "".join(lines)
    assert "/foo" in lines[0] and lines[0].startswith("127.0.0.1 - - [")
    assert r"/\x1bbar\x00\x1b" in lines[1]
    assert "/spam \\x1b\\x7f\\x9f\xa0beans." in lines[2]
    assert r'"GET /foo\\b"ar\x07 HTTP/1.0"' in lines[3]


def test_defaults_match_stdlib() -> None:
    import http.server as std

    b = BaseHTTPRequestHandler
    assert b.protocol_version == "HTTP/1.0"
    assert b.default_request_version == std.BaseHTTPRequestHandler.default_request_version
    assert b.responses == std.BaseHTTPRequestHandler.responses
    assert b.weekdayname == std.BaseHTTPRequestHandler.weekdayname
    assert b.monthname == std.BaseHTTPRequestHandler.monthname
    assert b.error_content_type == std.BaseHTTPRequestHandler.error_content_type
    assert b.disable_nagle_algorithm is True
    assert ThreadingHTTPServer.daemon_threads is True
    for name in ("parse_request", "handle_one_request", "handle", "send_response",
                 "send_response_only", "send_header", "end_headers", "flush_headers",
                 "send_error", "handle_expect_100", "log_request", "log_error",
                 "log_message", "version_string", "date_time_string",
                 "log_date_time_string", "address_string"):
        assert callable(getattr(b, name)), name


def test_all_lists_public_names() -> None:
    assert set(server_module.__all__) >= {"BaseHTTPRequestHandler", "HTTPServer",
                                          "ThreadingHTTPServer"}
    for name in server_module.__all__:
        assert hasattr(server_module, name)


def test_server_bind_sets_name_and_port() -> None:
    srv = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        assert srv.server_port == srv.socket.getsockname()[1]
        assert isinstance(srv.server_name, str) and srv.server_name
    finally:
        srv.server_close()


def test_attach_for_pooled_server() -> None:
    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    a, b = socket.socketpair()
    with a, b:
        h = Hello.attach(a, ("local", 0), None)
        assert h.reader is not None
        assert not h.reader.has_request()
        # Bytes received elsewhere (a selector loop) are fed in.
        h.reader.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n")
        assert h.reader.has_request()
        h.handle_one_request()
        assert not h.close_connection
        assert not h.reader.has_request()  # the second head is incomplete
        h.reader.feed(b"\r\n")
        assert h.reader.has_request()
        h.handle_one_request()
        h.reader.feed(b"")
        assert h.reader.has_request()  # EOF pending
        h.handle_one_request()
        assert h.close_connection
        h.finish()
        b.settimeout(5)
        data = b.recv(65536)
        while data.count(b"hi") < 2:
            data += b.recv(65536)
    assert data.count(b"HTTP/1.1 200 OK") == 2
