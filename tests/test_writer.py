"""Unit tests of minihttp._writer: ResponseWriter's framing modes (length, chunked, no body,
until close), buffering until the end of a response, and what can still be discarded."""

from __future__ import annotations

import socket
import threading

import pytest

from minihttp._writer import CHUNKED, CLOSE, LENGTH, NOBODY, ResponseTooLong, ResponseWriter


def test_writer_length_mode(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
    w = ResponseWriter(a)
    w.start(b"HEAD\r\n\r\n", LENGTH, 5)
    assert w.write(b"abc") == 3
    with pytest.raises(ResponseTooLong):
        w.write(b"def")
    assert not w.finish()  # short and broken: close
    assert b.recv(100) == b"HEAD\r\n\r\nabc"


def test_writer_buffers_until_finish(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
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


def test_writer_chunked_and_nobody(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
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


def test_writer_large_write_and_discard_unsent(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
    w = ResponseWriter(a)
    w.start(b"H\r\n\r\n", LENGTH, 3)
    assert w.discard_unsent()  # nothing on the wire yet: can be replaced by an error
    big = b"z" * 200_000
    w.start(b"H\r\n\r\n", LENGTH, len(big))
    got = bytearray()

    def drain() -> None:
        # Bounded: each recv waits at most 5 s (socket_pair), and EOF ends the loop (it
        # spun forever once the fixture closed the writer's end after a failure).
        while len(got) < len(big) + 5:
            piece = b.recv(65536)
            if not piece:
                break
            got.extend(piece)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    w.write(big)
    assert not w.discard_unsent()  # committed
    assert w.finish()
    t.join(5)
    assert not t.is_alive()
    assert bytes(got) == b"H\r\n\r\n" + big
