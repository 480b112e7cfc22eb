"""Unit tests of minihttp._reader: the socket reader (heads, pipelining, the one-recv fast
path, feeding by a pooled server's loop, waiting for a body) and the file source's head
limits."""

from __future__ import annotations

import socket
from io import BytesIO

import pytest

from minihttp._reader import FileSource, SocketReader
from minihttp.config import DEFAULT_LIMITS, Limits
from minihttp.errors import BadRequest, HeaderFieldsTooLarge, URITooLong


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


def test_socket_reader_heads_and_pipelining(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.read_head() == b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert reader.has_request()
    assert reader.read_head() == b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    b.shutdown(socket.SHUT_WR)
    assert reader.read_head() is None


def test_socket_reader_unread_and_readline(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"line one\nline two\n")
    assert reader.readline() == b"line one\n"
    reader.unread(b"back ")
    assert reader.read(5) == b"back "
    assert reader.readline(4) == b"line"


@pytest.mark.parametrize("first", [b"GET", b"GET ", b"\r\n\r\n", b"GET / HTTP/1.1\r\n"])
def test_socket_reader_partial_first_read_is_not_a_head(
        socket_pair: tuple[socket.socket, socket.socket], first: bytes) -> None:
    """The one-recv fast path takes a read for a head only when it ends with its blank line."""
    a, b = socket_pair
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


def test_socket_reader_head_then_body_in_one_read(socket_pair: tuple[socket.socket, socket.socket]
                                                  ) -> None:
    """A head with its body in the same recv: the body stays buffered for the body reader."""
    a, b = socket_pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    b.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert reader.read_head() == b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    assert reader.read(3) == b"abc"


def test_socket_reader_head_larger_than_its_recv_buffer(
        socket_pair: tuple[socket.socket, socket.socket]) -> None:
    """A head longer than the per-connection recv buffer is read in several pieces."""
    from minihttp._reader import HEAD_RECV_SIZE

    a, b = socket_pair
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
def test_socket_reader_feed(socket_pair: tuple[socket.socket, socket.socket], feeds: list[bytes],
                            heads: list[bytes], tail: bytes) -> None:
    a, _b = socket_pair
    reader = SocketReader(a, DEFAULT_LIMITS)
    for data in feeds:
        reader.feed(data)
    for head in heads:
        assert reader.has_request()
        assert reader.read_head() == head
    assert bytes(reader.buf) == tail
    assert reader.requests == len(heads)


def test_socket_reader_feed_keeps_a_whole_head_out_of_the_buffer(
        socket_pair: tuple[socket.socket, socket.socket]) -> None:
    reader = SocketReader(socket_pair[0], DEFAULT_LIMITS)
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
def test_socket_reader_body_missing(socket_pair: tuple[socket.socket, socket.socket], fed: bytes,
                                    missing: bool) -> None:
    reader = SocketReader(socket_pair[0], DEFAULT_LIMITS)
    reader.feed(fed)
    assert reader.body_missing(65536) is missing


def test_socket_reader_body_missing_never_waits_past_max_body(
        socket_pair: tuple[socket.socket, socket.socket]) -> None:
    reader = SocketReader(socket_pair[0], Limits(max_body=1000))
    reader.feed(POST + b"Content-Length: 1001\r\n\r\nxx")
    assert not reader.body_missing(65536)  # 413 at once, not a wait for a refused body
