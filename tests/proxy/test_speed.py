"""The proxy's speed paths keep their meaning: kernel timeouts on upstream sockets, one
receive buffer per upstream connection, the first read of a cycle without asking h11 first,
request fields handed to h11 as bytes (validated by h11 when a hook built them), upstream
sockets tracked once, the server's behaviour in a mixin.

Loopback only (socketpairs, 127.0.0.1 port 0); every wait is bounded.
"""

from __future__ import annotations

import socket
import threading
import time

import h11
import pytest

from minihttp.proxy import (
    ProxyConfig,
    ProxyHandler,
    ProxyRequest,
    ProxyServer,
    ProxyServerMixIn,
)
from minihttp.proxy.connections import ConnectionPool, UpstreamConnection
from minihttp.server import HTTPServer
from tests.helpers.proxy import Upstream, proxy, raw_exchange
from tests.helpers.servers import running

QUICK = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)


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


def _request(conn: UpstreamConnection) -> None:
    conn.send_bodyless(h11.Request(method="GET", target="/", headers=[("Host", "x")]))


def test_bytes_after_a_response_keep_the_connection_out_of_the_pool() -> None:
    # An idle upstream must be silent; bytes past the response would otherwise be read as
    # the answer to the next request forwarded on this connection.
    conn, peer = _pair()
    pool = ConnectionPool()
    try:
        conn.set_timeout(5)
        _request(conn)
        assert peer.recv(1000).startswith(b"GET / HTTP/1.1")
        peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
        assert isinstance(conn.next_event(), h11.Response)
        assert isinstance(conn.next_event(), h11.Data)
        assert isinstance(conn.next_event(), h11.EndOfMessage)
        assert not conn.reusable()
        pool.release(conn)
        assert pool.idle_count() == 0
        assert conn.sock.fileno() == -1
    finally:
        pool.close()
        conn.close()
        peer.close()


def test_cycles_with_interim_and_final_in_one_segment() -> None:
    # The first read of a cycle skips h11's NEED_DATA round; what follows in the same
    # segment (the final response after a 1xx) must still come out, cycle after cycle.
    conn, peer = _pair()
    pool = ConnectionPool()
    try:
        conn.set_timeout(5)
        for i in range(3):
            _request(conn)
            assert peer.recv(1000).startswith(b"GET / HTTP/1.1")
            peer.sendall(b"HTTP/1.1 103 Early Hints\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(i).encode())
            assert isinstance(conn.next_event(), h11.InformationalResponse)
            assert isinstance(conn.next_event(), h11.Response)
            assert conn.next_event().data == str(i).encode()
            assert isinstance(conn.next_event(), h11.EndOfMessage)
            pool.release(conn)
            assert pool.acquire(conn.key) is conn
    finally:
        pool.close()
        conn.close()
        peer.close()


def test_obs_text_field_value_forwarded_byte_for_byte() -> None:
    # RFC 9110 section 5.5: obs-text (0x80-0xFF) is allowed in values; it must reach the
    # upstream unchanged, not fail an ASCII encoding.
    with Upstream() as up, proxy(QUICK) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/o HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9\r\n"
                           "Connection: close\r\n\r\n".encode("latin-1"))
    assert out.startswith(b"HTTP/1.1 200 ")
    assert up.seen[0].get("X-Obs") == "caf\xe9"


class _BadHook(ProxyHandler):
    def request_hook(self, request: ProxyRequest) -> ProxyRequest:
        value = "a\r\nX-Injected: 1" if request.url.endswith("/crlf") else "\u2603"
        request.set_header("X-Bad", value)
        return request


@pytest.mark.parametrize("path", ["/crlf", "/snowman"])
def test_fields_from_a_hook_are_still_validated(path: str) -> None:
    with Upstream() as up, proxy(QUICK, _BadHook) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}{path} HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 500 ")
    assert up.seen == []


def test_mixin_makes_any_server_class_a_proxy() -> None:
    class OneAtATimeProxy(ProxyServerMixIn, HTTPServer):
        pass

    with Upstream() as up:
        server = OneAtATimeProxy(("127.0.0.1", 0), config=QUICK)
        with running(server):
            out = raw_exchange(server.server_address[1],
                               f"GET {up.base}/m HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 ")
    assert up.seen[0].target == "/m"


def test_server_close_cuts_an_upstream_wait() -> None:
    # Upstream sockets are tracked once, when opened: a handler waiting on one must still
    # end when the server closes (long before the 60 s upstream timeout).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(10)
        port = silent.getsockname()[1]
        proxy_server = ProxyServer(("127.0.0.1", 0),
                                   config=QUICK.replace(upstream_timeout=60))
        thread = threading.Thread(target=proxy_server.serve_forever,
                                  kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        result: list[bytes] = []
        client = threading.Thread(target=lambda: result.append(raw_exchange(
            proxy_server.server_address[1],
            # Connection: close, or the client would also wait out the keep-alive timeout.
            f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            .encode(), timeout=30)), daemon=True)
        client.start()
        accepted, _ = silent.accept()  # the proxy reached the upstream, which never answers
        try:
            accepted.settimeout(10)
            assert accepted.recv(1000).startswith(b"GET / HTTP/1.1")
            proxy_server.shutdown()
            thread.join(10)
            proxy_server.server_close()
            client.join(20)
            assert not client.is_alive()  # it would wait 30 s if the socket were not cut
            assert result and (result[0] == b"" or result[0].startswith(b"HTTP/1.1 502 "))
        finally:
            accepted.close()
