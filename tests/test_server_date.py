"""The Date field (RFC 9110 section 6.6.1) stays right although its line is cached per second.

``send_response`` caches the status, Server and Date lines together for the current second;
these tests move the server's clock forward, within a second and back, and check every
response against the formatted date of the clock at that moment.
"""

from __future__ import annotations

import email.utils
from io import BytesIO
from typing import Any
from unittest import mock

import pytest

import minihttp.server as server_module
from minihttp.server import BaseHTTPRequestHandler


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self) -> None:
        request = mock.Mock()
        request.makefile.return_value = BytesIO()
        super().__init__(request, ("127.0.0.1", 1), None)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def date_of_response(handler: Hello) -> str:
    handler.rfile = BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    handler.wfile = output = BytesIO()
    handler.handle_one_request()
    lines = output.getvalue().split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    dates = [line[6:].decode() for line in lines if line.startswith(b"Date: ")]
    assert len(dates) == 1
    return dates[0]


@pytest.mark.parametrize("clock", [
    [1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_061.2],
    [1_700_000_100.7, 1_700_000_099.2, 1_700_000_100.1],  # the clock is set back, then on
])
def test_date_follows_the_clock(clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    handler = Hello()
    for now in clock:
        monkeypatch.setattr(server_module, "_time", lambda now=now: now)
        assert date_of_response(handler) == email.utils.formatdate(int(now), usegmt=True), now


class LoggedHello(Hello):
    """Hello with the default access log; its handler's work ends an hour after its
    send_response (the clock moved by the handler itself)."""

    clock: list[float] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.clock[0] += 3600.0
        self.send_header("Content-Length", "0")
        self.end_headers()

    log_message = BaseHTTPRequestHandler.log_message


def test_the_access_line_has_send_responses_time(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """As http.server (whose log_request runs in send_response), the line's date is the
    time of send_response, not of the request's end (the time is taken once for the Date
    field and the line)."""
    from minihttp import logs
    from tests.helpers.logstate import isolated_logging

    start = 1_700_000_000.5
    LoggedHello.clock = [start]
    monkeypatch.setattr(server_module, "_time", lambda: LoggedHello.clock[0])
    with isolated_logging():  # nothing configured: http.server's line on stderr
        date_of_response(LoggedHello())
    err = capsys.readouterr().err
    assert f"[{logs.log_date(start)}]" in err and '"GET / HTTP/1.1" 200 -' in err, err
