"""``send_error`` answers as the standard library's ``http.server`` does, where RFC 9110 allows.

The same calls (code, message, explain, request method) are made in a handler of the real
``http.server`` (imported here, in the test only; minihttp never imports it) and in the same
handler on minihttp, both on 127.0.0.1 port 0; the raw answers are compared field for field
and byte for byte (``Server`` and ``Date`` aside). Where minihttp deliberately differs the
test says how:

* 204 and 304 carry no Content-Length in either (RFC 9110 section 8.6: never on 1xx/204; on a
  304 it would have to be the stored representation's length, which send_error cannot know);
  a 205 gets ``Content-Length: 0`` from minihttp only (section 15.3.6 allows it, and it frames
  the response on a kept-alive connection).
* ``message`` is the reason phrase in both; a CR or LF in it ends the standard library's
  status line (the rest becomes header fields: injection), while minihttp turns each run of
  control characters into one space (RFC 9112 section 4: HTAB / SP / VCHAR / obs-text). A
  character beyond latin-1 makes the standard library fail with no answer; minihttp sends
  ``?`` in the reason phrase and the character itself in the UTF-8 body.
"""

from __future__ import annotations

import http.server
import socket
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import h11
import pytest

import minihttp.server
from tests.helpers.servers import running


class Case(NamedTuple):
    name: str
    method: str
    code: int
    message: str | None = None
    explain: str | None = None


CASES = [
    Case("404", "GET", 404),
    Case("404-head", "HEAD", 404),
    Case("431-message", "GET", 431, "Line too long"),
    Case("400-message-explain", "GET", 400, "Bad request syntax", "no <b>such</b> thing"),
    Case("418-latin1-message", "GET", 418, "caf\xe9"),
    Case("404-empty-message", "GET", 404, ""),
    Case("500-html-message", "GET", 500, "<script>x</script>"),
    Case("599-unknown-code", "GET", 599),
    Case("200", "GET", 200),
    Case("100", "GET", 100),
    Case("103", "GET", 103),
    Case("204", "GET", 204),
    Case("204-message", "GET", 204, "Gone quiet"),
    Case("304", "GET", 304),
    Case("304-head", "HEAD", 304),
    # Deliberate differences (module docstring):
    Case("205", "GET", 205),
    Case("404-crlf-message", "GET", 404, "Nope\r\nX-Injected: yes"),
    Case("404-controls-message", "GET", 404, "a\x00\x07b\tc\x7f"),
    Case("404-non-latin1-message", "GET", 404, "price \u20ac"),
]
BY_NAME = {case.name: case for case in CASES}


def _handler(base: type[Any]) -> type[Any]:
    """The same handler on either library: ``/<case name>`` makes that case's call."""

    class Handler(base):  # type: ignore[misc, valid-type]
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            case = BY_NAME[self.path[1:]]
            self.send_error(case.code, case.message, case.explain)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _StdServer(http.server.HTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the non-latin-1 case raises in the standard library: no traceback on stderr


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    std = _StdServer(("127.0.0.1", 0), _handler(http.server.BaseHTTPRequestHandler))
    ours = minihttp.server.HTTPServer(("127.0.0.1", 0),
                                      _handler(minihttp.server.BaseHTTPRequestHandler))
    try:
        with running(std), running(ours):
            yield {"std": std.server_address[1], "ours": ours.server_address[1]}
    finally:
        std.server_close()
        ours.server_close()


def _exchange(port: int, case: Case) -> bytes:
    """Everything the server sends for ``case`` until it closes (send_error closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{case.method} /{case.name} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"no close after {data!r}")


class Answer(NamedTuple):
    status_line: bytes
    fields: list[tuple[bytes, bytes]]
    body: bytes


def _split(data: bytes) -> Answer:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    status_line, *lines = head.split(b"\r\n")
    fields = [(name.lower(), value.strip()) for name, _, value in
              (line.partition(b":") for line in lines)]
    return Answer(status_line, [f for f in fields if f[0] not in (b"server", b"date")], body)


def _both(servers: dict[str, int], name: str) -> tuple[bytes, bytes]:
    case = BY_NAME[name]
    return _exchange(servers["std"], case), _exchange(servers["ours"], case)


SAME = [case.name for case in CASES[: CASES.index(BY_NAME["205"])]]


@pytest.mark.parametrize("name", SAME)
def test_same_answer_as_the_standard_library(servers: dict[str, int], name: str) -> None:
    std, ours = _both(servers, name)
    assert _split(ours) == _split(std)


@pytest.mark.parametrize("name", ["204", "204-message", "304", "304-head", "100", "103"])
def test_no_content_length_where_rfc_9110_forbids_or_cannot_know_it(
        servers: dict[str, int], name: str) -> None:
    _, ours = _both(servers, name)
    answer = _split(ours)
    assert b"content-length" not in dict(answer.fields)
    assert answer.body == b""


def test_205_is_framed_by_content_length_zero(servers: dict[str, int]) -> None:
    std, ours = _both(servers, "205")
    expected = _split(std)
    assert _split(ours) == expected._replace(fields=[*expected.fields, (b"content-length", b"0")])


def test_crlf_in_message_cannot_inject_fields(servers: dict[str, int]) -> None:
    std, ours = _both(servers, "404-crlf-message")
    theirs = _split(std)
    # The standard library's status line ends at the CR LF; the rest reads as a field.
    assert theirs.status_line == b"HTTP/1.1 404 Nope"
    assert (b"x-injected", b"yes") in theirs.fields
    answer = _split(ours)
    assert answer.status_line == b"HTTP/1.1 404 Nope X-Injected: yes"
    assert answer.fields == [f for f in theirs.fields if f[0] != b"x-injected"]
    assert answer.body == theirs.body  # the HTML body shows the message as given, escaped


def test_control_characters_in_message_become_spaces(servers: dict[str, int]) -> None:
    std, ours = _both(servers, "404-controls-message")
    assert _split(ours).status_line == b"HTTP/1.1 404 a b\tc "
    assert _split(ours).body == _split(std).body


def test_non_latin1_message(servers: dict[str, int]) -> None:
    std, ours = _both(servers, "404-non-latin1-message")
    assert std == b""  # UnicodeEncodeError in the standard library: the connection just closes
    answer = _split(ours)
    assert answer.status_line == b"HTTP/1.1 404 price ?"
    assert "price \u20ac".encode() in answer.body


@pytest.mark.parametrize("name", [c.name for c in CASES if c.code >= 200])
def test_every_final_answer_is_valid_for_a_strict_client(servers: dict[str, int],
                                                         name: str) -> None:
    case = BY_NAME[name]
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=case.method, target="/" + name, headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(_exchange(servers["ours"], case))
    client.receive_data(b"")
    event = client.next_event()
    assert isinstance(event, h11.Response) and event.status_code == case.code
    for _ in range(10):
        event = client.next_event()
        if isinstance(event, h11.EndOfMessage):
            return
        assert isinstance(event, h11.Data)
    raise AssertionError("no end of message")
