"""PooledHTTPServer over TLS: the handshake runs on the loop and holds no worker.

Issue 12 item 5: with the handshake run blocking on a worker, a few idle TCP connections per
worker made a normal HTTPS client wait until they expired (``head_timeout``). Here the
server has 8 workers and 16 clients that connect and stay silent or stop mid-ClientHello;
a normal HTTPS client must still be answered at once. Also: the handshake's deadline, a
full send buffer (EPOLLOUT), a plain-HTTP request to the HTTPS port, and shutdown cutting a
TLS handler that blocks. Each runs on epoll and on the portable selectors poller.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from minihttp.config import Limits
from minihttp.eventloop import PooledHTTPServer
from minihttp.eventloop.tls import PLAIN_HTTP_RESPONSE
from tests.eventloop.test_server import Hello
from tests.helpers.servers import open_fds, running, wait_for

trustme = pytest.importorskip("trustme")

WORKERS = 8
#: Twice the workers: with blocking handshakes, all of them busy and the pool's queue full.
IDLE = 2 * WORKERS
#: Long enough that, with blocking handshakes, nothing expires while the client waits.
HEAD_TIMEOUT = 4.0
#: What the normal client allows itself (the idle ones would have held it HEAD_TIMEOUT).
CLIENT_TIMEOUT = 2.0


@pytest.fixture(params=[False, True], ids=["epoll", "selectors"])
def portable(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def contexts(*names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts; the server's certificate names 127.0.0.1 and ``names``."""
    ca = trustme.CA()
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", *names).configure_cert(sctx)  # the client checks 127.0.0.1
    cctx = ssl.create_default_context()
    ca.configure_trust(cctx)
    return sctx, cctx


def tls_server(sctx: ssl.SSLContext, portable: bool, head_timeout: float = HEAD_TIMEOUT,
               **attrs: Any) -> PooledHTTPServer:
    handler = attrs.pop("handler", Hello)
    attrs = {"max_workers": WORKERS, "ssl_context": sctx, "portable_poller": portable,
             "limits": Limits(head_timeout=head_timeout), "shutdown_grace": 1.0, **attrs}
    cls = type("TLSPooled", (PooledHTTPServer,), attrs)
    server: PooledHTTPServer = cls(("127.0.0.1", 0), handler)
    return server


def https_get(server: PooledHTTPServer, cctx: ssl.SSLContext, path: str) -> tuple[int, bytes]:
    """One GET with a fresh connection and handshake, bounded by CLIENT_TIMEOUT."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPSConnection(host, port, context=cctx, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_idle_tls_connections_do_not_stall_a_normal_client(portable: bool) -> None:
    sctx, cctx = contexts()
    server = tls_server(sctx, portable)
    with running(server):
        assert https_get(server, cctx, "/alone") == (200, b"hello /alone")
        host, port = server.server_address[:2]
        idle: list[socket.socket] = []
        try:
            for i in range(IDLE):
                s = socket.create_connection((host, port), timeout=5)
                if i % 2:
                    s.sendall(b"\x16\x03\x01\x02")  # a ClientHello that stops after 4 bytes
                idle.append(s)
            assert wait_for(lambda: server.connection_count >= IDLE)
            for i in range(3):
                status, body = https_get(server, cctx, f"/n{i}")
                assert (status, body) == (200, f"hello /n{i}".encode())
            # The handshakes in progress hold no worker (the one that served the last
            # request may still be parking its connection: wait for it, bounded).
            assert wait_for(lambda: server.pool.busy == 0)
            assert server.connection_count >= IDLE
        finally:
            for s in idle:  # before shutdown: a blocked handshake then ends at once
                s.close()


@pytest.mark.parametrize("kind", ["silent", "cut-hello", "handshaken"])
def test_handshake_and_first_request_within_head_timeout(portable: bool, kind: str) -> None:
    # head_timeout from accept covers the handshake and the wait for the first request:
    # past it the connection is closed (no 408: no request began), and its descriptor freed.
    sctx, cctx = contexts()
    server = tls_server(sctx, portable, head_timeout=0.3)
    with running(server):
        assert https_get(server, cctx, "/first")[0] == 200  # the loop runs: its fds are open
        assert wait_for(lambda: server.connection_count == 0)
        fds = open_fds()
        raw = socket.create_connection(server.server_address[:2], timeout=5)
        client: socket.socket = raw
        try:
            if kind == "cut-hello":
                raw.sendall(b"\x16\x03\x01\x02\x00\x01")
            elif kind == "handshaken":
                client = cctx.wrap_socket(raw, server_hostname="127.0.0.1")
            assert client.recv(4096) == b""  # closed by the server, within the bound
            assert wait_for(lambda: server.connection_count == 0)
        finally:
            client.close()
        assert wait_for(lambda: open_fds() == fds)


def test_full_send_buffer_waits_for_writability(portable: bool) -> None:
    # A ~60 KB certificate, a 1 KiB server send buffer and a client receive buffer of
    # 1 KiB: the handshake reaches WANT_WRITE, and only the write interest (EPOLLOUT) makes
    # it go on; the request is then served as usual.
    sctx, cctx = contexts(*(f"h{i}.example" for i in range(3000)))

    def get_request(self: PooledHTTPServer) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
        return sock, addr

    server = tls_server(sctx, portable, get_request=get_request)
    with running(server):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        raw.settimeout(5)
        raw.connect(server.server_address[:2])
        with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello /big")


def test_plain_http_to_the_https_port_gets_400(portable: bool) -> None:
    sctx, _ = contexts()
    server = tls_server(sctx, portable)
    with running(server):
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/plain")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 400
        assert b"https://" in body and PLAIN_HTTP_RESPONSE.endswith(body)
        assert wait_for(lambda: server.connection_count == 0)


class BlockingBody(Hello):
    """Reads a body the client never finishes: the handler blocks in recv on a worker."""

    started = threading.Event()
    ended = threading.Event()

    def do_POST(self) -> None:
        BlockingBody.started.set()
        try:
            self.rfile.read(int(self.headers["Content-Length"]))
        except OSError:
            pass
        finally:
            BlockingBody.ended.set()
        self.close_connection = True


@pytest.fixture
def blocking_body() -> Iterator[type[BlockingBody]]:
    BlockingBody.started.clear()
    BlockingBody.ended.clear()
    yield BlockingBody


def test_shutdown_cuts_a_tls_handler_that_blocks(portable: bool,
                                                 blocking_body: type[BlockingBody]) -> None:
    # Past shutdown_grace the sockets of handlers still running are shut so that they end.
    # For TLS that must be the SSLSocket's descriptor: the accepted socket object was
    # detached by wrap_socket and shutting it does nothing.
    sctx, cctx = contexts()
    server = tls_server(sctx, portable, handler=blocking_body, shutdown_grace=0.2,
                        prefetch_body=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    raw = socket.create_connection(server.server_address[:2], timeout=5)
    try:
        with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc")
            assert blocking_body.started.wait(5)
            server.shutdown()  # grace 0.2 s, then the stragglers are cut
            thread.join(10)
            assert blocking_body.ended.wait(5), "the blocked TLS handler was not cut"
    finally:
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()
