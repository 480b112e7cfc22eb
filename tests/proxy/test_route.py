"""Proxy policy (auth, client allow-list, destination deny-list), helpers, pool, CLI."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest
import requests

import minihttp.proxy.handler as proxy_mod
from minihttp.proxy import (
    ProxyConfig,
    config_from_args,
    connection_options,
    end_to_end,
    main,
    via_has,
)
from minihttp.proxy.connections import ConnectionPool, UpstreamConnection, address_in
from tests.helpers.proxy import Reply, Upstream, proxy, proxy_url, raw_exchange

#: Every test here runs on each proxy server (threads, pooled event loop).
pytestmark = pytest.mark.usefixtures("proxy_kind")

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**kw: object) -> ProxyConfig:
    return ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True).replace(**kw)


def _session(url: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": url, "https": url}
    return s


# -- authentication --------------------------------------------------------------------------


def test_auth_required_407_then_200_and_credentials_not_forwarded() -> None:
    with Upstream() as up, proxy(_cfg(auth=("alice", "s3cr:t"))) as px:
        port = px.server_address[1]
        with _session(proxy_url(px)) as s:
            r = s.get(f"{up.base}/", timeout=5)
            assert r.status_code == 407
            assert r.headers["Proxy-Authenticate"].startswith('Basic realm="minihttp"')
        with _session(f"http://alice:wrong@127.0.0.1:{port}") as s:
            assert s.get(f"{up.base}/", timeout=5).status_code == 407
        with _session(f"http://alice:s3cr%3At@127.0.0.1:{port}") as s:
            r = s.get(f"{up.base}/", timeout=5)
            assert r.status_code == 200
        assert len(up.seen) == 1
        assert up.seen[0].get("Proxy-Authorization") is None


@pytest.mark.parametrize("value", ["Bearer abc", "Basic !!!notbase64", "Basic", "",
                                   "Basic " + base64.b64encode(b"alice:s3cr").decode()])
def test_auth_malformed_or_wrong_is_407(value: str) -> None:
    with proxy(_cfg(auth=("alice", "s3cr:t"))) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n"
                           f"Proxy-Authorization: {value}\r\nConnection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 407 ")


def test_auth_applies_to_connect() -> None:
    with proxy(_cfg(auth=("a", "b"), connect_ports={443})) as px:
        out = raw_exchange(px.server_address[1],
                           b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 407 ")


# -- client allow-list, destination deny-list ------------------------------------------------


def test_client_not_in_allow_list_is_403() -> None:
    with Upstream() as up, proxy(_cfg(allow=("10.0.0.0/8",))) as px, \
            _session(proxy_url(px)) as s:
        r = s.get(f"{up.base}/", timeout=5)
        assert r.status_code == 403
        assert up.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_deny_list_checked_on_resolved_address(host: str) -> None:
    cfg = _cfg(deny=("127.0.0.0/8", "::1/128"))
    with Upstream() as up, proxy(cfg) as px, _session(proxy_url(px)) as s:
        r = s.get(f"http://{host}:{up.port}/", timeout=5)
        assert r.status_code == 403
        assert up.accepted == 0


def test_deny_list_applies_to_connect() -> None:
    with Upstream() as up, proxy(_cfg(deny=("127.0.0.0/8",), connect_ports={up.port})) as px:
        out = raw_exchange(px.server_address[1],
                           f"CONNECT 127.0.0.1:{up.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403 ")
        assert up.accepted == 0


def test_deny_list_not_matching_lets_through() -> None:
    with Upstream() as up, proxy(_cfg(deny=("10.0.0.0/8",))) as px, \
            _session(proxy_url(px)) as s:
        assert s.get(f"{up.base}/", timeout=5).status_code == 200


# -- helpers ------------------------------------------------------------------------------------


def test_connection_options_and_end_to_end() -> None:
    assert connection_options(["close, X-A", " x-b ,", ""]) == {"close", "x-a", "x-b"}
    fields = [("Connection", "X-A"), ("X-A", "1"), ("TE", "t"), ("Keep-Alive", "1"),
              ("Host", "h"), ("X-B", "2"), ("Transfer-Encoding", "chunked")]
    assert end_to_end(fields, drop=("host",)) == [("X-B", "2")]
    # A protected name listed in Connection is never removed by the listing.
    assert end_to_end([("Connection", "Content-Length"), ("Content-Length", "3")]) == [
        ("Content-Length", "3")]


def test_via_has() -> None:
    assert via_has(["1.0 fred, 1.1 px (minihttp)"], "px")
    assert via_has(["1.1 PX"], "px")
    assert not via_has(["1.1 pxx, 1.0 other"], "px")
    assert not via_has([""], "px")


def test_address_in_handles_mapped_and_scoped() -> None:
    nets = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fe80::/10"))
    assert address_in("127.0.0.5", nets)
    assert address_in("::ffff:127.0.0.1", nets)  # v4-mapped v6 cannot dodge a v4 rule
    assert address_in("fe80::1%eth0", nets)
    assert not address_in("10.0.0.1", nets)
    assert not address_in("not-an-ip", nets)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ProxyConfig(upstream_timeout=0)
    with pytest.raises(ValueError):
        ProxyConfig(connect_ports=frozenset({0}))
    with pytest.raises(ValueError):
        ProxyConfig(via_name="bad name")
    with pytest.raises(ValueError):
        ProxyConfig(allow=("not-a-net",))  # type: ignore[arg-type]
    assert ProxyConfig().via_name != ProxyConfig().via_name  # unique pseudonyms


def test_all_lists_public_names() -> None:
    for name in proxy_mod.__all__:
        assert hasattr(proxy_mod, name), name
    assert {"ProxyHandler", "ProxyServer", "ProxyConfig", "main"} <= set(proxy_mod.__all__)


# -- pool -------------------------------------------------------------------------------------


def _socketpair_conn(key: tuple[str, int]) -> tuple[UpstreamConnection, socket.socket]:
    a, b = socket.socketpair()
    return UpstreamConnection(a, key), b


def _complete_cycle(conn: UpstreamConnection, peer: socket.socket) -> None:
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    peer.recv(65536)
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Response)
    assert isinstance(conn.next_event(), h11.EndOfMessage)


def test_pool_reuses_only_complete_cycles_and_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("minihttp.proxy.connections.POLL_AFTER", 0.0)  # always poll, as when idle
    pool = ConnectionPool(max_idle_per_host=2, idle_timeout=30)
    key = ("x", 80)
    peers = []
    try:
        half, p0 = _socketpair_conn(key)
        peers.append(p0)
        half.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        pool.release(half)  # request sent, no response: never pooled
        assert pool.idle_count() == 0
        assert half.sock.fileno() == -1
        conns = []
        for _ in range(3):
            c, p = _socketpair_conn(key)
            peers.append(p)
            _complete_cycle(c, p)
            conns.append(c)
        for c in conns:
            pool.release(c)
        assert pool.idle_count(key) == 2  # bounded per host; the oldest was closed
        assert conns[0].sock.fileno() == -1
        got = pool.acquire(key)
        assert got is conns[2] and got.reused
        peers[2].close()  # conns[1]'s upstream closes an idle connection: found dead, dropped
        assert pool.acquire(key) is None
        assert conns[1].sock.fileno() == -1
        pool.release(got)
    finally:
        pool.close()
        for p in peers:
            p.close()
    assert pool.idle_count() == 0


def test_pool_skips_the_liveness_poll_only_for_very_recent_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    polled: list[UpstreamConnection] = []

    def spy(conn: UpstreamConnection) -> bool:
        polled.append(conn)
        return True

    monkeypatch.setattr(ConnectionPool, "_looks_alive", staticmethod(spy))
    pool = ConnectionPool(idle_timeout=30)
    key = ("x", 80)
    c, p = _socketpair_conn(key)
    try:
        _complete_cycle(c, p)
        pool.release(c)
        assert pool.acquire(key) is c and polled == []  # just released: no syscall
        _complete_cycle(c, p)
        pool.release(c)
        c.idle_since -= 1.0  # as if idle for a second
        assert pool.acquire(key) is c and polled == [c]
    finally:
        pool.close()
        c.close()
        p.close()


def test_pool_idle_timeout_expires() -> None:
    pool = ConnectionPool(idle_timeout=0.05)
    c, p = _socketpair_conn(("x", 80))
    try:
        _complete_cycle(c, p)
        pool.release(c)
        assert pool.idle_count() == 1
        time.sleep(0.1)
        assert pool.acquire(("x", 80)) is None
        assert c.sock.fileno() == -1
    finally:
        pool.close()
        p.close()


# -- CLI ----------------------------------------------------------------------------------------


def test_config_from_args() -> None:
    args = proxy_mod.parse_args([
        "3128", "-b", "127.0.0.1", "--allow", "10.0.0.0/8", "--allow", "127.0.0.1",
        "--deny", "169.254.0.0/16", "--connect-port", "443", "--connect-port", "8443",
        "--auth", "u:p:w", "--no-forwarded-for", "--upstream-timeout", "2.5", "--quiet"])
    cfg = config_from_args(args)
    assert args.port == 3128
    assert [str(n) for n in cfg.allow] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert [str(n) for n in cfg.deny] == ["169.254.0.0/16"]
    assert cfg.connect_ports == {443, 8443}
    assert cfg.auth is not None and cfg.auth.users == {"u"}
    assert cfg.auth.verify("u", "p:w") and not cfg.auth.verify("u", "p")
    assert cfg.forwarded_for is False
    assert cfg.upstream_timeout == 2.5
    assert cfg.quiet


@pytest.mark.parametrize("argv", [["--auth", "nopass"], ["--allow", "nonsense"],
                                  ["--upstream-timeout", "-1"]])
def test_main_rejects_bad_arguments(argv: list[str]) -> None:
    assert main(argv) == 2


@contextlib.contextmanager
def _proxy_process(argv: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a proxy command line (``argv`` after the interpreter) as users run it; yield
    the process and the port its first line announces. Killed and its pipes closed after."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("Serving HTTP proxy on 127.0.0.1 port "), line
        yield proc, int(line.split(" port ")[1].split()[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


def _stop_and_log(proc: subprocess.Popen[bytes]) -> str:
    """SIGINT, as Ctrl-C: the process must exit 0; its stderr (the access log)."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert proc.stderr is not None
    return proc.stderr.read().decode()


@pytest.mark.parametrize("extra", [[], ["--threads"], ["--workers", "2"]])
def test_cli_runs_and_proxies_then_exits_on_sigint(extra: list[str]) -> None:
    with Upstream() as up, _proxy_process(
            ["-m", "minihttp.proxy", "0", "-b", "127.0.0.1", *extra]) as (proc, port):
        with _session(f"http://127.0.0.1:{port}") as s:
            assert s.get(f"{up.base}/cli", timeout=5).content == b"ok:"
            # Same connection, same handler thread: /cli was logged before this is read.
            assert s.get(f"{up.base}/second", timeout=5).content == b"ok:"
        assert "/cli" in _stop_and_log(proc)  # access log line


def test_logging_proxy_example_runs_as_users_run_it() -> None:
    """examples/logging_proxy.py as its docstring says to run it (the command line's default
    server, the event loop): hooks rewrite both heads, the access is logged, SIGINT ends it."""

    def app(req: object) -> Reply:
        return Reply(200, [("Content-Length", "2"), ("Set-Cookie", "a=b")], b"ok")

    with Upstream(app) as up, _proxy_process(
            [str(ROOT / "examples" / "logging_proxy.py"), "0"]) as (proc, port):
        with _session(f"http://127.0.0.1:{port}") as s:
            r = s.get(f"{up.base}/e", timeout=5, headers={"Cookie": "secret=1"})
        assert r.status_code == 200 and r.content == b"ok"
        assert r.headers["X-Proxied-By"] == "logging_proxy"
        assert "Set-Cookie" not in r.headers
        assert up.seen[0].get("DNT") == "1" and up.seen[0].get("Cookie") is None
        assert f"GET http://127.0.0.1:{up.port}/e -> 200" in _stop_and_log(proc)
