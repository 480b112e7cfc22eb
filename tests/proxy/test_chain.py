"""Chaining through a parent proxy (minihttp.proxy.chain): a second minihttp proxy in the
test is the parent; requests, CONNECT, per-domain rules, the parent's credentials, and the
502/504 answers for a parent that fails."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from minihttp.proxy import ProxyConfig, config_from_args
from minihttp.proxy.chain import Chain, Parent, parse_parent
from minihttp.proxy.config import parse_args
from tests.helpers.proxy import Upstream, proxy, raw_exchange
from tests.helpers.servers import wait_for
from tests.helpers.tcp import echo, tcp_server

pytestmark = pytest.mark.usefixtures("proxy_kind")

TIMEOUT = 10


def _cfg(**changes: object) -> ProxyConfig:
    base: dict[str, object] = {"upstream_timeout": 5, "tunnel_idle_timeout": 5, "quiet": True}
    base.update(changes)
    return ProxyConfig(**base)  # type: ignore[arg-type]


def _parent(server: object, userinfo: str = "") -> Parent:
    port = server.server_address[1]  # type: ignore[attr-defined]
    return parse_parent(f"http://{userinfo}127.0.0.1:{port}")


@contextlib.contextmanager
def chained(parent_cfg: ProxyConfig, userinfo: str = "",
            **child: object) -> Iterator[tuple[object, object]]:
    """(parent, child): the child sends everything through the parent."""
    with proxy(parent_cfg) as parent:
        chain = Chain(_parent(parent, userinfo))
        with proxy(_cfg(chain=chain, **child)) as kid:
            yield parent, kid


def _get(child: object, url: str, auth: str = "") -> requests.Response:
    port = child.server_address[1]  # type: ignore[attr-defined]
    via = f"http://{auth}127.0.0.1:{port}"
    return requests.get(url, proxies={"http": via}, timeout=TIMEOUT)


def test_request_goes_through_the_parent_and_reuses_its_connection() -> None:
    with Upstream() as up, chained(_cfg(via_name="parent-p")) as (_parent_srv, child):
        r = _get(child, up.base + "/a")
        assert r.status_code == 200 and r.text == "ok:"
        # The upstream saw both Via entries: ours first, then the parent's.
        via = ", ".join(up.seen[-1].get_all("Via"))
        assert "parent-p" in via and child.proxy_config.via_name in via  # type: ignore[attr-defined]
        r = _get(child, up.base + "/b")
        assert r.status_code == 200
        # The second request went out on the pooled connection to the parent.
        # (A connection goes back to the pool after its response reached the client: wait
        # for it, then give a second connection time to show up if there was one.)
        key = child.proxy_config.chain.default.key  # type: ignore[attr-defined]
        pool = child.proxy_pool  # type: ignore[attr-defined]
        assert wait_for(lambda: pool.idle_count(key) >= 1, TIMEOUT)
        time.sleep(0.2)
        assert pool.idle_count(key) == 1
        assert up.seen[-1].target == "/b"


def test_parent_credentials_come_from_the_url_not_from_the_client() -> None:
    parent_cfg = _cfg(auth=("al", "p@ss:w/rd"))
    with Upstream() as up, chained(parent_cfg, "al:p%40ss%3Aw%2Frd@",
                                   auth=("cl", "secret")) as (_p, child):
        r = _get(child, up.base + "/x", auth="cl:secret@")
        assert r.status_code == 200, r.text
        assert up.seen[-1].get("Proxy-Authorization") is None


def test_parent_refusing_our_credentials_is_502() -> None:
    with Upstream() as up, chained(_cfg(auth=("al", "right")), "al:wrong@") as (_p, child):
        r = _get(child, up.base + "/x")
        assert r.status_code == 502
        assert "parent proxy refused our credentials" in r.text
        assert not up.seen


def test_client_credentials_are_not_forwarded_to_the_parent() -> None:
    # The parent wants exactly the credentials the client gives the child: if the child
    # forwarded the client's Proxy-Authorization, the parent would let the request through.
    with Upstream() as up, chained(_cfg(auth=("cl", "secret")), "",
                                   auth=("cl", "secret")) as (_p, child):
        r = _get(child, up.base + "/x", auth="cl:secret@")
        assert r.status_code == 502 and "refused our credentials" in r.text
        assert not up.seen


def test_unreachable_parent_is_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, not listening: connections are refused
        with Upstream() as up, \
                proxy(_cfg(chain=Chain(parse_parent(f"http://127.0.0.1:{dead}")),
                           connect_ports=frozenset({up.port}))) as child:
            r = _get(child, up.base + "/x")
            assert r.status_code == 502 and "parent proxy unreachable" in r.text
            answer = raw_exchange(child.server_address[1],
                                  f"CONNECT 127.0.0.1:{up.port} HTTP/1.1\r\n"
                                  f"Host: 127.0.0.1:{up.port}\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 502") and b"parent proxy unreachable" in answer


def test_silent_parent_is_504() -> None:
    def silent(conn: socket.socket) -> None:
        while conn.recv(65536):  # reads, never answers; ends when the proxy gives up
            pass

    with tcp_server(silent) as port, \
            proxy(_cfg(chain=Chain(parse_parent(f"http://127.0.0.1:{port}")),
                       upstream_timeout=0.5, connect_ports=frozenset({443}))) as child:
        r = _get(child, "http://127.0.0.1:9/x")
        assert r.status_code == 504 and "parent proxy timed out" in r.text
        answer = raw_exchange(child.server_address[1],
                              b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 504") and b"parent proxy timed out" in answer


def _tunnel(port: int, target: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        piece = s.recv(4096)
        if not piece:
            break
        head += piece
    return s, head


def test_connect_through_the_parent() -> None:
    with tcp_server(echo) as port, \
            chained(_cfg(connect_ports=frozenset({port}), auth=("a", "b")), "a:b@",
                    connect_ports=frozenset({port})) as (_p, child):
        s, head = _tunnel(child.server_address[1], f"127.0.0.1:{port}")  # type: ignore[attr-defined]
        with s:
            assert head.startswith(b"HTTP/1.1 200"), head
            s.sendall(b"ping through two proxies")
            got = b""
            for _ in range(100):
                got += s.recv(4096)
                if len(got) >= 24:
                    break
            assert got == b"ping through two proxies"


def test_connect_refused_by_the_parent_is_502_with_its_status() -> None:
    # The child allows the port, the parent does not (403): the child says so in a 502.
    with tcp_server(echo) as port, \
            chained(_cfg(), "", connect_ports=frozenset({port})) as (_p, child):
        answer = raw_exchange(child.server_address[1],  # type: ignore[attr-defined]
                              f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 502")
        assert b"parent proxy refused the tunnel: 403 Forbidden" in answer


def test_connect_with_wrong_parent_credentials_is_502() -> None:
    with tcp_server(echo) as port, \
            chained(_cfg(connect_ports=frozenset({port}), auth=("a", "b")), "a:x@",
                    connect_ports=frozenset({port})) as (_p, child):
        answer = raw_exchange(child.server_address[1],  # type: ignore[attr-defined]
                              f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 502")
        assert b"refused our credentials" in answer


def test_per_domain_rules_choose_the_parent() -> None:
    with Upstream() as up, proxy(_cfg(via_name="parent-p")) as parent:
        through = _parent(parent)
        rules = Chain(None, (("localhost", through),))
        with proxy(_cfg(chain=rules)) as child:
            assert _get(child, f"http://localhost:{up.port}/1").status_code == 200
            assert "parent-p" in (", ".join(up.seen[-1].get_all("Via")))
            assert _get(child, f"http://127.0.0.1:{up.port}/2").status_code == 200
            assert "parent-p" not in (", ".join(up.seen[-1].get_all("Via")))
        direct = Chain(through, (("localhost", None),))
        with proxy(_cfg(chain=direct)) as child:
            assert _get(child, f"http://localhost:{up.port}/3").status_code == 200
            assert "parent-p" not in (", ".join(up.seen[-1].get_all("Via")))
            assert _get(child, f"http://127.0.0.1:{up.port}/4").status_code == 200
            assert "parent-p" in (", ".join(up.seen[-1].get_all("Via")))


@pytest.mark.parametrize(("host", "expected"), [
    ("example.com", "a"), ("www.example.com", "a"), ("x.y.example.com", "a"),
    ("EXAMPLE.com.", "a"), ("badexample.com", "default"), ("example.org", "default"),
    ("intra.example.com", None), ("a.intra.example.com", None),
    ("deep.special.example.com", "b"), ("10.0.0.1", None), ("10.0.0.10", "default"),
])
def test_rule_table(host: str, expected: str | None) -> None:
    parents = {name: Parent(name, 1) for name in ("a", "b", "default")}
    chain = Chain(parents["default"], (
        ("example.com", parents["a"]), (".intra.example.com", None),
        ("special.example.com", parents["b"]), ("10.0.0.1", None),
        ("intra.example.com", parents["a"]),  # the direct rule for the same domain wins
    ))
    found = chain.parent_for(host)
    assert (found.host if found else None) == expected


def test_command_line() -> None:
    args = parse_args(["--upstream", "http://u%3Ax:p%40@parent.test:8000",
                       "--upstream-for", "corp.test=http://other.test",
                       "--no-upstream", "local.test"])
    chain = config_from_args(args).chain
    assert chain is not None and chain.default is not None
    assert (chain.default.host, chain.default.port) == ("parent.test", 8000)
    assert chain.default.authorization == "Basic dTp4OnBA"  # base64 of "u:x:p@"
    assert "p@" not in repr(chain.default)
    other = chain.parent_for("a.corp.test")
    assert other is not None and (other.host, other.port) == ("other.test", 3128)
    assert chain.parent_for("local.test") is None
    for bad in (["--upstream", "https://p:1"], ["--upstream", "http://p:99999"],
                ["--upstream-for", "nodomain"], ["--no-upstream", "bad domain"],
                ["--upstream", "http://p:1/path"]):
        with pytest.raises(ValueError):
            config_from_args(parse_args(bad))


def test_connect_through_the_parent_to_a_server_that_speaks_first() -> None:
    # A fake parent answers the CONNECT and relays the destination's banner in the same
    # segment: the banner (read past the parent's head) reaches the client after our 200.
    seen: list[bytes] = []

    def parent(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        seen.append(head)
        conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n220 banner\r\n")
        echo(conn)

    with tcp_server(parent) as port, \
            proxy(_cfg(chain=Chain(parse_parent(f"http://u:p@127.0.0.1:{port}")),
                       connect_ports=frozenset({443}))) as child:
        s, head = _tunnel(child.server_address[1], "origin.test:443")
        with s:
            assert head.startswith(b"HTTP/1.1 200"), head
            got = head.partition(b"\r\n\r\n")[2]
            for _ in range(100):
                if got.endswith(b"\r\n"):
                    break
                got += s.recv(4096)
            assert got == b"220 banner\r\n"
            s.sendall(b"ping")
            assert s.recv(4096) == b"ping"
    # What the parent was asked: CONNECT in authority-form, our credentials and Via.
    assert seen[0].startswith(b"CONNECT origin.test:443 HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic dTpw\r\n" in seen[0]
    assert b"\r\nVia: 1.1 " in seen[0]


def test_deny_list_still_applies_to_ip_literals_when_chained() -> None:
    with Upstream() as up, proxy(_cfg(via_name="parent-p")) as parent:
        chain = Chain(_parent(parent))
        with proxy(_cfg(chain=chain, deny=("127.0.0.0/8",),
                        connect_ports=frozenset({up.port}))) as child:
            r = _get(child, up.base + "/denied")
            assert r.status_code == 403
            answer = raw_exchange(child.server_address[1],
                                  f"CONNECT 127.0.0.1:{up.port} HTTP/1.1\r\n"
                                  f"Host: x\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403 ")
            # A name is the parent's to resolve and check: it goes through.
            assert _get(child, f"http://localhost:{up.port}/name").status_code == 200
        assert [s.target for s in up.seen] == ["/name"]
