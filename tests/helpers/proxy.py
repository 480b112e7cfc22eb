"""Loopback upstream servers for the proxy tests, scripted per test.

The upstream parses what the proxy sends with h11 in the SERVER role, so every request the
proxy forwards is also checked by an independent strict HTTP/1.1 parser. Responses are either
well-formed (framed by h11) or :class:`Raw` bytes written as they are, then the connection is
closed (for broken framing tests). Everything binds 127.0.0.1 port 0, every wait is bounded.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h11

from minihttp.proxy import PooledProxyServer, ProxyConfig, ProxyServer


@dataclass
class Raw:
    """Bytes written as they are, then the connection is closed."""

    data: bytes
    then_wait: float = 0.0


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""


@dataclass
class Seen:
    """A request as the upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


App = Callable[[Seen], "Reply | Raw"]


def _default_app(req: Seen) -> Reply:
    return Reply(200, [("Content-Type", "text/plain"), ("Content-Length", str(len(req.body) + 3))],
                 b"ok:" + req.body)


class Upstream:
    """A threaded h11 origin server on 127.0.0.1 port 0, counting accepted connections."""

    def __init__(self, app: App = _default_app, *, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="upstream", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(5)
        self.sock.close()
        assert not self._thread.is_alive()
        assert not any(t.is_alive() for t in self._threads), "upstream thread hung"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                self._conns.add(conn)
            t = threading.Thread(target=self._conn, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _conn(self, raw: socket.socket) -> None:
        sock: Any = raw
        try:
            raw.settimeout(10)
            if self.tls is not None:
                sock = self.tls.wrap_socket(raw, server_side=True)
            self._cycle(sock)
        except Exception as exc:  # recorded; tests may assert on it
            if not self._stop.is_set():
                self.errors.append(exc)
        finally:
            with self._lock:
                self._conns.discard(raw)
            with contextlib.suppress(OSError):
                sock.close()

    def _cycle(self, sock: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            req = None
            body = bytearray()
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    data = sock.recv(65536)
                    if not data and conn.their_state is h11.IDLE:
                        return  # clean keep-alive close
                    conn.receive_data(data)
                    continue
                if isinstance(ev, h11.Request):
                    req = ev
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
                elif isinstance(ev, h11.ConnectionClosed):
                    return
            assert req is not None
            seen = Seen(req.method.decode(), req.target.decode(),
                        [(n.decode(), v.decode("latin-1")) for n, v in req.headers.raw_items()],
                        bytes(body), req.http_version.decode())
            self.seen.append(seen)
            reply = self.app(seen)
            if isinstance(reply, Raw):
                sock.sendall(reply.data)
                if reply.then_wait:
                    self._stop.wait(reply.then_wait)
                return
            sock.sendall(conn.send(h11.Response(status_code=reply.status, headers=reply.headers)))
            pieces = [reply.body] if isinstance(reply.body, bytes) else reply.body
            for piece in pieces:
                if piece and seen.method != "HEAD" and reply.status not in (204, 304):
                    sock.sendall(conn.send(h11.Data(data=piece)))
            sock.sendall(conn.send(h11.EndOfMessage()))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()


#: The proxy server classes the end-to-end tests run on (the ``proxy_kind`` fixture of
#: tests/conftest.py picks one per test): a thread per client, or the event loop that
#: defers upstream waits.
PROXY_SERVERS: dict[str, type[Any]] = {"threads": ProxyServer, "pooled": PooledProxyServer}
_kind = ["threads"]


@contextlib.contextmanager
def proxy_kind(kind: str) -> Iterator[None]:
    """Make :func:`proxy` start a ``kind`` server (a key of :data:`PROXY_SERVERS`)."""
    _kind.append(kind)
    try:
        yield
    finally:
        _kind.pop()


@contextlib.contextmanager
def proxy(config: ProxyConfig | None = None, handler: Any = None) -> Iterator[ProxyServer]:
    """A proxy server (see :func:`proxy_kind`) on 127.0.0.1 port 0, served in a thread."""
    from tests.helpers.servers import running

    cfg = config or ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)
    server = PROXY_SERVERS[_kind[-1]](("127.0.0.1", 0), handler, config=cfg)
    with running(server):
        yield server


def proxy_url(server: ProxyServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0, until_close: bool = True) -> bytes:
    """Send ``data`` to 127.0.0.1:port and return the raw bytes that come back.

    ``until_close``: everything until the peer closes; a peer still silent after ``timeout``
    seconds fails the test (a proxy that should close but does not must not pass as one
    that did). Otherwise the first response only, as far as an h11 client reads it for a
    GET, the connection left open (for requests that keep the connection alive).
    """
    client = None
    if not until_close:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks: list[bytes] = []
        for _ in range(10_000):
            try:
                piece = s.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no {'close' if until_close else 'response'} within "
                                     f"{timeout} s; got {b''.join(chunks)[:300]!r}") from None
            except ConnectionResetError:
                piece = b""
            chunks.append(piece)
            if client is None:
                if not piece:
                    break
                continue
            client.receive_data(piece)
            event = client.next_event()
            while event is not h11.NEED_DATA and not isinstance(
                    event, (h11.EndOfMessage, h11.ConnectionClosed)):
                event = client.next_event()
            if event is not h11.NEED_DATA:
                break
        return b"".join(chunks)


def read_response(sock: socket.socket, method: str = "GET") -> tuple[Any, bytes]:
    """Read one response with h11 as a strict client; (h11.Response, body)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    head = None
    body = bytearray()
    for _ in range(100_000):
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        if isinstance(ev, h11.Response):
            head = ev
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    return head, bytes(body)
