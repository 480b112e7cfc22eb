"""Unit tests of minihttp._body: the body readers (empty, Content-Length, chunked) over file
sources, with the bytes after a body given back for the next request."""

from __future__ import annotations

import socket
from io import BytesIO

import pytest

from minihttp._body import EMPTY_BODY, ChunkedBody, LengthBody
from minihttp._reader import FileSource, SocketReader
from minihttp._sockets import ClientDisconnected
from minihttp.config import DEFAULT_LIMITS
from minihttp.errors import BadRequest, PayloadTooLarge


def source(data: bytes) -> FileSource:
    return FileSource(BytesIO(data))


def test_empty_body_reads_nothing() -> None:
    assert EMPTY_BODY.read() == b"" and EMPTY_BODY.readline() == b""
    assert EMPTY_BODY.done
    EMPTY_BODY.close()
    assert EMPTY_BODY.read(5) == b""


def test_length_body_is_bounded() -> None:
    src = source(b"hello worldNEXT")
    body = LengthBody(src, 11)
    assert body.read(5) == b"hello"
    assert body.read() == b" world"
    assert body.read() == b"" and body.done
    assert src.read1(10) == b"NEXT"


def test_length_body_readline_readinto_iter() -> None:
    body = LengthBody(source(b"a\nbb\ncccREST"), 8)
    assert body.readline() == b"a\n"
    buf = bytearray(2)
    assert body.readinto(buf) == 2 and buf == b"bb"
    assert list(body) == [b"\n", b"ccc"]


def test_length_body_early_eof_is_a_disconnect() -> None:
    body = LengthBody(source(b"abc"), 10)
    with pytest.raises(ClientDisconnected):
        body.read()


def test_first_read_callback_runs_once() -> None:
    calls: list[int] = []
    body = LengthBody(source(b"abcdef"), 6, lambda: calls.append(1))
    assert not body.started
    body.read(2)
    body.read(2)
    assert calls == [1] and body.started


@pytest.mark.parametrize("split", [1, 2, 3, 7, 100])
def test_chunked_body_decoded_and_rest_given_back(split: int) -> None:
    wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n"

    class Trickle(BytesIO):
        def read1(self, n: int | None = -1) -> bytes:
            return super().read1(min(split, n) if n is not None and n > 0 else split)

    src = FileSource(Trickle(wire))
    body = ChunkedBody(src, DEFAULT_LIMITS)
    assert body.read() == b"hello world"
    assert body.done
    assert body.trailers["X-T"] == "1"
    rest = b""
    for _ in range(100):
        rest += src.read1(100)
    assert rest == b"GET / HTTP/1.1\r\n"


def test_chunked_readline() -> None:
    body = ChunkedBody(source(b"3\r\na\nb\r\n2\r\nc\n\r\n0\r\n\r\n"), DEFAULT_LIMITS)
    assert list(body) == [b"a\n", b"bc\n"]


def test_chunked_bad_syntax_and_size_limit() -> None:
    with pytest.raises(BadRequest):
        ChunkedBody(source(b"zz\r\nabc\r\n0\r\n\r\n"), DEFAULT_LIMITS).read()
    limits = DEFAULT_LIMITS.replace(max_body=4)
    with pytest.raises(PayloadTooLarge):
        ChunkedBody(source(b"5\r\nhello\r\n0\r\n\r\n"), limits).read()


def test_discard_respects_budget() -> None:
    body = LengthBody(source(b"x" * 100), 100)
    assert not body.discard(10, 1.0)
    body = LengthBody(source(b"x" * 100), 100)
    assert body.discard(1000, 1.0) and body.done


# -- read_nowait: what the client has sent, never waiting (the proxy's upload relay) --------


def _nowait_pair() -> tuple[SocketReader, socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(None)  # a blocking socket: read_nowait must not block on it
    return SocketReader(a), a, b


def test_read_nowait_length_body() -> None:
    reader, a, b = _nowait_pair()
    with a, b:
        body = LengthBody(reader, 10)
        assert body.nowait
        assert body.read_nowait(100) is None  # nothing sent yet: no wait
        b.sendall(b"hello")
        assert body.read_nowait(100) == b"hello"
        assert body.read_nowait(100) is None
        b.sendall(b"worldGET /")  # past the body: never handed out
        assert body.read_nowait(3) == b"wor"
        assert body.read_nowait(100) == b"ld"
        assert body.read_nowait(100) == b"" and body.done
        assert bytes(reader.buf) == b"GET /"
        short = LengthBody(reader, 100)
        reader.buf.clear()
        b.close()
        with pytest.raises(ClientDisconnected):
            short.read_nowait(10)


def test_read_nowait_chunked_body_gives_back_what_follows() -> None:
    reader, a, b = _nowait_pair()
    with a, b:
        body = ChunkedBody(reader)
        assert body.read_nowait(100) is None
        b.sendall(b"5\r\nhel")
        assert body.read_nowait(100) == b"hel"
        b.sendall(b"lo\r\n")
        assert body.read_nowait(100) == b"lo"
        b.sendall(b"0\r\n")  # framing only: nothing to hand out yet
        assert body.read_nowait(100) is None
        b.sendall(b"\r\nGET / HTTP/1.1\r\n")
        assert body.read_nowait(100) == b"" and body.done
        assert bytes(reader.buf) == b"GET / HTTP/1.1\r\n"


def test_read_nowait_not_on_file_sources() -> None:
    assert not LengthBody(FileSource(BytesIO(b"abc")), 3).nowait
    assert EMPTY_BODY.nowait and EMPTY_BODY.read_nowait(10) == b""
