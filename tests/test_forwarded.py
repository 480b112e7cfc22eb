"""Trusted X-Forwarded-For / Forwarded: pure functions, then the server hook over a socket."""

from __future__ import annotations

import http.client
import ipaddress
import logging
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minihttp import forwarded
from minihttp.forwarded import (
    FORWARDED,
    TrustedProxies,
    client_from_forwarded,
    client_from_x_forwarded_for,
    parse_address,
    parse_forwarded_for,
    trusted_proxies,
)
from minihttp.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

LOCAL = TrustedProxies("127.0.0.1")
PROXIES = TrustedProxies("127.0.0.1, 10.0.0.0/8, 2001:db8::/32")


def test_all_lists_public_names() -> None:
    for name in forwarded.__all__:
        assert hasattr(forwarded, name), name


# -- TrustedProxies ---------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "addr", "expected"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("127.0.0.1", "::ffff:127.0.0.1", True),   # dual-stack listener's view of IPv4
    ("10.0.0.0/8", "10.255.1.2", True),
    ("10.0.0.0/8", "11.0.0.1", False),
    ("::1", "::1", True),
    ("::1", "127.0.0.1", False),
    ("2001:db8::/32", "2001:db8:1::5", True),
    ("::ffff:10.0.0.0/104", "10.1.1.1", True),  # mapped notation of an IPv4 network
    ("*", "203.0.113.9", True),
    ("*", "2001:db8::1", True),
    ("*", "unknown", False),  # not an address at all
    ("", "127.0.0.1", False),
])
def test_trusts(spec: str, addr: str, expected: bool) -> None:
    assert TrustedProxies(spec).trusts(addr) is expected


@pytest.mark.parametrize("spec", ["localhost", "10.0.0.0/33", "1.2.3.4.5", "*x"])
def test_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="not an IP"):
        TrustedProxies(spec)


def test_bad_header_is_refused() -> None:
    with pytest.raises(ValueError):
        TrustedProxies("127.0.0.1", header="x-real-ip")


def test_truthiness_and_cache() -> None:
    assert not TrustedProxies("")
    assert TrustedProxies("*")
    assert trusted_proxies("127.0.0.1") is trusted_proxies("127.0.0.1")
    assert trusted_proxies(["127.0.0.1", "::1"]).trusts("::1")
    assert trusted_proxies(LOCAL) is LOCAL
    assert "127.0.0.1" in repr(LOCAL)


# -- addresses in headers ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.60", "192.0.2.60"),
    (" 192.0.2.60 ", "192.0.2.60"),
    ("192.0.2.60:4711", "192.0.2.60"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:4711", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("unknown", None),
    ("_hidden", None),
    ("_SEVKISEK", None),
    ("", None),
    ("[2001:db8::1", None),
    ("[2001:db8::1]x", None),
    ("192.0.2.60:port", None),
    ("fe80::1%eth0", None),
    ("999.1.1.1", None),
])
def test_parse_address(text: str, expected: str | None) -> None:
    addr = parse_address(text)
    assert (None if addr is None else str(addr)) == expected


# -- X-Forwarded-For --------------------------------------------------------------------------

@pytest.mark.parametrize(("peer", "values", "expected"), [
    # One proxy: it appended the client; a forged left-most entry is ignored.
    ("127.0.0.1", ["198.51.100.7"], ("198.51.100.7", 0)),
    ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], ("198.51.100.7", 0)),
    ("::ffff:127.0.0.1", ["6.6.6.6,198.51.100.7"], ("198.51.100.7", 0)),
    # Two trusted proxies: the walk goes past the inner one.
    ("127.0.0.1", ["6.6.6.6, 198.51.100.7, 10.0.0.2"], ("198.51.100.7", 0)),
    # Several fields are one list (RFC 9110 section 5.3).
    ("127.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.2"], ("198.51.100.7", 0)),
    # All trusted: the left-most.
    ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], ("10.0.0.3", 0)),
    # Garbage met while walking: the last trusted hop reached.
    ("127.0.0.1", ["198.51.100.7, garbage, 10.0.0.2"], ("10.0.0.2", 0)),
    ("127.0.0.1", ["garbage"], None),
    ("127.0.0.1", [""], None),
    ("127.0.0.1", [], None),
    # Untrusted peer: the header is ignored.
    ("203.0.113.1", ["198.51.100.7"], None),
    # IPv6 client.
    ("127.0.0.1", ["2001:db9::7"], ("2001:db9::7", 0)),
])
def test_x_forwarded_for(peer: str, values: list[str], expected: Any) -> None:
    assert client_from_x_forwarded_for(peer, values, PROXIES) == expected


# -- Forwarded (RFC 7239) ---------------------------------------------------------------------

@pytest.mark.parametrize(("values", "nodes"), [
    (['for="_gazonk"'], ["_gazonk"]),
    (['For="[2001:db8:cafe::17]:4711"'], ["[2001:db8:cafe::17]:4711"]),
    (["for=192.0.2.60;proto=http;by=203.0.113.43"], ["192.0.2.60"]),
    (["for=192.0.2.43, for=198.51.100.17"], ["192.0.2.43", "198.51.100.17"]),
    (["for=192.0.2.43", "for=198.51.100.17"], ["192.0.2.43", "198.51.100.17"]),
    (['for="a,b;c", for=1.2.3.4'], ["a,b;c", "1.2.3.4"]),   # separators inside quotes
    (['for="x\\"y"'], ['x"y']),
    (["proto=https, for=1.2.3.4"], ["", "1.2.3.4"]),     # element without for=
    ([""], []),
])
def test_parse_forwarded_for(values: list[str], nodes: list[str]) -> None:
    assert parse_forwarded_for(values) == nodes


@pytest.mark.parametrize(("values", "expected"), [
    (['for="[2001:db8::1]:4711"'], ("2001:db8::1", 4711)),
    (["for=192.0.2.60:8080;proto=http"], ("192.0.2.60", 8080)),
    (["for=6.6.6.6, for=192.0.2.60"], ("192.0.2.60", 0)),
    (["for=6.6.6.6, for=192.0.2.60, for=10.0.0.2"], ("192.0.2.60", 0)),
    (["for=_hidden"], None),                               # obfuscated: keep the peer
    (["for=6.6.6.6, for=_hidden, for=10.0.0.2"], ("10.0.0.2", 0)),
    (["for=unknown"], None),
    (["proto=https"], None),
])
def test_forwarded(values: list[str], expected: Any) -> None:
    assert client_from_forwarded("127.0.0.1", values, PROXIES) == expected


# -- properties ---------------------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
chains = st.lists(ipv4, min_size=1, max_size=6)


@given(forged=chains, client=ipv4, inner=st.lists(st.sampled_from(
    ["10.0.0.1", "10.9.9.9", "127.0.0.1"]), max_size=3))
def test_client_cannot_forge_past_the_proxies(forged: list[str], client: str,
                                                inner: list[str]) -> None:
    """Whatever the client puts on the left, the result is what the first proxy appended
    (unless that address is itself a trusted one, when the walk may go further left)."""
    value = ", ".join([*forged, client, *inner])
    got = client_from_x_forwarded_for("127.0.0.1", [value], PROXIES)
    assert got is not None
    if not PROXIES.trusts(client):
        assert got == (client, 0)
    else:
        assert got[0] in [*forged, client]


@given(st.text(max_size=80))
def test_never_raises_on_arbitrary_values(text: str) -> None:
    for find in (client_from_x_forwarded_for, client_from_forwarded):
        got = find("127.0.0.1", [text], PROXIES)
        if got is not None:
            ipaddress.ip_address(got[0])  # always a real address


@given(st.ip_addresses(v=6), st.integers(0, 65535))
def test_forwarded_ipv6_with_port_round_trips(addr: ipaddress.IPv6Address, port: int) -> None:
    got = client_from_forwarded("127.0.0.1", [f'for="[{addr}]:{port}"'], LOCAL)
    expected = addr.ipv4_mapped or addr
    assert got == (str(expected), port)


# -- the server hook ------------------------------------------------------------------------------

class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.client_address[0]}|{getattr(self, 'peer_address', ('-',))[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _get(port: int, headers: dict[str, str], conn: http.client.HTTPConnection | None = None
         ) -> str:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/", headers=headers)
    resp = c.getresponse()
    body = resp.read().decode()
    if conn is None:
        c.close()
    return body


def _serve(server: HTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(("allow", "first"), [
    ("127.0.0.1", "192.0.2.5"),
    (["127.0.0.0/8"], "192.0.2.5"),
    # "*" trusts every hop, so the walk reaches the left-most entry (documented risk).
    (TrustedProxies("*"), "6.6.6.6"),
])
def test_server_uses_trusted_header(allow: Any, first: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.forwarded_allow_ips = allow  # type: ignore[attr-defined]
    thread = _serve(server)
    try:
        port = server.server_address[1]
        with caplog.at_level(logging.INFO, logger="minihttp.access"):
            assert _get(port, {"X-Forwarded-For": "6.6.6.6, 192.0.2.5"}) == f"{first}|127.0.0.1"
            # Keep-alive: each request judged from the real peer, not the previous result.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                assert _get(port, {"X-Forwarded-For": "192.0.2.8"}, conn) == "192.0.2.8|127.0.0.1"
                assert _get(port, {}, conn) == "127.0.0.1|127.0.0.1"
                assert _get(port, {"X-Forwarded-For": "192.0.2.9"}, conn) == "192.0.2.9|127.0.0.1"
            finally:
                conn.close()
        logged = [r.getMessage() for r in caplog.records if r.name == "minihttp.access"]
        assert any(line.startswith(f"{first} ") for line in logged), logged
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_server_ignores_header_from_untrusted_peer() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.forwarded_allow_ips = "10.0.0.0/8"  # type: ignore[attr-defined]
    thread = _serve(server)
    try:
        assert _get(server.server_address[1], {"X-Forwarded-For": "192.0.2.5"}).startswith(
            "127.0.0.1|")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_server_off_by_default_and_forwarded_header_option() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = _serve(server)
    try:
        port = server.server_address[1]
        assert _get(port, {"X-Forwarded-For": "192.0.2.5"}) == "127.0.0.1|-"
        server.forwarded_allow_ips = TrustedProxies(  # type: ignore[attr-defined]
            "127.0.0.1", header=FORWARDED)
        # Only the configured header is believed: X-Forwarded-For is now ignored.
        assert _get(port, {"X-Forwarded-For": "192.0.2.5"}) == "127.0.0.1|127.0.0.1"
        assert _get(port, {"Forwarded": 'for="[2001:db8::9]:1234"'}) == "2001:db8::9|127.0.0.1"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
