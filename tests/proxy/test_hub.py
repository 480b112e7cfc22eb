"""TunnelHub: CONNECT tunnels relayed on one thread (minihttp/proxy/hub.py).

Driven directly over socket pairs: the "client" and "upstream" ends the hub relays between,
and the application ends the test plays.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

from minihttp.proxy.hub import TunnelHub
from tests.helpers.servers import open_fds, wait_for


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets on loopback (a reset is a TCP thing: not for socketpair)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=5)
        b, _ = listener.accept()
    return a, b


class _Pair:
    """One tunnel: the test's client end ``c`` and upstream end ``u``; the hub holds the
    other two."""

    def __init__(self, hub: TunnelHub, *, idle: float | None = 5.0, initial: bytes = b"",
                 tcp: bool = False) -> None:
        make = tcp_pair if tcp else socket.socketpair
        self.c, client = make()
        upstream, self.u = make()
        for s in (self.c, self.u):
            s.settimeout(5)
        self.done: list[tuple[int, int, float]] = []
        self.ended = threading.Event()

        def on_done(up: int, down: int, seconds: float) -> None:
            self.done.append((up, down, seconds))
            self.ended.set()

        assert hub.add(client, upstream, idle_timeout=idle, initial=initial, on_done=on_done)

    def close(self) -> None:
        self.c.close()
        self.u.close()


@contextlib.contextmanager
def hub() -> Iterator[TunnelHub]:
    h = TunnelHub()
    try:
        yield h
    finally:
        h.close()


def _read_all(s: socket.socket, limit: int = 1000) -> bytes:
    data = b""
    for _ in range(limit):
        piece = s.recv(65536)
        if not piece:
            return data
        data += piece
    raise AssertionError("no EOF")


def test_bytes_both_ways_and_half_close_each_way() -> None:
    with hub() as h:
        p = _Pair(h, initial=b"early+")
        try:
            p.c.sendall(b"up")
            p.u.sendall(b"down")
            assert p.c.recv(100) == b"down"
            p.c.shutdown(socket.SHUT_WR)  # client done: the upstream sees EOF ...
            assert _read_all(p.u).endswith(b"up")
            p.u.sendall(b"still flowing")  # ... and can still answer
            p.u.shutdown(socket.SHUT_WR)
            assert _read_all(p.c) == b"still flowing"
            assert p.ended.wait(5)
            up, down, seconds = p.done[0]
            assert (up, down) == (len(b"early+up"), len(b"down") + len(b"still flowing"))
            assert seconds >= 0
        finally:
            p.close()


def test_either_side_leaving_closes_the_tunnel() -> None:
    with hub() as h:
        for leaving in ("client", "upstream"):
            p = _Pair(h, tcp=True)
            try:
                gone, other = (p.c, p.u) if leaving == "client" else (p.u, p.c)
                gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                gone.close()  # a reset: the other side is closed too, not half-closed
                assert p.ended.wait(5), leaving
                assert other.recv(10) == b""
            finally:
                p.close()


def test_a_slow_reader_gets_everything_in_order() -> None:
    """Back-pressure: the upstream writes far more than the client reads at a time; every
    byte arrives, in order (the hub holds at most one read per direction)."""
    payload = bytes(range(256)) * 8192  # 2 MiB
    with hub() as h:
        p = _Pair(h)
        try:
            writer = threading.Thread(target=lambda: (p.u.sendall(payload),
                                                      p.u.shutdown(socket.SHUT_WR)))
            writer.start()
            got = bytearray()
            for _ in range(100_000):
                piece = p.c.recv(4096)
                if not piece:
                    break
                got += piece
            writer.join(10)
            assert bytes(got) == payload
        finally:
            p.close()


def test_idle_tunnel_is_closed_after_its_timeout() -> None:
    with hub() as h:
        p = _Pair(h, idle=0.2)
        try:
            assert p.ended.wait(5)  # SWEEP (1 s) plus the timeout, well within 5 s
            assert p.c.recv(10) == b"" and p.u.recv(10) == b""
        finally:
            p.close()


def test_close_ends_every_tunnel_reports_each_and_leaks_no_descriptor() -> None:
    before = open_fds()
    h = TunnelHub()
    pairs = [_Pair(h) for _ in range(50)]
    for p in pairs:
        p.c.sendall(b"x")
        assert p.u.recv(1) == b"x"
    h.close()
    assert all(p.ended.is_set() and p.done[0][0] == 1 for p in pairs)
    assert not h.add(*socket.socketpair(), idle_timeout=None) or False
    for p in pairs:
        assert p.c.recv(1) == b""
        p.close()
    assert wait_for(lambda: open_fds() <= before + 2)  # the refused pair above is the test's


def test_many_tunnels_one_thread() -> None:
    before = threading.active_count()
    with hub() as h:
        pairs = [_Pair(h) for _ in range(300)]
        try:
            for p in pairs:
                p.c.sendall(b"ping")
            for p in pairs:
                assert p.u.recv(4) == b"ping"
            assert len(h) == 300
            assert threading.active_count() <= before + 1
        finally:
            for p in pairs:
                p.close()
        assert wait_for(lambda: len(h) == 0)
