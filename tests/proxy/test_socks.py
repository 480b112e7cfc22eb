"""SOCKS5 beside the proxy (minihttp.proxy.socks): RFC 1928 CONNECT, RFC 1929 passwords, the
CONNECT policy, reply codes, handshake timeouts, chaining, curl, and the command line."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minihttp.proxy import ProxyConfig
from minihttp.proxy.chain import Chain, ParentRefused, parse_parent
from minihttp.proxy.connections import DestinationDenied, UpstreamError, UpstreamTimeout
from minihttp.proxy.socks import SocksServer, reply_code
from tests.helpers.processes import stop_process
from tests.helpers.proxy import Upstream, proxy
from tests.helpers.servers import open_fds, running, wait_for
from tests.helpers.socks import authenticate, greet, open_tunnel, recv_exact, request
from tests.helpers.tcp import echo, tcp_server

ROOT = Path(__file__).resolve().parents[2]


def _cfg(*ports: int, **changes: object) -> ProxyConfig:
    return ProxyConfig(connect_ports=frozenset(ports or {443}), upstream_timeout=5,  # type: ignore[arg-type]
                       tunnel_idle_timeout=5, quiet=True, **changes)


@contextlib.contextmanager
def socks(config: ProxyConfig, handshake_timeout: float = 5.0) -> Iterator[SocksServer]:
    server = SocksServer(("127.0.0.1", 0), config)
    server.handshake_timeout = handshake_timeout
    with running(server):
        yield server


def _port(server: object) -> int:
    return int(server.server_address[1])  # type: ignore[attr-defined]


def _ping(sock: socket.socket, data: bytes = b"hello through socks") -> bytes:
    sock.sendall(data)
    return recv_exact(sock, len(data))


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost"])
def test_connect_without_auth(target: str) -> None:
    with tcp_server(echo) as port, socks(_cfg(port)) as s:
        sock, reply = open_tunnel(_port(s), target, port)
        with sock:
            assert reply is not None and reply.code == 0
            assert reply.host == "127.0.0.1" and reply.port > 0  # the bound address
            assert _ping(sock) == b"hello through socks"


def test_connect_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        ctx = tcp_server(echo, host="::1")
        port = ctx.__enter__()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        with socks(_cfg(port)) as s:
            sock, reply = open_tunnel(_port(s), "::1", port)
            with sock:
                assert reply is not None and reply.code == 0 and reply.host == "::1"
                assert _ping(sock) == b"hello through socks"
    finally:
        ctx.__exit__(None, None, None)


def test_bytes_sent_right_after_the_request_are_relayed() -> None:
    with tcp_server(echo) as port, socks(_cfg(port)) as s, \
            socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
        assert greet(sock) == 0
        # Request and first payload in one segment (a client that does not wait).
        sock.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big") + b"early")
        assert recv_exact(sock, 10)[1] == 0
        assert recv_exact(sock, 5) == b"early"


def test_username_password() -> None:
    with tcp_server(echo) as port, socks(_cfg(port, auth=("al", "s3cret"))) as s:
        sock, reply = open_tunnel(_port(s), "127.0.0.1", port, auth=("al", "s3cret"))
        with sock:
            assert reply is not None and reply.code == 0
            assert _ping(sock) == b"hello through socks"
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            assert greet(sock, b"\x02") == 2
            assert authenticate(sock, "al", "wrong") == 1
            assert sock.recv(10) == b""  # closed after a failed authentication
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            # no-auth is not offered when auth is configured, even when the client lists it
            assert greet(sock, b"\x00") == 0xFF
            assert sock.recv(10) == b""
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            assert greet(sock, b"\x00\x02") == 2


def test_no_auth_server_refuses_password_only_clients() -> None:
    with socks(_cfg()) as s, socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as c:
        assert greet(c, b"\x02") == 0xFF


@pytest.mark.parametrize("command", [2, 3])
def test_bind_and_udp_associate_are_not_supported(command: int) -> None:
    with tcp_server(echo) as port, socks(_cfg(port)) as s, \
            socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
        assert greet(sock) == 0
        reply = request(sock, "127.0.0.1", port, command=command)
        assert reply is not None and reply.code == 0x07


def test_unknown_address_type_is_0x08() -> None:
    with socks(_cfg()) as s, socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as c:
        assert greet(c) == 0
        c.sendall(b"\x05\x01\x00\x09")
        assert recv_exact(c, 2) == b"\x05\x08"


def test_policy_port_deny_and_self_are_0x02() -> None:
    with tcp_server(echo) as port:
        with socks(_cfg(443)) as s:  # the port is not a CONNECT port
            sock, reply = open_tunnel(_port(s), "127.0.0.1", port)
            sock.close()
            assert reply is not None and reply.code == 0x02
        with socks(_cfg(port, deny=("127.0.0.0/8",))) as s:  # the destination is denied
            for host in ("127.0.0.1", "localhost"):
                sock, reply = open_tunnel(_port(s), host, port)
                sock.close()
                assert reply is not None and reply.code == 0x02, host
    with socks(_cfg()) as s:  # a tunnel to the SOCKS listener itself
        s.proxy_config = _cfg(_port(s))
        sock, reply = open_tunnel(_port(s), "127.0.0.1", _port(s))
        sock.close()
        assert reply is not None and reply.code == 0x02


def test_client_outside_the_allow_list_gets_no_method() -> None:
    with socks(_cfg(allow=("10.0.0.0/8",))) as s, \
            socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
        assert greet(sock) == 0xFF
        assert sock.recv(10) == b""


def test_refused_destination_is_0x05() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        dead = spare.getsockname()[1]
        with socks(_cfg(dead)) as s:
            sock, reply = open_tunnel(_port(s), "127.0.0.1", dead)
            sock.close()
            assert reply is not None and reply.code == 0x05


def _cause(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(("exc", "code"), [
    (DestinationDenied("x"), 0x02),
    (UpstreamTimeout("x"), 0x04),
    (_cause(UpstreamError("x"), socket.gaierror(-2, "no name")), 0x04),
    (_cause(UpstreamError("x"), ConnectionRefusedError()), 0x05),
    (_cause(UpstreamError("x"), OSError(errno.ENETUNREACH, "net")), 0x03),
    (_cause(UpstreamError("x"), OSError(errno.EHOSTUNREACH, "host")), 0x04),
    (UpstreamError("x"), 0x01),
    (ParentRefused("x", 403), 0x02),
    (ParentRefused("x", 502), 0x04),
    (ParentRefused("x", 407), 0x01),
])
def test_reply_codes(exc: BaseException, code: int) -> None:
    assert reply_code(exc) == code


def test_stalled_or_garbage_handshakes_are_closed_and_the_server_goes_on() -> None:
    with tcp_server(echo) as port, socks(_cfg(port), handshake_timeout=0.3) as s:
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            sock.sendall(b"\x05")  # half a greeting, then nothing
            start = time.monotonic()
            assert sock.recv(10) == b""
            assert time.monotonic() - start < 4
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not SOCKS5
            assert sock.recv(10) == b""
        with socket.create_connection(("127.0.0.1", _port(s)), timeout=5) as sock:
            assert greet(sock) == 0
            sock.sendall(b"\x05\x01\x00\x03\x05a/b c\x00\x50")  # a malformed domain name
            assert recv_exact(sock, 2) == b"\x05\x04"
        sock, reply = open_tunnel(_port(s), "127.0.0.1", port)
        with sock:
            assert reply is not None and reply.code == 0
            assert _ping(sock) == b"hello through socks"
        # Every socket of those handshakes was closed and forgotten (the fd count of the
        # whole process is not used: other tests' threads may still be closing theirs).
        assert wait_for(lambda: not list(s._live), timeout=5)


def test_server_close_cuts_open_tunnels() -> None:
    with tcp_server(echo) as port:
        # A long idle timeout: only the cut can end the tunnel within the test's wait.
        s = SocksServer(("127.0.0.1", 0), _cfg(port).replace(tunnel_idle_timeout=60))
        with running(s):
            sock, reply = open_tunnel(_port(s), "127.0.0.1", port)
            assert reply is not None and reply.code == 0
        with sock:  # running() has shut the server down and closed it: the tunnel is cut
            sock.settimeout(5)
            assert sock.recv(10) == b""


def test_chained_through_a_parent_proxy() -> None:
    with tcp_server(echo) as port:
        parent_cfg = _cfg(port, auth=("p", "q"))
        with proxy(parent_cfg) as parent:
            url = f"http://p:q@127.0.0.1:{parent.server_address[1]}"
            with socks(_cfg(port, chain=Chain(parse_parent(url)))) as s:
                sock, reply = open_tunnel(_port(s), "127.0.0.1", port)
                with sock:
                    assert reply is not None and reply.code == 0
                    assert _ping(sock) == b"hello through socks"
        with proxy(_cfg(443)) as parent:  # the parent refuses the port: 403 -> 0x02
            url = f"http://127.0.0.1:{parent.server_address[1]}"
            with socks(_cfg(port, chain=Chain(parse_parent(url)))) as s:
                sock, reply = open_tunnel(_port(s), "127.0.0.1", port)
                sock.close()
                assert reply is not None and reply.code == 0x02


def _curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    return curl


def test_curl_socks5_hostname() -> None:
    curl = _curl()
    with Upstream() as up, socks(_cfg(up.port, auth=("u", "p w"))) as s:
        for user in ("u:p%20w", None):
            proxy_url = f"socks5h://{user + '@' if user else ''}127.0.0.1:{_port(s)}"
            result = subprocess.run(
                [curl, "-sS", "--max-time", "10", "-x", proxy_url,
                 f"http://localhost:{up.port}/x"],
                capture_output=True, timeout=20, check=False)
            if user:
                assert result.returncode == 0, result.stderr
                assert result.stdout == b"ok:"
            else:  # no credentials: the server offers no method curl can use
                assert result.returncode != 0 and result.stdout == b""


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "workers"])
def test_command_line_serves_socks_beside_http(workers: list[str]) -> None:
    curl = _curl()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Upstream() as up:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minihttp.proxy", "0", "--socks", "0",
             "--connect-port", str(up.port), *workers],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline().decode() for _ in range(2)]
            assert "Serving HTTP proxy" in lines[0] and "Serving SOCKS5" in lines[1], lines
            socks_port = int(lines[1].split(" port ")[1].split()[0])
            http_port = int(lines[0].split(" port ")[1].split()[0])
            assert socks_port not in (0, http_port)
            for _ in range(4):  # with workers, whichever takes each connection serves it
                result = subprocess.run(
                    [curl, "-sS", "--max-time", "10", "-x",
                     f"socks5h://127.0.0.1:{socks_port}", f"http://127.0.0.1:{up.port}/y"],
                    capture_output=True, timeout=20, check=False)
                assert result.returncode == 0 and result.stdout == b"ok:", result.stderr
        finally:
            stopped = stop_process(proc, signal.SIGTERM, 15)
        assert stopped, "the proxy did not stop on SIGTERM"
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""


def test_command_line_socks_port_in_use() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "minihttp.proxy", "0", "--socks", str(port)],
            capture_output=True, timeout=30, env=env, cwd=str(ROOT), check=False)
    assert result.returncode != 0
    assert f"cannot listen on port {port} for SOCKS5".encode() in result.stderr, result.stderr
    assert b"Traceback" not in result.stderr


def test_many_tunnels_hold_no_thread_each_both_ways_half_close_quick_close_no_leak() -> None:
    """Open SOCKS tunnels are relayed by the tunnel hub: 200 tunnels on a few threads (one
    each before), bytes both ways, a half-close passed on, the server's close ends them all
    at once (not after the 60 s idle timeout), and no descriptor is left behind."""
    n = 200
    with socket.create_server(("127.0.0.1", 0), backlog=n) as listener:
        port = listener.getsockname()[1]
        fds_before = open_fds()
        threads_before = threading.active_count()
        s = SocksServer(("127.0.0.1", 0), _cfg(port).replace(tunnel_idle_timeout=60))
        pairs: list[tuple[socket.socket, socket.socket]] = []
        try:
            with running(s):
                for _ in range(n):
                    c, reply = open_tunnel(_port(s), "127.0.0.1", port)
                    u, _addr = listener.accept()
                    u.settimeout(5)
                    pairs.append((c, u))
                    assert reply is not None and reply.code == 0
                # serve_forever + the hub + a few pool threads that did the handshakes
                assert wait_for(lambda: threading.active_count() <= threads_before + 10)
                assert wait_for(lambda: len(s.tunnel_hub) == n)
                for i, (c, u) in enumerate(pairs):
                    c.sendall(b"up %d" % i)
                    u.sendall(b"down %d" % i)
                for i, (c, u) in enumerate(pairs):
                    assert recv_exact(u, len(b"up %d" % i)) == b"up %d" % i
                    assert recv_exact(c, len(b"down %d" % i)) == b"down %d" % i
                # Half-close: the client's FIN reaches the upstream, which still answers.
                c, u = pairs[0]
                c.shutdown(socket.SHUT_WR)
                assert u.recv(10) == b""
                u.sendall(b"after fin")
                assert recv_exact(c, 9) == b"after fin"
                u.shutdown(socket.SHUT_WR)
                assert c.recv(10) == b""
                assert wait_for(lambda: len(s.tunnel_hub) == n - 1)
                started = time.monotonic()
            # running() shut the server down and closed it: every tunnel is cut now.
            assert time.monotonic() - started < 5
            for c, _u in pairs[1:]:
                c.settimeout(5)
                assert c.recv(10) == b""
        finally:
            for c, u in pairs:
                c.close()
                u.close()
        assert wait_for(lambda: open_fds() <= fds_before, timeout=5)
