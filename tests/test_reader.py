"""Unit tests of minihttp._reader, _body, _writer: body readers over file sources, the socket reader, the writer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from io import BytesIO

import pytest

from minihttp._body import EMPTY_BODY, ChunkedBody, LengthBody
from minihttp._reader import FileSource, SocketReader
from minihttp._sockets import ClientDisconnected
from minihttp._writer import CHUNKED, CLOSE, LENGTH, NOBODY, ResponseTooLong, ResponseWriter
from minihttp.config import DEFAULT_LIMITS, Limits
from minihttp.errors import BadRequest, HeaderFieldsTooLarge, PayloadTooLarge, URITooLong


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


def test_file_source_head_limits() -> None:
    limits = DEFAULT_LIMITS.replace(max_request_line=20, max_head=60)
    assert FileSource(BytesIO(b""), limits).read_head() is None
    assert FileSource(BytesIO(b"\r\nGET / HTTP/1.1\r\n\r\n"), limits).read_head() == \
        b"GET / HTTP/1.1\r\n\r\n"
    with pytest.raises(URITooLong):
        FileSource(BytesIO(b"GET /" + b"a" * 40 + b" HTTP/1.1\r\n\r\n"), limits).read_head()
    with pytest.raises(HeaderFieldsTooLarge):
        FileSource(BytesIO(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 20 + b"\r\n"),
                   limits).read_head()
    with pytest.raises(BadRequest):
        FileSource(BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\n"), limits).read_head()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_socket_reader_heads_and_pipelining(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.read_head() == b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert reader.has_request()
    assert reader.read_head() == b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    b.shutdown(socket.SHUT_WR)
    assert reader.read_head() is None


def test_socket_reader_unread_and_readline(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"line one\nline two\n")
    assert reader.readline() == b"line one\n"
    reader.unread(b"back ")
    assert reader.read(5) == b"back "
    assert reader.readline(4) == b"line"


def test_writer_length_mode(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    w = ResponseWriter(a)
    w.start(b"HEAD\r\n\r\n", LENGTH, 5)
    assert w.write(b"abc") == 3
    with pytest.raises(ResponseTooLong):
        w.write(b"def")
    assert not w.finish()  # short and broken: close
    assert b.recv(100) == b"HEAD\r\n\r\nabc"


def test_writer_buffers_until_finish(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    w = ResponseWriter(a)
    w.start(b"H\r\n\r\n", LENGTH, 2)
    w.write(b"o")
    w.write(memoryview(b"k"))
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(100)  # nothing sent before the end of the request
    b.settimeout(5)
    assert w.finish()
    assert b.recv(100) == b"H\r\n\r\nok"


def test_writer_chunked_and_nobody(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    w = ResponseWriter(a)
    w.start(b"H\r\n\r\n", CHUNKED)
    w.write(b"hello")
    w.write(b"")  # must not end the body
    w.write(b"!")
    assert w.finish()
    assert b.recv(100) == b"H\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
    w.start(b"N\r\n\r\n", NOBODY)
    w.write(b"dropped")
    assert w.finish()
    assert b.recv(100) == b"N\r\n\r\n"
    w.start(b"C\r\n\r\n", CLOSE)
    w.write(b"until close")
    assert not w.finish()


def test_writer_large_write_and_discard_unsent(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    w = ResponseWriter(a)
    w.start(b"H\r\n\r\n", LENGTH, 3)
    assert w.discard_unsent()  # nothing on the wire yet: can be replaced by an error
    big = b"z" * 200_000
    w.start(b"H\r\n\r\n", LENGTH, len(big))
    got = bytearray()

    import threading

    def drain() -> None:
        while len(got) < len(big) + 5:
            got.extend(b.recv(65536))

    t = threading.Thread(target=drain)
    t.start()
    w.write(big)
    assert not w.discard_unsent()  # committed
    assert w.finish()
    t.join(5)
    assert bytes(got) == b"H\r\n\r\n" + big


@pytest.mark.parametrize("first", [b"GET", b"GET ", b"\r\n\r\n", b"GET / HTTP/1.1\r\n"])
def test_socket_reader_partial_first_read_is_not_a_head(
        pair: tuple[socket.socket, socket.socket], first: bytes) -> None:
    """The one-recv fast path takes a read for a head only when it ends with its blank line."""
    a, b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(first)
    assert reader.has_request() is False or first == b"\r\n\r\n"
    rest = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    if first.startswith(b"GET"):
        rest = rest[len(first):]
    # Both pieces may arrive in one recv or two: the head is the same either way.
    b.sendall(rest)
    head = reader.read_head()
    assert head is not None
    assert head.lstrip(b"\r\n") == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_socket_reader_head_then_body_in_one_read(pair: tuple[socket.socket, socket.socket]
                                                  ) -> None:
    """A head with its body in the same recv: the body stays buffered for the body reader."""
    a, b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert reader.read_head() == b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    assert reader.read(3) == b"abc"


def test_socket_reader_head_larger_than_its_recv_buffer(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A head longer than the per-connection recv buffer is read in several pieces."""
    from minihttp._reader import HEAD_RECV_SIZE

    a, b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    head = (b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1000) for i in range(HEAD_RECV_SIZE // 1000 + 2))
            + b"\r\n")
    assert len(head) > HEAD_RECV_SIZE
    b.sendall(head)
    assert reader.read_head() == head


HEAD1 = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD2 = b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("feeds, heads, tail", [
    ([HEAD1], [HEAD1], b""),  # one whole head: kept as is, not copied into the buffer
    ([HEAD1, HEAD2], [HEAD1, HEAD2], b""),  # fed again before it was read: order kept
    ([HEAD1 + HEAD2], [HEAD1, HEAD2], b""),  # pipelined in one chunk: the general path
    ([HEAD1, b""], [HEAD1], b""),  # EOF after a whole head: the head is still served
    ([HEAD1[:10], HEAD1[10:]], [HEAD1], b""),  # split: the second part is no head alone
    ([HEAD1 + b"abc"], [HEAD1], b"abc"),  # a head with body bytes after it
    ([b"\r\n" + HEAD1], [b"\r\n" + HEAD1], b""),  # leading CRLF: parse_head skips it
])
def test_socket_reader_feed(pair: tuple[socket.socket, socket.socket], feeds: list[bytes],
                            heads: list[bytes], tail: bytes) -> None:
    a, _b = pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    for data in feeds:
        reader.feed(data)
    for head in heads:
        assert reader.has_request()
        assert reader.read_head() == head
    assert bytes(reader.buf) == tail
    assert reader.requests == len(heads)


def test_socket_reader_feed_keeps_a_whole_head_out_of_the_buffer(
        pair: tuple[socket.socket, socket.socket]) -> None:
    reader = SocketReader(pair[0], DEFAULT_LIMITS)
    reader.feed(HEAD1)
    assert not reader.buf  # no copy, no second search: read_head hands it back as is
    assert reader.read_head() is not None and not reader.has_request()


POST = b"POST /u HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("fed, missing", [
    (POST + b"Content-Length: 5\r\n\r\n", True),  # whole head alone, body to come
    (POST + b"content-length: 5\r\n\r\nab", True),  # part of the body
    (POST + b"CONTENT-LENGTH: 5\r\n\r\nabcde", False),  # all of it
    (POST + b"Content-Length: 0\r\n\r\n", False),
    (POST + b"Content-Length: 70000\r\n\r\n", False),  # over `most`: streamed instead
    (POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", False),  # the parser decides
    (POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    (POST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", False),  # waits for 100
    (POST + b"Content-Length: 5x\r\n\r\n", False),  # bad value: 400 from the parser
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    (POST + b"Content-Length: 5\r\n", False),  # no whole head yet
])
def test_socket_reader_body_missing(pair: tuple[socket.socket, socket.socket], fed: bytes,
                                    missing: bool) -> None:
    reader = SocketReader(pair[0], DEFAULT_LIMITS)
    reader.feed(fed)
    assert reader.body_missing(65536) is missing


def test_socket_reader_body_missing_never_waits_past_max_body(
        pair: tuple[socket.socket, socket.socket]) -> None:
    reader = SocketReader(pair[0], Limits(max_body=1000))
    reader.feed(POST + b"Content-Length: 1001\r\n\r\nxx")
    assert not reader.body_missing(65536)  # 413 at once, not a wait for a refused body
