"""The proxy's speed paths keep their meaning: memoized h11 request events, kernel timeouts
on upstream sockets, one receive buffer per upstream connection.

No network: socketpairs only; every wait is bounded.
"""

from __future__ import annotations

import socket
import time

import h11
import pytest

from minihttp._proxy_pool import UpstreamConnection


def _pair() -> tuple[UpstreamConnection, socket.socket]:
    a, b = socket.socketpair()
    b.settimeout(5)
    return UpstreamConnection(a, ("test", 80)), b


def test_upstream_read_timeout_is_timeouterror() -> None:
    conn, peer = _pair()
    try:
        conn.set_timeout(0.2)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]), flush=False)
        conn.send(h11.EndOfMessage())
        assert peer.recv(1000).startswith(b"GET / HTTP/1.1")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            conn.next_event()
        assert time.monotonic() - started < 4  # bounded, whatever the mechanism
    finally:
        conn.close()
        peer.close()


def test_receive_buffer_reuse_does_not_alias_bodies() -> None:
    conn, peer = _pair()
    bodies = []
    try:
        conn.set_timeout(5)
        for body in (b"A" * 1000, b"B" * 1000):
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]),
                      flush=False)
            conn.send(h11.EndOfMessage())
            peer.recv(1000)
            peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body)
            assert isinstance(conn.next_event(), h11.Response)
            data = b""
            while True:
                event = conn.next_event()
                if isinstance(event, h11.EndOfMessage):
                    break
                bodies.append(event.data)
                data += bytes(event.data)
            assert data == body
            assert conn.reusable()
            conn.h11.start_next_cycle()
        # the first response's pieces were not overwritten by the second receive
        assert b"".join(bytes(d) for d in bodies) == b"A" * 1000 + b"B" * 1000
    finally:
        conn.close()
        peer.close()
