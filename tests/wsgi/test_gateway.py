"""The gateway's PEP 3333 behaviour over real loopback sockets, on both server kinds.

Responses are read by h11 (``StrictClient``) or by raw sockets where the exact bytes on the
wire matter (streaming, a cut response, ``100 Continue``).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from minihttp.config import Limits
from tests.helpers.servers import wait_for
from tests.wsgi.conftest import StrictClient, header, read_until_close

TEXT = [("Content-Type", "text/plain")]


class Records(logging.Handler):
    """Collects the records of one logger during a test."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Records:
        self.old_level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.old_level)

    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= logging.ERROR]


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"Hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
    return [body]


# -- keep-alive, methods, heads -------------------------------------------------------------


def test_keep_alive_many_requests_one_connection(serve_app: Any) -> None:
    with serve_app(hello) as port, StrictClient(port) as c:
        for i in range(20):
            resp, body = c.request("GET", f"/n{i}")
            assert resp.status_code == 200 and body == f"Hello /n{i}".encode()
            assert header(resp, "connection") is None


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_every_method_reaches_the_app(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["REQUEST_METHOD"].encode()
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
        return [body]

    with serve_app(app) as port, StrictClient(port) as c:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND",
                       "VERSION-CONTROL", "QUERY"):
            resp, body = c.request(method, "/")
            assert (resp.status_code, body) == (200, method.encode())
        resp, body = c.request("FROBNICATE", "/")  # not a registered method
        assert resp.status_code == 501
        assert "PROPFIND" in (header(resp, "allow") or "")


def test_head_has_no_body_and_keeps_the_connection_in_step(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "11")])
        yield b"hello world"  # also for HEAD: the gateway must drop it

    with serve_app(app) as port, StrictClient(port) as c:
        resp, body = c.request("HEAD", "/")
        assert (resp.status_code, body, header(resp, "content-length")) == (200, b"", "11")
        resp, body = c.request("GET", "/")  # h11 would choke on a HEAD body left behind
        assert body == b"hello world"


def test_head_of_an_endless_stream_ends_and_closes_it(serve_app: Any) -> None:
    made: list[Tracked] = []

    def endless() -> Iterator[bytes]:
        for i in range(10**9):  # "endless": a server that iterates it for HEAD never answers
            yield b"event %d\n" % i

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        made.append(Tracked(endless()))
        return made[-1]

    with serve_app(app) as port, StrictClient(port) as c:
        resp, body = c.request("HEAD", "/events")
        assert (resp.status_code, body) == (200, b"")
        assert made[0].closed.wait(5)
        resp, body = c.request("HEAD", "/events")  # the connection is still in step
        assert resp.status_code == 200


def test_custom_reason_and_own_server_and_date_fields(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("299 Quite Fine", [*TEXT, ("Server", "mine"),
                                          ("Date", "Thu, 01 Jan 1970 00:00:00 GMT")])
        return [b"x"]

    with serve_app(app) as port, StrictClient(port) as c:
        resp, _body = c.request("GET", "/")
    assert resp.status_code == 299 and resp.reason == b"Quite Fine"
    names = [k for k, _ in resp.headers]
    assert names.count(b"server") == 1 and names.count(b"date") == 1
    assert header(resp, "server") == "mine"


def test_empty_body_gets_content_length_zero(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""

    with serve_app(app) as port, StrictClient(port) as c:
        resp, body = c.request("GET", "/")
    assert body == b"" and header(resp, "content-length") == "0"
    assert header(resp, "transfer-encoding") is None


# -- wsgi.input ------------------------------------------------------------------------------


def read_all(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    parts = []
    for _ in range(10_000):
        piece = stream.read(4096)
        if not piece:
            break
        parts.append(piece)
    body = b"".join(parts)
    start_response("200 OK", [*TEXT, ("X-CL", environ.get("CONTENT_LENGTH", "-"))])
    return [body]


def test_chunked_request_body_is_decoded_and_pipelining_survives(serve_app: Any) -> None:
    request = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-Field: t\r\n\r\n"
               b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with serve_app(read_all) as port, socket.create_connection(("127.0.0.1", port),
                                                              timeout=5) as s:
        s.sendall(request)
        data = read_until_close(s)
    responses = data.split(b"HTTP/1.1 200 OK\r\n")
    assert len(responses) == 4, data
    assert b"X-CL: -\r\n" in responses[1] and responses[1].endswith(b"hello world\r\n0\r\n\r\n")
    assert b"X-CL: 3\r\n" in responses[2] and responses[2].endswith(b"3\r\nabc\r\n0\r\n\r\n")
    assert responses[3].endswith(b"\r\n\r\n")  # GET /last: empty body, then close


def test_expect_100_continue_is_answered_on_first_read(serve_app: Any) -> None:
    with serve_app(read_all) as port, socket.create_connection(("127.0.0.1", port),
                                                              timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abcde")
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"5\r\nabcde\r\n0\r\n\r\n" in data
    assert data.count(b"HTTP/1.1 200 OK") == 2


def test_expect_100_not_sent_when_the_app_ignores_the_body(serve_app: Any) -> None:
    with serve_app(hello) as port, socket.create_connection(("127.0.0.1", port),
                                                           timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = read_until_close(s)  # closed: the body it never asked for is not drained
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"100 Continue" not in data
    assert data.endswith(b"Hello /")


def test_body_too_large_is_413_even_if_the_framework_swallows_it(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            while environ["wsgi.input"].read(1024):
                pass
        except Exception:  # what frameworks do: turn it into their own 500 page
            start_response("500 Internal Server Error", TEXT)
            return [b"framework error page"]
        start_response("200 OK", TEXT)
        return [b"read it all"]

    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    with serve_app(app, limits=Limits(max_body=2048)) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + chunk * 3 + b"0\r\n\r\n")
        data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]
    assert b"framework error page" not in data


# -- errors ------------------------------------------------------------------------------------


def test_app_error_before_the_head_is_a_clean_500(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise ConnectionRefusedError("database down: secret-detail")

    with Records("minihttp.error") as log, serve_app(app) as port:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 500
    assert "secret-detail" not in r.text and "Traceback" not in r.text
    assert r.headers["Connection"] == "close"
    errors = log.errors()
    assert errors and errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], ConnectionRefusedError)


@pytest.mark.parametrize("mistake", ["no start_response", "str block", "bad status",
                                     "status 100", "header value not str",
                                     "two start_response"])
def test_broken_apps_get_500(serve_app: Any, mistake: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[Any]:
        if mistake == "no start_response":
            return [b"x"]
        if mistake == "str block":
            start_response("200 OK", TEXT)
            return ["text"]
        if mistake == "bad status":
            start_response("OK", TEXT)
        if mistake == "status 100":
            start_response("100 Continue", TEXT)
        if mistake == "header value not str":
            start_response("200 OK", [("X-N", 5)])
        if mistake == "two start_response":
            start_response("200 OK", TEXT)
            start_response("200 OK", TEXT)
        return [b"x"]

    # Not validated: these break PEP 3333 on purpose; the gateway itself must catch them.
    with Records("minihttp.error"), serve_app(app, validate=False) as port:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 500


@pytest.mark.parametrize("name", ["Connection", "keep-alive", "Transfer-Encoding", "Upgrade",
                                  "TE", "Trailer", "Proxy-Authenticate"])
def test_hop_by_hop_headers_from_the_app_are_refused(serve_app: Any, name: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, (name, "close")])
        return [b"x"]

    with Records("minihttp.error") as log, serve_app(app) as port:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 500
    assert any("hop-by-hop" in str(rec.exc_info[1]) for rec in log.errors() if rec.exc_info)


def test_exc_info_before_the_head_replaces_it(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("late problem")
        except ValueError:
            start_response("503 Service Unavailable", [*TEXT, ("Retry-After", "1")],
                           sys.exc_info())
        return [b"try later"]

    with serve_app(app) as port:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert (r.status_code, r.text, r.headers["Retry-After"]) == (503, "try later", "1")


def test_error_after_the_head_cuts_the_response_and_closes(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"partial"
        try:
            raise ValueError("mid-stream")
        except ValueError:
            start_response("500 Oops", TEXT, sys.exc_info())  # re-raises: head is out
        yield b"never"

    with Records("minihttp.error") as log, serve_app(app) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(s)  # the server closes: no keep-alive after a cut
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"7\r\npartial\r\n" in data
    assert not data.endswith(b"0\r\n\r\n") and b"never" not in data
    assert any(isinstance(r.exc_info[1], ValueError) for r in log.errors() if r.exc_info)


# -- streaming, write(), close() ---------------------------------------------------------------


def test_streaming_blocks_are_sent_as_they_come_chunked(serve_app: Any) -> None:
    proceed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"first"
        proceed.wait(5)
        yield b"second"

    with serve_app(app) as port, socket.create_connection(("127.0.0.1", port),
                                                         timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        for _ in range(100):
            got += s.recv(65536)
            if b"first" in got:
                break
        # The first block is on the wire while the application still waits to make the next.
        assert b"Transfer-Encoding: chunked\r\n" in got and got.endswith(b"5\r\nfirst\r\n")
        proceed.set()
        for _ in range(100):
            if got.endswith(b"0\r\n\r\n"):
                break
            got += s.recv(65536)
    assert got.endswith(b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")


def test_write_callable(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"one,")
        write(b"two,")
        return [b"three"]

    with serve_app(app) as port, StrictClient(port) as c:
        resp, body = c.request("GET", "/")
        assert body == b"one,two,three" and header(resp, "transfer-encoding") == "chunked"
        resp, body = c.request("GET", "/")
        assert body == b"one,two,three"


class Tracked:
    """An iterable whose ``close()`` is recorded (and whose blocks may go on forever)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self.blocks

    def close(self) -> None:
        self.closed.set()


def test_close_is_called_after_a_normal_response(serve_app: Any) -> None:
    made: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        made.append(Tracked(iter([b"a", b"b"])))
        return made[-1]

    with serve_app(app) as port:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ab"
        assert made[0].closed.wait(5)


def test_close_is_called_when_the_app_fails_mid_iteration(serve_app: Any) -> None:
    made: list[Tracked] = []

    def blocks() -> Iterator[bytes]:
        yield b"a"
        raise RuntimeError("iteration failed")

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        made.append(Tracked(blocks()))
        return made[-1]

    with Records("minihttp.error"), serve_app(app) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until_close(s)
        assert made[0].closed.wait(5)


def test_close_is_called_when_the_client_leaves_and_it_is_no_app_error(serve_app: Any) -> None:
    made: list[Tracked] = []

    def forever() -> Iterator[bytes]:
        block = b"x" * 65536
        for _ in range(100_000):  # bounded: ~6 GB, far more than any socket buffer
            yield block

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        made.append(Tracked(forever()))
        return made[-1]

    with Records("minihttp.error") as log, serve_app(app) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 200 OK")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST: the server's next send fails
        assert wait_for(lambda: bool(made) and made[0].closed.is_set(), 10)
    assert log.errors() == []


def test_wsgi_errors_go_to_logging(serve_app: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("line one\nline")
        errors.write(" two\n")
        errors.writelines(["partial"])
        errors.flush()
        start_response("200 OK", TEXT)
        return [b"ok"]

    with Records("minihttp.wsgi.errors") as log, serve_app(app) as port:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    assert [r.getMessage() for r in log.records] == ["line one", "line two", "partial"]
