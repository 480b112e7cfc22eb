"""``defer_until_writable``: a response to a client that reads slowly waits for it on the
pooled server's loop (no thread held, others served meanwhile); elsewhere the handler writes
blocking as before. And the proxy's relay of a large body to slow readers uses it."""

from __future__ import annotations

import hashlib
import socket
import threading
from typing import Any

import requests

from minihttp.eventloop import PooledHTTPServer
from minihttp.proxy import PooledProxyServer, ProxyConfig
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.bodies import read_bodies, slow_readers
from tests.helpers.proxy import Reply, Seen, Upstream
from tests.helpers.servers import running, wait_for

SIZE = 8 * 1024 * 1024
#: (path, whether the server took the deferral) for every deferral asked for.
DEFERRED: list[bool] = []
#: then(False): the client took nothing for the timeout.
TIMED_OUT: list[str] = []


class SlowBody(BaseHTTPRequestHandler):
    """``/big/<timeout>``: SIZE bytes, pushed as the client takes them; ``/hello``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/hello":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
            return
        self._timeout = float(self.path.rsplit("/", 1)[1])
        self.send_response(200)
        self.send_header("Content-Length", str(SIZE))
        self.end_headers()
        self.wfile.hold_writes()  # type: ignore[attr-defined]
        self._left = SIZE
        self._more(True)

    def _more(self, ready: bool) -> None:
        if not ready:
            TIMED_OUT.append(self.path)
            self.close_connection = True
            self.wfile.abort()  # type: ignore[attr-defined]
            return
        while self._left:
            n = min(65536, self._left)
            self.wfile.write(b"x" * n)
            self._left -= n
            if not self.wfile.send_some():  # type: ignore[attr-defined]
                took = self.defer_until_writable(self._more, self._timeout)
                DEFERRED.append(took)
                if took:
                    return
                self.wfile.flush()


def _slow_client(port: int, path: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def _read_body(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        piece = s.recv(1 << 20)
        if not piece:
            break
        body += piece
    return body


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return _read_body(c)


def test_pooled_server_waits_for_slow_readers_on_its_loop() -> None:
    DEFERRED.clear()
    server = PooledHTTPServer(("127.0.0.1", 0), SlowBody)
    port = server.server_address[1]
    with running(server):
        base = threading.active_count()
        slow = [_slow_client(port, "/big/10") for _ in range(10)]
        try:
            assert wait_for(lambda: len(DEFERRED) >= 10)
            # Taken on the loop (a handler the watchdog moved off a busy loop hands its
            # wait back to the loop: taken too).
            assert any(DEFERRED)
            # Ten responses mid-body, none holding a thread; others are served meanwhile.
            assert _get(port, "/hello") == b"hello"
            assert threading.active_count() <= base + 2
            for body in read_bodies(slow):
                assert len(body) == SIZE and body == b"x" * SIZE, (len(body), TIMED_OUT)
        finally:
            for s in slow:
                s.close()


def test_a_client_that_takes_nothing_gets_then_false_and_is_cut() -> None:
    TIMED_OUT.clear()
    server = PooledHTTPServer(("127.0.0.1", 0), SlowBody)
    with running(server):
        s = _slow_client(server.server_address[1], "/big/0.3")
        with s:
            assert wait_for(lambda: TIMED_OUT == ["/big/0.3"])
            data = b""
            for _ in range(100_000):
                piece = s.recv(1 << 20)
                if not piece:
                    break
                data += piece
            assert len(data) < SIZE  # cut short, never made to look complete


def test_threaded_server_refuses_and_the_handler_writes_blocking() -> None:
    DEFERRED.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowBody)
    server.daemon_threads = True
    with running(server):
        s = _slow_client(server.server_address[1], "/big/10")
        with s:
            assert wait_for(lambda: DEFERRED)
            assert _read_body(s) == b"x" * SIZE
    assert DEFERRED and not any(DEFERRED)


def _big_app(req: Seen) -> Reply:
    """SIZE bytes, written in 64 KiB pieces: the upstream's socket timeout (10 s) bounds
    each ``sendall``, so it gives up only when the proxy takes nothing for that long (one
    ``sendall`` of the whole body had 10 s in all, while the proxy rightly takes the body
    at its slow readers' pace: on a loaded machine the upstream gave up mid-body, and the
    proxy cut its readers short)."""
    body = hashlib.sha256(b"seed").digest() * (SIZE // 32)
    return Reply(200, [("Content-Length", str(len(body)))],
                 [body[i:i + 65536] for i in range(0, len(body), 65536)])


def test_proxy_relays_large_bodies_to_slow_readers_without_a_thread_each() -> None:
    """20 slow readers of an 8 MiB proxied body hold no thread each (before: each blocked
    in a send and the loop moved to another thread), a normal client is served meanwhile,
    and every reader gets the whole body."""
    cfg = ProxyConfig(upstream_timeout=10, quiet=True)
    expected = hashlib.sha256(b"seed").digest() * (SIZE // 32)
    with Upstream(_big_app) as up:
        server = PooledProxyServer(("127.0.0.1", 0), None, config=cfg)
        port = server.server_address[1]
        with running(server):
            base = threading.active_count()
            with slow_readers(port, f"{up.base}/big", 20, timeout=20) as slow:
                with requests.Session() as session:
                    session.trust_env = False
                    session.proxies = {"http": f"http://127.0.0.1:{port}"}
                    assert session.get(f"{up.base}/small", timeout=10).status_code == 200
                # No slow reader holds a pool worker: busy are the loop's leader and deposed
                # leaders finishing their turns, a few at a time on a loaded machine (before
                # the hand-over: each deposed reader blocked in a send on a worker, 12 busy
                # and 8 queued). Counted by the pool, not by threads: on a loaded machine the
                # watchdog hands the loop over often, and each hand-over may start an idle
                # worker (seen: 12 idle workers, a flake).
                pool = server._pool
                held = pool.busy + pool.pending if pool is not None else 0
                assert held <= 8, (held, pool.busy if pool else 0)
                # The upstream's threads (one a connection, "_conn") are the test's.
                names = [t.name for t in threading.enumerate() if "_conn" not in t.name]
                assert len(names) < base + 20, " ".join(names)
                for body in read_bodies(slow):
                    assert body == expected
