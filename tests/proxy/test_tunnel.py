"""CONNECT tunnels through the proxy: TLS end to end, half-close, idle timeout, refusals."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from minihttp.proxy import ProxyConfig
from tests.helpers.proxy import Upstream, proxy, proxy_url
from tests.helpers.servers import wait_for
from tests.helpers.tcp import tcp_server

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


@contextlib.contextmanager
def echo_loop() -> Iterator[int]:
    """A one-thread selector echo server on 127.0.0.1 (so that many tunnels to it do not
    add a thread each to the count); yields its port."""
    import selectors

    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock is listener:
                    with contextlib.suppress(BlockingIOError):
                        c, _ = listener.accept()
                        c.setblocking(True)
                        c.settimeout(1)
                        sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        sock.sendall(data)
                        continue
                except OSError:
                    pass
                sel.unregister(sock)
                sock.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        t.join(5)


class _Logged:
    """A handler class whose access lines are kept (log_message overrides are honoured)."""

    lines: list[str]

    @classmethod
    def make(cls) -> type[Any]:
        from minihttp.proxy import ProxyHandler

        lines: list[str] = []

        class Recording(ProxyHandler):
            def log_message(self, format: str, *args: Any) -> None:
                lines.append(format % args)

        Recording.lines = lines  # type: ignore[attr-defined]
        return Recording


def test_tunnel_is_logged_with_bytes_each_way_and_duration() -> None:
    """Issue 15 item 8: one line when the tunnel ends, not '200 0' when it starts."""
    handler = _Logged.make()
    with tcp_server(_reverse_until_eof) as port, proxy(_cfg(port), handler) as px:
        s, head = _connect(px.server_address[1], f"127.0.0.1:{port}", extra=b"abc")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"defg")
            s.shutdown(socket.SHUT_WR)
            assert _read_until_eof(s) == b"gfedcba"
        assert wait_for(lambda: handler.lines)
    line = handler.lines[0]
    assert line.startswith(f'"CONNECT 127.0.0.1:{port} HTTP/1.1" 200 7 tunnel up=7 down=7 ')
    assert line.endswith("s") and float(line.rsplit(" ", 1)[1][:-1]) >= 0
    assert len(handler.lines) == 1


def _read_until_eof(s: socket.socket) -> bytes:
    got = b""
    for _ in range(100):
        piece = s.recv(65536)
        if not piece:
            break
        got += piece
    return got


def test_pooled_tunnels_share_one_relay_thread_and_leak_nothing() -> None:
    """On the pooled proxy tunnels are relayed by the server's hub: 300 open tunnels on a
    handful of threads (a thread per tunnel before, and 503 past 256), plain requests
    served meanwhile, and every descriptor back once they close."""
    from minihttp.proxy import PooledProxyServer
    from tests.helpers.servers import open_fds, running

    with echo_loop() as target, Upstream() as up:
        cls = type("FewThreads", (PooledProxyServer,), {"max_workers": 4})
        server = cls(("127.0.0.1", 0), None, config=_cfg(target))
        port = server.server_address[1]
        with running(server), requests.Session() as session:
            session.trust_env = False
            session.proxies = {"http": proxy_url(server)}
            # Warm up: the hub's thread, selector and wake-up pair; a pooled upstream
            # connection and the session's own; then count.
            assert session.get(f"{up.base}/x", timeout=5).content == b"ok:"
            status, s = _open_tunnel(port, target)
            s.close()
            assert status == 200 and wait_for(lambda: len(server.tunnel_hub) == 0)
            before_threads = threading.active_count()
            before_fds = open_fds()
            opened: list[socket.socket] = []
            try:
                for _ in range(300):
                    status, s = _open_tunnel(port, target)
                    opened.append(s)
                    assert status == 200
                    s.sendall(b"ping")
                    assert s.recv(4) == b"ping"
                assert threading.active_count() < before_threads + 10
                assert threading.active_count() < 20
                assert len(server.tunnel_hub) == 300
                assert session.get(f"{up.base}/y", timeout=5).content == b"ok:"
            finally:
                for s in opened:
                    s.close()
            assert wait_for(lambda: len(server.tunnel_hub) == 0, 10)
            assert wait_for(lambda: open_fds() <= before_fds, 10), (open_fds(), before_fds)


def test_stopping_does_not_wait_for_idle_tunnels() -> None:
    """A graceful stop with idle tunnels open returns well within the grace (5 s) and
    closes them (EOF at the client)."""
    from minihttp.proxy import PooledProxyServer
    from tests.helpers.servers import running

    with echo_loop() as target:
        server = PooledProxyServer(("127.0.0.1", 0), None, config=_cfg(target, idle=60))
        port = server.server_address[1]
        opened: list[socket.socket] = []
        with running(server):
            for _ in range(20):
                status, s = _open_tunnel(port, target)
                opened.append(s)
                assert status == 200
            stopping = time.monotonic()
        took = time.monotonic() - stopping
        try:
            assert took < server.shutdown_grace / 2, took
            for s in opened:
                assert s.recv(10) == b""
        finally:
            for s in opened:
                s.close()


def test_tunnel_log_line_names_the_authenticated_user() -> None:
    """The command line's access line for a tunnel: the user, the bytes each way, the time."""
    import base64
    import re
    import signal
    import sys

    from tests.proxy.test_cli import ROOT, _announced_port, _env

    with tcp_server(_reverse_until_eof) as target:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minihttp", "proxy", "0", "--auth", "alice:pw",
             "--connect-port", str(target)],
            env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = _announced_port(proc)
            token = base64.b64encode(b"alice:pw").decode()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: x\r\n"
                          f"Proxy-Authorization: Basic {token}\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(1)
                assert head.startswith(b"HTTP/1.1 200 ")
                s.sendall(b"abcd")
                s.shutdown(socket.SHUT_WR)
                assert _read_until_eof(s) == b"dcba"
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
    assert re.search(rf'^127\.0\.0\.1 - alice \[.*\] "CONNECT 127\.0\.0\.1:{target} HTTP/1\.1" '
                     r'200 4 tunnel up=4 down=4 [0-9.]+s$', err, re.M), err
