"""CONNECT tunnels through the proxy: TLS end to end, half-close, idle timeout, refusals."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import trustme

from minihttp.proxy import ProxyConfig
from tests.helpers.proxy import Upstream, proxy, proxy_url

#: Every test here runs on each proxy server (threads, pooled event loop).
pytestmark = pytest.mark.usefixtures("proxy_kind")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_upstream(ca: trustme.CA) -> Iterator[Upstream]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    with Upstream(tls=ctx) as up:
        yield up


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _cfg(*ports: int, idle: float = 5.0) -> ProxyConfig:
    return ProxyConfig(connect_ports=frozenset(ports or {443}), upstream_timeout=5,
                       tunnel_idle_timeout=idle, quiet=True)


@contextlib.contextmanager
def tcp_server(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-thread-per-connection raw TCP server on 127.0.0.1; yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            c.settimeout(5)

            def run(c: socket.socket = c) -> None:
                with c, contextlib.suppress(OSError):
                    handler(c)

            t = threading.Thread(target=run, daemon=True)
            threads.append(t)
            t.start()

    main = threading.Thread(target=serve, daemon=True)
    main.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        main.join(5)
        for t in threads:
            t.join(5)
        srv.close()


def _reverse_until_eof(c: socket.socket) -> None:
    data = b""
    for _ in range(1000):
        piece = c.recv(65536)
        if not piece:
            break
        data += piece
    c.sendall(data[::-1])


def _connect(proxy_port: int, target: str, extra: bytes = b"") -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode() + extra)
    head = b""
    for _ in range(100):
        piece = s.recv(1)
        if not piece:
            break
        head += piece
        if head.endswith(b"\r\n\r\n"):
            break
    return s, head


def test_https_through_connect_with_requests(tls_upstream: Upstream, ca_file: str) -> None:
    with proxy(_cfg(tls_upstream.port)) as px, requests.Session() as s:
        s.trust_env = False
        s.proxies = {"https": proxy_url(px)}
        for i in range(3):
            r = s.post(f"https://localhost:{tls_upstream.port}/t{i}", data=b"secret",
                       verify=ca_file, timeout=10)
            assert r.status_code == 200
            assert r.content == b"ok:secret"
        assert [x.target for x in tls_upstream.seen] == ["/t0", "/t1", "/t2"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_through_proxy_http_and_https(tls_upstream: Upstream, ca_file: str) -> None:
    with Upstream() as plain, proxy(_cfg(tls_upstream.port)) as px:
        for url in (f"{plain.base}/c", f"https://127.0.0.1:{tls_upstream.port}/c"):
            out = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "--noproxy", "", "-x", proxy_url(px),
                 "--cacert", ca_file, "-d", "curl-body", url],
                capture_output=True, timeout=20, check=False)
            assert out.returncode == 0, out.stderr
            assert out.stdout == b"ok:curl-body"


def test_connect_port_not_allowed_is_403() -> None:
    with tcp_server(_reverse_until_eof) as port, proxy(_cfg(443)) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}")
        with s:
            assert head.startswith(b"HTTP/1.1 403 ")


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.1:", "[::1:443", "a b:443"])
def test_connect_bad_authority_is_400(target: str) -> None:
    with proxy(_cfg()) as px:
        s, head = _connect(px.server_address[1], target)
        with s:
            assert head.startswith(b"HTTP/1.1 400 ")


def test_connect_upstream_down_is_502() -> None:
    with socket.create_server(("127.0.0.1", 0)) as tmp:
        port = tmp.getsockname()[1]
    with proxy(_cfg(port)) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}")
        with s:
            assert head.startswith(b"HTTP/1.1 502 ")


def test_tunnel_half_close_propagates() -> None:
    with tcp_server(_reverse_until_eof) as port, proxy(_cfg(port)) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"hello tunnel")
            s.shutdown(socket.SHUT_WR)  # upstream sees EOF only if the FIN is passed on
            got = b""
            for _ in range(100):
                piece = s.recv(65536)
                if not piece:
                    break
                got += piece
            assert got == b"lennut olleh"


def test_bytes_pipelined_after_connect_head_reach_upstream() -> None:
    with tcp_server(_reverse_until_eof) as port, proxy(_cfg(port)) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}", extra=b"early")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"+late")
            s.shutdown(socket.SHUT_WR)
            got = b""
            for _ in range(100):
                piece = s.recv(65536)
                if not piece:
                    break
                got += piece
            assert got == b"etal+ylrae"


def test_idle_tunnel_times_out() -> None:
    release = threading.Event()

    def silent(c: socket.socket) -> None:
        release.wait(10)

    with tcp_server(silent) as port, proxy(_cfg(port, idle=0.3)) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            # The proxy closes the idle tunnel long before this socket's 5 s timeout (which
            # would raise TimeoutError and fail the test).
            assert s.recv(10) == b""
        release.set()


def test_server_close_ends_live_tunnels() -> None:
    release = threading.Event()

    def silent(c: socket.socket) -> None:
        release.wait(10)

    with tcp_server(silent) as port:
        with proxy(_cfg(port, idle=60)) as px:
            s, head = _connect(px.server_address[1], f"127.0.0.1:{port}")
            assert head.startswith(b"HTTP/1.1 200 ")
            stopping = time.monotonic()
        # Stopping waits at most the pooled server's shutdown_grace (5 s) for the tunnel,
        # then cuts it: it took 10 s more while only the client side was cut (the tunnel
        # waited for its silent upstream, on the thread serve_forever returns from).
        assert time.monotonic() - stopping < 8.0
        # server_close cut the tunnel: EOF now, not after the 60 s idle timeout
        with s:
            assert s.recv(10) == b""
        release.set()


def _open_tunnel(port: int, target: int) -> tuple[int, socket.socket]:
    """CONNECT through the proxy on ``port`` to 127.0.0.1:``target``: (status, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\n\r\n"
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        piece = s.recv(4096)
        if not piece:
            break
        head += piece
    return int(head.split()[1]), s


def test_pooled_tunnels_take_their_own_threads_and_the_excess_gets_503() -> None:
    """On the pooled proxy a tunnel leaves the event loop at once for a thread of its own;
    with no thread free a CONNECT gets 503 (it once held the loop: every other client
    stalled until a tunnel ended), plain requests are served meanwhile, and a closed tunnel
    frees its thread for the next one."""
    from minihttp.proxy import PooledProxyServer
    from tests.helpers.servers import running

    def echo(c: socket.socket) -> None:
        while data := c.recv(65536):
            c.sendall(data)

    with tcp_server(echo) as target, Upstream() as up:
        cls = type("TwoThreads", (PooledProxyServer,), {"max_workers": 2})
        server = cls(("127.0.0.1", 0), None, config=_cfg(target))
        port = server.server_address[1]
        with running(server):
            opened: list[socket.socket] = []
            statuses = []
            try:
                for _ in range(4):
                    status, s = _open_tunnel(port, target)
                    statuses.append(status)
                    if status == 200:
                        s.sendall(b"ping")
                        assert s.recv(4) == b"ping"
                        opened.append(s)
                    else:
                        s.close()
                assert statuses[0] == 200 and statuses[-1] == 503, statuses
                with requests.Session() as session:
                    session.trust_env = False
                    session.proxies = {"http": proxy_url(server)}
                    assert session.get(f"{up.base}/x", timeout=5).content == b"ok:"
                opened.pop().close()
                for _ in range(50):  # the tunnel's thread ends once it sees the close
                    status, s = _open_tunnel(port, target)
                    s.close()
                    if status == 200:
                        break
                    threading.Event().wait(0.05)
                assert status == 200
            finally:
                for s in opened:
                    s.close()
