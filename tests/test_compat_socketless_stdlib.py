"""Socketless tests written for http.server pass unchanged against minihttp.server.

Each test runs the same code twice: once on the standard library's ``http.server`` (which
this test module may import; minihttp never does) and once on ``minihttp.server``. The fakes
are the ones real test suites use:

- CPython's Lib/test/test_httpservers.py: ``SocketlessRequestHandler`` built around a
  ``mock.Mock()`` request whose ``makefile`` gives a ``BytesIO``, with ``server`` None, then
  ``rfile`` / ``wfile`` replaced by ``BytesIO`` before ``handle_one_request()``; its
  ``SimpleHTTPRequestHandlerTestCase`` calls ``translate_path`` on such a handler.
- A fake socket that offers only ``makefile()`` (no ``family``, no ``setsockopt``) and the
  ``SampleSocket`` of bzr/breezy (``makefile`` + ``sendall`` + ``close``).
- ``server=mock.Mock()`` (every attribute exists and is truthy).
- A ``Mock`` request with ``makefile.side_effect`` passed to a server built with
  ``bind_and_activate=False`` and its ``process_request`` (service-factory's tests).
- The "parse a request from a string" recipe: a subclass whose ``__init__`` does not call
  the base ``__init__``, sets ``rfile`` and ``raw_requestline`` and calls
  ``parse_request()``, overriding ``send_error`` to record the code.
"""

from __future__ import annotations

import http.server as std_server
import json
import os
import pathlib
import socket
from http import HTTPStatus
from io import BytesIO
from types import ModuleType
from typing import Any
from unittest import mock

import pytest

import minihttp.server as mini_server

MODULES = [pytest.param(std_server, id="http.server"),
           pytest.param(mini_server, id="minihttp.server")]

REQUEST = b"GET /x?a=1 HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"


def hello_class(module: ModuleType) -> type:
    class Hello(module.BaseHTTPRequestHandler):  # type: ignore[name-defined,misc]
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Hello


def status_and_body(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


class MakefileOnly:
    """A fake socket with makefile() and nothing else (no family, setsockopt, sendall)."""

    def __init__(self, data: bytes) -> None:
        self.rfile = BytesIO(data)

    def makefile(self, mode: str = "r", bufsize: int | None = None) -> BytesIO:
        assert "r" in mode, "only the read side is asked for (wbufsize 0)"
        return self.rfile


class MakefileAndFamily(MakefileOnly):
    """makefile() and an AF_INET family, but no setsockopt (a fake copying a TCP socket's
    attributes it reads)."""

    family = socket.AF_INET


class SampleSocket(MakefileOnly):
    """breezy's SampleSocket: makefile(), sendall() and close()."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sent = BytesIO()

    def sendall(self, data: bytes) -> None:
        self.sent.write(data)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("module", MODULES)
def test_makefile_only_socket_then_bytesio_files(module: ModuleType) -> None:
    # Construction reads the (empty) makefile() stream and returns; the test then drives the
    # handler with its own files, as CPython's BaseHTTPRequestHandlerTestCase does.
    handler = hello_class(module)(MakefileOnly(b""), ("127.0.0.1", 1234), None)
    handler.rfile = BytesIO(REQUEST)
    handler.wfile = BytesIO()
    handler.handle_one_request()
    assert status_and_body(handler.wfile.getvalue()) == (b"HTTP/1.1 200 OK", b"hello")
    # minihttp turns Nagle off by default (http.server does not): nothing to turn off here.
    assert (handler.command, handler.path) == ("GET", "/x?a=1")
    assert handler.headers["Host"] == "example"


@pytest.mark.parametrize("module", MODULES)
def test_fake_with_family_but_no_setsockopt(module: ModuleType) -> None:
    handler = hello_class(module)(MakefileAndFamily(b""), ("127.0.0.1", 1234), None)
    handler.rfile = BytesIO(REQUEST)
    handler.wfile = BytesIO()
    handler.handle_one_request()
    assert status_and_body(handler.wfile.getvalue()) == (b"HTTP/1.1 200 OK", b"hello")


@pytest.mark.parametrize("module", MODULES)
def test_server_is_a_mock(module: ModuleType) -> None:
    request = mock.Mock()
    request.makefile.return_value = BytesIO(REQUEST)
    sock = SampleSocket(REQUEST)
    for req in (request, sock):
        handler = hello_class(module)(req, ("127.0.0.1", 1234), mock.Mock())
        assert handler.command == "GET"
        assert handler.client_address == ("127.0.0.1", 1234)
    assert status_and_body(sock.sent.getvalue()) == (b"HTTP/1.1 200 OK", b"hello")


@pytest.mark.parametrize("module", MODULES)
def test_sample_socket_whole_exchange(module: ModuleType) -> None:
    sock = SampleSocket(REQUEST)
    hello_class(module)(sock, ("127.0.0.1", 1234), None)
    status, body = status_and_body(sock.sent.getvalue())
    assert (status, body) == (b"HTTP/1.1 200 OK", b"hello")
    assert b"\r\nContent-Length: 5\r\n" in sock.sent.getvalue()


@pytest.mark.parametrize("module", MODULES)
def test_cpython_socketless_handler_error(module: ModuleType) -> None:
    class SocketlessRequestHandler(module.BaseHTTPRequestHandler):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            request = mock.Mock()
            request.makefile.return_value = BytesIO()
            super().__init__(request, None, None)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = SocketlessRequestHandler()
    handler.rfile = BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    handler.wfile = BytesIO()
    handler.handle_one_request()  # no do_GET: 501
    assert handler.wfile.getvalue().startswith(b"HTTP/1.0 501 ")
    handler.rfile = BytesIO(b"GET /spaced out HTTP/1.1\r\nHost: x\r\n\r\n")
    handler.wfile = BytesIO()
    handler.handle_one_request()
    assert handler.wfile.getvalue().startswith(b"HTTP/1.0 400 ")


@pytest.mark.parametrize("module", MODULES)
def test_process_request_with_mock_request(module: ModuleType) -> None:
    rfile = BytesIO(REQUEST)
    wfile = BytesIO()

    def makefile(mode: str, size: int) -> BytesIO:
        return rfile if "r" in mode else wfile

    request = mock.Mock(**{"makefile.side_effect": makefile,
                           "sendall.side_effect": wfile.write})
    server = module.HTTPServer(("127.0.0.1", 0), hello_class(module), bind_and_activate=False)
    try:
        server.process_request(request, ("127.0.0.1", 1234))
    finally:
        server.server_close()
    assert status_and_body(wfile.getvalue()) == (b"HTTP/1.1 200 OK", b"hello")


@pytest.mark.parametrize("module", MODULES)
def test_parse_request_without_init(module: ModuleType) -> None:
    class HTTPRequest(module.BaseHTTPRequestHandler):  # type: ignore[name-defined,misc]
        def __init__(self, request_text: bytes) -> None:
            self.rfile = BytesIO(request_text)
            self.raw_requestline = self.rfile.readline()
            self.error_code = self.error_message = None
            self.parse_request()

        def send_error(self, code: int, message: str | None = None,
                       explain: str | None = None) -> None:
            self.error_code = code
            self.error_message = message

    request = HTTPRequest(b"GET /who/ken/trust.html HTTP/1.1\r\nHost: cm.bell-labs.com\r\n"
                          b"Accept-Charset: ISO-8859-1,utf-8;q=0.7,*;q=0.3\r\n"
                          b"Accept: text/html\r\n\r\n")
    assert request.error_code is None
    assert (request.command, request.path, request.request_version) == (
        "GET", "/who/ken/trust.html", "HTTP/1.1")
    assert len(request.headers) == 3
    assert request.headers["host"] == "cm.bell-labs.com"
    bad = HTTPRequest(b"GET / HTTP/1.1 junk\r\n\r\n")
    assert bad.error_code == 400


@pytest.mark.parametrize("module", MODULES)
def test_custom_setup_and_handle(module: ModuleType) -> None:
    # A handler used only for its parsing: setup() fills rfile from a string, handle() reads
    # the request line itself, finish() does nothing.
    class DumbHandler(module.BaseHTTPRequestHandler):  # type: ignore[name-defined,misc]
        def setup(self) -> None:
            self.rfile = BytesIO(self.request)
            self.wfile = BytesIO()

        def handle(self) -> None:
            self.raw_requestline = self.rfile.readline()
            self.parsed = bool(self.raw_requestline) and self.parse_request()

        def finish(self) -> None:
            pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ok = DumbHandler(b"POST /form HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", ("h", 1), None)
    assert ok.parsed and ok.command == "POST" and ok.headers["Content-Length"] == "3"
    assert ok.rfile.read(3) == b"abc"
    bad = DumbHandler(b"GET / HTTP/1.1 x\r\n\r\n", ("h", 1), None)
    assert not bad.parsed
    # (http.server answers this one HTTP/0.9-style, without a head; minihttp with one)
    assert b"Error code: 400" in bad.wfile.getvalue()


@pytest.mark.parametrize("module", MODULES)
def test_simple_handler_translate_path(module: ModuleType) -> None:
    class SocketlessRequestHandler(module.SimpleHTTPRequestHandler):  # type: ignore[name-defined,misc]
        def __init__(self, directory: Any = None) -> None:
            request = mock.Mock()
            request.makefile.return_value = BytesIO()
            super().__init__(request, None, None, directory=directory)

    cwd = SocketlessRequestHandler()
    foo = SocketlessRequestHandler(directory="foo")
    bar = SocketlessRequestHandler(directory=pathlib.PurePath("bar"))
    here = os.path.join(os.getcwd(), "filename")
    assert cwd.translate_path("/filename") == here
    assert foo.translate_path("/filename") == os.path.join("foo", "filename")
    assert bar.translate_path("/filename") == os.path.join("bar", "filename")
    assert cwd.translate_path("/filename?foo=bar") == here
    assert cwd.translate_path("/filename?a=b&spam=eggs#zot") == here
    assert cwd.translate_path("//filename") == here
    assert cwd.translate_path("//filename?foo=bar") == here


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /custom HTTP/1.1\r\nHost: x\r\n\r\n", 409),
    (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
])
def test_error_message_format_and_content_type(module: ModuleType, request_bytes: bytes,
                                               status: int) -> None:
    # A JSON service's errors: the class attributes are used exactly as http.server uses
    # them (same placeholders, same escaping, same Content-Type), so the bodies are equal.
    class JSONErrors(module.BaseHTTPRequestHandler):  # type: ignore[name-defined,misc]
        error_content_type = "application/json"
        error_message_format = '{"code": %(code)d, "error": "%(message)s", "why": "%(explain)s"}'

        def do_GET(self) -> None:
            if self.path == "/custom":
                self.send_error(409, "Taken <already>", "try & again")
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = JSONErrors(MakefileOnly(b""), ("127.0.0.1", 1234), None)
    handler.rfile = BytesIO(request_bytes)
    handler.wfile = BytesIO()
    handler.handle_one_request()
    head, _, body = handler.wfile.getvalue().partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode()
    assert b"\r\nContent-Type: application/json\r\n" in head + b"\r\n"
    document = json.loads(body)
    assert document["code"] == status
    expected = {
        404: (HTTPStatus(404).phrase, HTTPStatus(404).description),
        409: ("Taken &lt;already&gt;", "try &amp; again"),
        501: ("Unsupported method ('BREW')", HTTPStatus(501).description),
    }[status]
    assert (document["error"], document["why"]) == expected
