"""Request bodies relayed upstream as they arrive (minihttp.proxy.upload): slow uploaders
hold no thread on the pooled proxy, bodies arrive intact (Content-Length and chunked,
Expect: 100-continue), a client leaving mid-body aborts the upstream connection (never
reused), max_body is enforced, and no descriptor is left behind.

The upstream is a bare listening socket read by the test with h11 (SERVER role): no thread
per upstream connection, so the process's thread count is the proxy's."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import h11
import pytest

from minihttp.config import Limits
from minihttp.proxy import PooledProxyServer, ProxyConfig, upload
from tests.helpers.proxy import read_response
from tests.helpers.servers import open_fds, running, wait_for

_CLOSE_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@contextmanager
def _setup(limits: Limits | None = None,
           rcvbuf: int = 0) -> Iterator[tuple[socket.socket, PooledProxyServer]]:
    with socket.socket() as listener:
        if rcvbuf:  # a small window: the proxy must wait for the upstream to take bytes
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(5)
        cfg = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)
        server = PooledProxyServer(("127.0.0.1", 0), None, config=cfg)
        if limits is not None:
            server.limits = limits
        with running(server):
            yield listener, server


def _client(server: PooledProxyServer) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
    return c


def _status(c: socket.socket) -> int:
    head, _body = read_response(c, "POST")
    assert head is not None
    return int(head.status_code)


def _read_upstream(u: socket.socket) -> tuple[h11.Request | None, bytes, bool]:
    """What the proxy sent on ``u``: the request, its body, and whether it was complete
    (False: the connection ended before the end of the body)."""
    conn = h11.Connection(h11.SERVER)
    request = None
    body = bytearray()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = u.recv(65536)
            except ConnectionResetError:
                data = b""
            conn.receive_data(data)
            if not data:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    return request, bytes(body), False
                if isinstance(event, h11.EndOfMessage):
                    return request, bytes(body), True
                return request, bytes(body), False
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body), True
    raise AssertionError("upstream request not read in time")


_PATTERN = bytes(range(251)) * (2 + 4_000_000 // 251)


def _warm_up(listener: socket.socket, server: PooledProxyServer) -> None:
    """One upload whose client pauses mid-body, answered."""
    port = listener.getsockname()[1]
    with _client(server) as c:
        c.sendall(b"POST http://127.0.0.1:%d/w HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100000\r\n\r\n" % port + b"w" * 1000)
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            time.sleep(0.2)
            c.sendall(b"w" * 99_000)
            _request, body, complete = _read_upstream(u)
            assert complete and body == b"w" * 100_000
            u.sendall(_CLOSE_OK)
            assert _status(c) == 200


def _body(i: int, size: int) -> bytes:
    """``size`` bytes, different for each ``i``."""
    return _PATTERN[i % 251:i % 251 + size]


def test_slow_uploaders_hold_no_thread_and_their_bodies_arrive_intact() -> None:
    n, size, first = 40, 200_000, 1000
    with _setup() as (listener, server):
        port = listener.getsockname()[1]
        _warm_up(listener, server)  # what the server makes once (a spare thread's poller)
        fds_before = open_fds()
        threads_before = threading.active_count()
        clients = []
        ups: dict[str, socket.socket] = {}
        try:
            for i in range(n):
                c = _client(server)
                clients.append(c)
                c.sendall(b"POST http://127.0.0.1:%d/up/%d HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: %d\r\n\r\n" % (port, i, size) + _body(i, size)[:first])
            accepted = []
            for _ in range(n):
                u, _addr = listener.accept()
                u.settimeout(10)
                accepted.append(u)
            # Every upload has started and waits for its client: on the loop, not threads
            # (the loop, the spare, a few workers at most; a thread each before).
            time.sleep(0.3)
            assert threading.active_count() <= threads_before + 8, [t.name for t in threading.enumerate()]
            for i, c in enumerate(clients):
                c.sendall(_body(i, size)[first:])
            for u in accepted:
                request, body, complete = _read_upstream(u)
                assert request is not None and complete
                i = int(request.target.rsplit(b"/", 1)[1])
                assert body == _body(i, size)
                assert (b"content-length", str(size).encode()) in [
                    (k.lower(), v) for k, v in request.headers]
                u.sendall(_CLOSE_OK)
                ups[str(i)] = u
            for c in clients:
                assert _status(c) == 200
        finally:
            for s in [*clients, *ups.values()]:
                s.close()
        assert wait_for(lambda: open_fds() <= fds_before, timeout=5), (open_fds(), fds_before)


def test_chunked_body_in_pieces_arrives_rechunked_intact() -> None:
    with _setup() as (listener, server), _client(server) as c:
        port = listener.getsockname()[1]
        c.sendall(b"PUT http://127.0.0.1:%d/c HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" % port)
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            pieces = [b"1;ext=1\r\n,\r\n", b"1", b"0000\r\n" + b"x" * 0x10000, b"\r\n",
                      b"0\r\nTrailer-A: 1\r\n\r\n"]
            for piece in pieces:
                time.sleep(0.05)
                c.sendall(piece)
            request, body, complete = _read_upstream(u)
            assert request is not None and complete
            assert body == b"hello," + b"x" * 0x10000
            names = [k.lower() for k, _v in request.headers]
            assert b"content-length" not in names
            assert (b"transfer-encoding", b"chunked") in [(k.lower(), v)
                                                          for k, v in request.headers]
            u.sendall(_CLOSE_OK)
            assert _status(c) == 200
        # The client connection waited for its own readability: it is parked again after
        # the response and serves the next request.
        c.sendall(b"GET http://127.0.0.1:%d/again HTTP/1.1\r\nHost: x\r\n\r\n" % port)
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            request, _rest, complete = _read_upstream(u)
            assert request is not None and request.target == b"/again" and complete
            u.sendall(_CLOSE_OK)
            assert _status(c) == 200


def test_expect_100_continue_then_a_large_body() -> None:
    size = 300_000
    with _setup() as (listener, server), _client(server) as c:
        port = listener.getsockname()[1]
        c.sendall(b"POST http://127.0.0.1:%d/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % (port, size))
        interim = b""
        while not interim.endswith(b"\r\n\r\n") and len(interim) < 100:
            piece = c.recv(1)
            assert piece, interim
            interim += piece
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            c.sendall(_body(7, size))
            request, body, complete = _read_upstream(u)
            assert request is not None and complete and body == _body(7, size)
            assert b"expect" not in [k.lower() for k, _v in request.headers]
            u.sendall(_CLOSE_OK)
            assert _status(c) == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_client_leaving_mid_body_aborts_the_upstream_connection(chunked: bool) -> None:
    with _setup() as (listener, server):
        port = listener.getsockname()[1]
        _warm_up(listener, server)
        fds_before = open_fds()
        framing = (b"Transfer-Encoding: chunked\r\n\r\n1000\r\n" if chunked
                   else b"Content-Length: 200000\r\n\r\n")
        c = _client(server)
        c.sendall(b"POST http://127.0.0.1:%d/gone HTTP/1.1\r\nHost: x\r\n" % port
                  + framing + b"a" * 1000)
        u1, _addr = listener.accept()
        with u1:
            u1.settimeout(10)
            c.close()  # mid-body
            request, body, complete = _read_upstream(u1)
            assert request is not None and not complete  # the upstream saw it end short
            assert body == b"a" * len(body) and len(body) <= 1000
        assert wait_for(lambda: open_fds() <= fds_before, timeout=5), (open_fds(), fds_before)
        # The next request to the same upstream goes on a new connection.
        with _client(server) as c2:
            c2.sendall(b"GET http://127.0.0.1:%d/next HTTP/1.1\r\nHost: x\r\n\r\n" % port)
            u2, _addr = listener.accept()
            with u2:
                u2.settimeout(10)
                request, _body2, complete = _read_upstream(u2)
                assert request is not None and request.target == b"/next" and complete
                u2.sendall(_CLOSE_OK)
                assert _status(c2) == 200


def test_chunked_body_past_max_body_is_413_and_the_upstream_connection_closed() -> None:
    with _setup(Limits(max_body=100_000)) as (listener, server), _client(server) as c:
        port = listener.getsockname()[1]
        c.sendall(b"POST http://127.0.0.1:%d/big HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" % port)
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            for _ in range(3):
                c.sendall(b"c000\r\n" + b"b" * 0xC000 + b"\r\n")
            assert _status(c) == 413
            _request, body, complete = _read_upstream(u)
            assert not complete and len(body) <= 100_000


def test_slow_upstream_readers_of_large_bodies_hold_no_thread() -> None:
    """The upstream takes the body slowly: the proxy waits for it to be writable on the
    loop (defer_until_writable on the upstream socket), one client read buffered at most."""
    n, size = 10, 4_000_000
    with _setup(rcvbuf=16384) as (listener, server):
        port = listener.getsockname()[1]
        _warm_up(listener, server)
        threads_before = threading.active_count()
        clients = []
        senders = []
        try:
            for i in range(n):
                c = _client(server)
                c.settimeout(20)
                clients.append(c)
                data = (b"POST http://127.0.0.1:%d/s/%d HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: %d\r\n\r\n" % (port, i, size) + _body(i, size))
                t = threading.Thread(target=c.sendall, args=(data,), daemon=True)
                senders.append(t)
            for t in senders:
                t.start()
            accepted = [listener.accept()[0] for _ in range(n)]
            time.sleep(0.5)  # nobody reads upstream: every upload waits for its upstream
            # besides the test's senders: the loop, the spare, a few workers at most (one
            # thread per upload waiting for its upstream before)
            proxy_threads = [t for t in threading.enumerate() if t not in senders]
            assert len(proxy_threads) <= threads_before + 5, [t.name for t in proxy_threads]
            for u in accepted:
                u.settimeout(20)
                request, body, complete = _read_upstream(u)
                assert request is not None and complete
                i = int(request.target.rsplit(b"/", 1)[1])
                assert body == _body(i, size)
                u.sendall(_CLOSE_OK)
                u.close()
            for t in senders:
                t.join(10)
            for c in clients:
                assert _status(c) == 200
        finally:
            for c in clients:
                c.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_whose_turn_ends_with_its_last_bytes_is_finished(
        monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    """The relay yields its turn after every send (TURN = 1), so its budget runs out as the
    last body bytes go upstream, before the end is framed. It must go on with what it has,
    not wait for the client, which has sent everything and waits for its response (it
    waited for the client to become readable: the upload stalled until body_timeout)."""
    monkeypatch.setattr(upload, "TURN", 1)
    body = _body(7, 300_000)
    with _setup() as (listener, server), _client(server) as c:
        port = listener.getsockname()[1]
        framing = (b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) if chunked
                   else b"Content-Length: %d\r\n\r\n" % len(body))
        c.sendall(b"POST http://127.0.0.1:%d/t HTTP/1.1\r\nHost: x\r\n" % port + framing
                  + body + (b"\r\n0\r\n\r\n" if chunked else b""))
        u, _addr = listener.accept()
        with u:
            u.settimeout(10)
            _request, got, complete = _read_upstream(u)
            assert complete and got == body
            u.sendall(_CLOSE_OK)
            assert _status(c) == 200
