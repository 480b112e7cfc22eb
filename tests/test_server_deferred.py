"""A deferred request is a value the handler gives back (``Deferred``), not handler state
the server reads: ``handle_one_request`` and ``resume_request`` return it, None when the
response is complete.

Socketless: the handler reads a request from a ``BytesIO`` and writes to another; a fake
server says whether it can wait (``defer_readable``).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from io import BytesIO
from typing import Any
from unittest import mock

import pytest

from minihttp.server import BaseHTTPRequestHandler, Deferred


class Loopish:
    """A server that can wait for the handler (as the pooled server's leader can)."""

    def __init__(self, allow: bool = True) -> None:
        self.allow = allow
        self.asked: list[Any] = []

    def defer_readable(self, handler: Any) -> bool:
        self.asked.append(handler)
        return self.allow


class Waits(BaseHTTPRequestHandler):
    """``/wait``: defers on ``self.aux``; ``/twice``: defers again once resumed."""

    protocol_version = "HTTP/1.1"
    aux: socket.socket

    def __init__(self, server: Any) -> None:
        request = mock.Mock()
        request.makefile.return_value = BytesIO()
        super().__init__(request, ("127.0.0.1", 1), server)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/hello":
            self.answer(b"hello")
            return

        def then(ready: bool) -> None:
            if self.path == "/twice" and not self.answered_once:
                self.answered_once = True
                if self.defer_until_readable(self.aux, then, 2.0):
                    return
            self.answer(b"ready" if ready else b"timed out")

        self.answered_once = False
        if not self.defer_until_readable(self.aux, then, 5.0):
            then(True)


class OverridesHandleOneRequest(Waits):
    """Written for http.server: its override returns None, so it must never be deferred."""

    def handle_one_request(self) -> None:  # type: ignore[override]
        super().handle_one_request()


def request(handler: Waits, path: str) -> BytesIO:
    handler.rfile = BytesIO(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    handler.wfile = out = BytesIO()
    return out


@pytest.fixture
def aux() -> Iterator[socket.socket]:
    a, b = socket.socketpair()
    Waits.aux = a
    try:
        yield a
    finally:
        a.close()
        b.close()


def test_complete_request_returns_none(aux: socket.socket) -> None:
    handler = Waits(Loopish())
    out = request(handler, "/hello")
    assert handler.handle_one_request() is None
    assert out.getvalue().endswith(b"hello")


def test_deferred_request_returns_its_value_and_resumes(aux: socket.socket) -> None:
    server = Loopish()
    handler = Waits(server)
    out = request(handler, "/wait")
    deferred = handler.handle_one_request()
    assert isinstance(deferred, Deferred)
    assert deferred.sock is aux and deferred.timeout == 5.0 and callable(deferred.then)
    assert server.asked == [handler]
    assert out.getvalue() == b""  # the response is not finished yet
    assert handler.resume_request(True) is None  # complete now
    assert out.getvalue().startswith(b"HTTP/1.1 200 ") and out.getvalue().endswith(b"ready")
    with pytest.raises(RuntimeError):
        handler.resume_request(True)  # nothing left to resume


def test_deferring_again_returns_the_next_value(aux: socket.socket) -> None:
    handler = Waits(Loopish())
    out = request(handler, "/twice")
    first = handler.handle_one_request()
    assert first is not None and first.timeout == 5.0
    second = handler.resume_request(True)
    assert second is not None and second.timeout == 2.0 and second is not first
    assert out.getvalue() == b""
    assert handler.resume_request(False) is None
    assert out.getvalue().endswith(b"timed out")


def test_finish_deferred_waits_on_this_thread(aux: socket.socket) -> None:
    handler = Waits(Loopish())
    out = request(handler, "/twice")
    assert handler.handle_one_request() is not None
    handler.finish_deferred(until=0.0)  # every wait bounded by an instant already past
    assert out.getvalue().endswith(b"timed out")


def test_a_server_that_cannot_wait_gets_a_complete_response(aux: socket.socket) -> None:
    handler = Waits(Loopish(allow=False))
    out = request(handler, "/wait")
    assert handler.handle_one_request() is None
    assert out.getvalue().endswith(b"ready")


def test_an_override_written_for_http_server_is_never_deferred(aux: socket.socket) -> None:
    # The server learns of a deferral only from the return value, which this override
    # drops: deferring would leave the response unfinished forever.
    server = Loopish()
    handler = OverridesHandleOneRequest(server)
    out = request(handler, "/wait")
    assert handler.handle_one_request() is None
    assert server.asked == []
    assert out.getvalue().endswith(b"ready")


def test_deferred_is_a_frozen_value() -> None:
    deferred = Deferred(None, lambda ready: None, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        deferred.timeout = 2.0  # type: ignore[misc]
