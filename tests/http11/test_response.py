"""Response side of minihttp.http11, and ChunkedDecoder behaviour beyond the raw vectors."""

from __future__ import annotations

import random

import h11
import pytest

from minihttp.config import Limits
from minihttp.errors import HTTPError
from minihttp.http11 import (
    LAST_CHUNK,
    ChunkedDecoder,
    body_allowed,
    encode_chunk,
    reason_phrase,
    response_head,
    validate_field,
)


def test_response_head_bytes() -> None:
    head = response_head("HTTP/1.1", 200, "OK", [("Content-Length", "2"), ("X", "caf\xe9")])
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: caf\xe9\r\n\r\n"
    assert response_head("HTTP/1.0", 404, "Not Found", []) == b"HTTP/1.0 404 Not Found\r\n\r\n"


def test_response_head_is_accepted_by_h11_client() -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(response_head("HTTP/1.1", 201, "Created",
                                      [("Content-Length", "2"), ("Server", "t")]) + b"ok")
    event = client.next_event()
    assert isinstance(event, h11.Response) and event.status_code == 201
    assert dict(event.headers)[b"server"] == b"t"
    data = client.next_event()
    assert isinstance(data, h11.Data) and data.data == b"ok"


@pytest.mark.parametrize("bad", [
    ("X", "a\r\nInjected: 1"), ("X", "a\nb"), ("X", "a\rb"), ("X", "a\x00b"),
    ("X\r\nY", "1"), ("X\n", "1"),
])
def test_response_head_refuses_injection(bad: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        response_head("HTTP/1.1", 200, "OK", [("A", "1"), bad])


def test_response_head_refuses_injection_in_reason_and_non_latin1() -> None:
    with pytest.raises(ValueError):
        response_head("HTTP/1.1", 200, "OK\r\nX: 1", [])
    with pytest.raises(ValueError):
        response_head("HTTP/1.1", 200, "OK", [("X", "\u20ac")])


@pytest.mark.parametrize(("name", "value"), [
    ("X", "a\r\nb"), ("X", "a\n"), ("X", "\r"), ("X", "a\x00"), ("", "v"), ("A B", "v"),
    ("A:", "v"), ("A\r\n", "v"), ("\xe9", "v"), ("A(", "v"),
])
def test_validate_field_rejects(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        validate_field(name, value)


def test_validate_field_accepts() -> None:
    validate_field("X-Token!#$%&'*+.^_`|~", "any \t value caf\xe9 \x01")
    validate_field("Content-Length", "")


@pytest.mark.parametrize(("method", "status", "allowed"), [
    ("GET", 200, True), ("HEAD", 200, False), ("GET", 100, False), ("GET", 101, False),
    ("GET", 204, False), ("GET", 304, False), ("POST", 404, True), ("HEAD", 404, False),
    ("CONNECT", 200, False), ("CONNECT", 407, True), ("GET", 205, True),
])
def test_body_allowed(method: str, status: int, allowed: bool) -> None:
    assert body_allowed(method, status) is allowed


def test_encode_chunk_round_trip() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"") == b""  # never an accidental last-chunk
    assert encode_chunk(bytearray(b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert encode_chunk(memoryview(b"ab")) == b"2\r\nab\r\n"
    dec = ChunkedDecoder()
    out = dec.feed(encode_chunk(b"abc") + encode_chunk(b"") + encode_chunk(b"d" * 300) + LAST_CHUNK)
    assert b"".join(out) == b"abc" + b"d" * 300 and dec.done and dec.unused == b""


def test_chunked_random_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(30):
        parts = [rng.randbytes(rng.randint(0, 70)) for _ in range(rng.randint(0, 6))]
        wire = b"".join(encode_chunk(p) for p in parts) + b"0\r\nT: v\r\n\r\n" + b"rest"
        dec = ChunkedDecoder()
        got = []
        i = 0
        while i < len(wire):
            n = rng.randint(1, 9)
            got += dec.feed(memoryview(wire)[i : i + n])
            i += n
        assert b"".join(got) == b"".join(parts)
        assert dec.done and dec.unused == b"rest" and dec.trailers.items() == [("T", "v")]


def test_chunked_feed_after_done_goes_to_unused() -> None:
    dec = ChunkedDecoder()
    assert dec.feed(b"0\r\n\r\nGE") == []
    assert dec.feed(b"T /") == []
    assert dec.done and dec.unused == b"GET /"


def test_chunked_not_done_until_trailer_end() -> None:
    dec = ChunkedDecoder()
    assert dec.feed(b"1\r\nx\r\n0\r\n") == [b"x"]
    assert not dec.done
    dec.feed(b"\r")
    assert not dec.done
    dec.feed(b"\n")
    assert dec.done


def test_chunked_limits() -> None:
    dec = ChunkedDecoder(Limits(max_body=10))
    dec.feed(b"5\r\nhello\r\n")
    with pytest.raises(HTTPError) as info:
        dec.feed(b"6\r\n")
    assert info.value.status == 413
    dec = ChunkedDecoder(Limits(max_chunk_line=8))
    dec.feed(b"5;a=bcd\r\nhello\r\n")  # 7 bytes: fits
    with pytest.raises(HTTPError) as info:
        dec.feed(b"5;a=bcdef")  # 9 bytes without its CRLF yet: already too long
    assert info.value.status == 400
    dec = ChunkedDecoder(Limits(max_trailer=10))
    dec.feed(b"0\r\nA: 1234\r\n")  # 9 bytes of trailer
    with pytest.raises(HTTPError) as info:
        dec.feed(b"\r\n")  # the final CRLF would make 11
    assert info.value.status == 431
    dec = ChunkedDecoder(Limits(max_header_count=1))
    dec.feed(b"0\r\nA: 1\r\n")
    with pytest.raises(HTTPError) as info:
        dec.feed(b"B: 2\r\n")
    assert info.value.status == 431


def test_trailers_are_separate_headers() -> None:
    dec = ChunkedDecoder()
    dec.feed(b"0\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert dec.trailers.get_all("X-A") == ["1", "2"]
    assert "x-a" in dec.trailers


@pytest.mark.parametrize(("text", "expected"), [
    ("Not Found", "Not Found"),
    ("", ""),
    ("a\r\nX: y", "a X: y"),
    ("a\nb\rc", "a b c"),
    ("tab\tkept, caf\xe9 kept", "tab\tkept, caf\xe9 kept"),
    ("\x00\x01\x1f\x7fend", " end"),
    ("\u20ac and \U0001f600", "? and ?"),
])
def test_reason_phrase(text: str, expected: str) -> None:
    reason = reason_phrase(text)
    assert reason == expected
    response_head("HTTP/1.1", 404, reason, [])  # raises on CR, LF, NUL or non-latin-1
