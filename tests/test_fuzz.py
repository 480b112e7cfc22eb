"""Hypothesis fuzzing of the protocol core and of a live server.

Arbitrary bytes and mutations of valid requests go to ``find_head_end`` / ``parse_head`` /
``ChunkedDecoder`` (only :class:`~minihttp.errors.HTTPError` may escape, with a client-error
status) and over real sockets to a ThreadingHTTPServer (every answer parses strictly with
h11, is never a 500, the connection always ends within a bounded time, and nothing is logged
at ERROR nor printed as a traceback). Longer campaigns: fuzz/README.md (atheris).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from minihttp.errors import HTTPError
from minihttp.http11 import ChunkedDecoder, find_head_end, parse_head
from tests.helpers.adversarial import LIMITS, EchoHandler, Server, capture_errors, connect, serving

#: ``MINIHTTP_FUZZ_SCALE=20 python3 -m pytest tests/test_fuzz.py`` for a longer local run.
SCALE = max(1, int(os.environ.get("MINIHTTP_FUZZ_SCALE", "1")))
CLIENT_ERRORS = {400, 408, 411, 413, 414, 417, 431, 501, 505}

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x?y=z HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://a/b HTTP/1.0\r\n\r\n",
    b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
]
# Bytes that matter to the grammar, so mutations hit interesting places often.
SPECIAL = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b";", b",", b"\x00", b"\x7f", b"\xff",
           b"\"", b"0", b"f", b"-", b"+", b"Content-Length: 3\r\n",
           b"Transfer-Encoding: chunked\r\n", b"Host: b\r\n", b"\r\n\r\n", b"HTTP/1.1"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed request with a few insertions, deletions, replacements or duplications."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup"]))
        piece = draw(st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=4)))
        if op == "insert":
            data[pos:pos] = piece
        elif op == "delete":
            data[pos:pos + len(piece)] = b""
        elif op == "replace":
            data[pos:pos + 1] = piece
        else:
            end = draw(st.integers(pos, len(data)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


requests_st = st.one_of(mutated(), st.binary(max_size=300),
                        st.lists(st.sampled_from(SEEDS + SPECIAL), max_size=8).map(b"".join))


def core(data: bytes) -> tuple[str, object]:
    """Run the core on ``data``; return what happened, raising on anything unexpected."""
    try:
        end = find_head_end(data, 0, LIMITS)
        if end < 0:
            return ("incomplete", None)
        req = parse_head(data[:end], LIMITS)
        if req.chunked:
            assert req.content_length is None  # CL with TE is never accepted
            dec = ChunkedDecoder(LIMITS)
            body = b"".join(dec.feed(data[end:]))
            assert len(body) <= LIMITS.max_body
            if dec.done:
                assert dec.unused == data[end:][len(data[end:]) - len(dec.unused):]
        return ("ok", (req.method, req.target, req.content_length, req.chunked))
    except HTTPError as err:
        assert err.status in CLIENT_ERRORS, (err.status, err)
        return ("error", err.status)


@settings(max_examples=600 * SCALE, deadline=None)
@given(requests_st)
def test_core_only_raises_client_errors(data: bytes) -> None:
    core(data)


@settings(max_examples=300 * SCALE, deadline=None)
@given(requests_st, st.data())
def test_core_head_outcome_same_when_fed_incrementally(data: bytes, draw: st.DataObject) -> None:
    """find_head_end on a growing buffer (as the socket reader calls it) ends where the whole
    buffer's call does, or fails with the same status."""
    whole = core(data)
    cut = draw.draw(st.integers(0, len(data)))
    try:
        early = find_head_end(data[:cut], 0, LIMITS)
    except HTTPError as err:
        assert whole == ("error", err.status), (whole, err.status)
        return
    if early >= 0:
        assert find_head_end(data, 0, LIMITS) == early


@settings(max_examples=400 * SCALE, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200))
def test_chunked_decoder_any_split(data: bytes, cut: int) -> None:
    """Whole or split in two, the decoder gives the same body or the same error status."""
    def run(parts: list[bytes]) -> object:
        dec = ChunkedDecoder(LIMITS)
        try:
            out = b"".join(b"".join(dec.feed(p)) for p in parts if not dec.done)
            return ("ok", out if dec.done else None, bytes(dec.unused) if dec.done else None)
        except HTTPError as err:
            assert err.status in CLIENT_ERRORS
            return ("error", err.status)

    whole = run([data])
    split = run([data[:cut], data[cut:]])
    if whole[0] == "error" or whole[1] is not None:  # an error, or a complete body
        assert split == whole


# -- live server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def echo_addr() -> Iterator[tuple[str, int]]:
    with serving(Server(("127.0.0.1", 0), EchoHandler)) as addr:
        yield addr


def exchange(addr: tuple[str, int], data: bytes) -> list[int]:
    """Send ``data``, half-close, read to EOF (bounded); the statuses of the answers."""
    with connect(addr, timeout=5.0) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # timeout 5 s per recv: TimeoutError = hang
                raw += chunk
                assert len(raw) < 1 << 20
    statuses = []
    while raw:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
        conn.receive_data(raw)
        conn.receive_data(b"")
        while True:
            ev = conn.next_event()  # h11.RemoteProtocolError = a malformed answer
            if isinstance(ev, h11.Response):
                statuses.append(ev.status_code)
            if isinstance(ev, h11.EndOfMessage):
                raw = conn.trailing_data[0]
                break
            assert ev is not h11.NEED_DATA and not isinstance(ev, h11.ConnectionClosed), raw
    return statuses


@settings(max_examples=150 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=requests_st)
@example(data=b"OST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
@example(data=b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nello")
def test_live_server_answers_strictly_and_never_500(echo_addr: Any, data: bytes,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    with capture_errors() as cap:
        statuses = exchange(echo_addr, data)
    assert not cap.records, [r.getMessage() for r in cap.records]
    assert "Traceback" not in capfd.readouterr().err
    for s in statuses:
        assert s == 200 or s in CLIENT_ERRORS, (s, data)
    kind, detail = core(data)
    try:
        head_error = find_head_end(data, 0, LIMITS) >= 0 and parse_head(
            data[:find_head_end(data, 0, LIMITS)], LIMITS) is None
    except HTTPError:
        head_error = True
    if kind == "error" and head_error:
        # The server's first answer is the core's verdict on the head (differential). A body
        # error may come later or never: a 501 method or a GET handler does not read it.
        assert statuses[:1] == [detail], (statuses, detail, data)
    elif kind == "incomplete" and data.strip():
        assert statuses == [400], (statuses, data)  # EOF inside a head (whitespace: silence)
