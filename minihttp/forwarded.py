"""Trusted ``X-Forwarded-For`` / ``Forwarded``: the real client behind a reverse proxy.

Behind nginx or another load balancer every connection comes from the proxy, so
``client_address`` (and the access log) would name the proxy. Proxies report the address they
received the request from by *appending* it to ``X-Forwarded-For`` (de facto standard) or to
``Forwarded: for=`` (RFC 7239 section 5.2). Everything to the left of what a trusted proxy
appended was sent by the client and may be forged.

Rules of this module (pure functions, no I/O):

* Headers are used only when the direct peer is trusted; otherwise they are ignored.
* The chain is walked from the right (the hop nearest to us) to the left, as long as the
  address reached is trusted. The client is the first *untrusted* address met, never the
  left-most one (which the client controls). If every address is trusted, the left-most
  valid one is the client.
* The walk stops at anything that is not an IP address (``unknown``, an obfuscated
  identifier such as ``_hidden`` (RFC 7239 section 6.3), garbage): the result is then the
  last trusted address reached, which forwarded that value and is the nearest hop we know.
* Only one header is believed (``X-Forwarded-For`` by default, or ``Forwarded``): a proxy
  that writes one passes the other through untouched from the client, so trusting both would
  let a client forge the one its proxy does not write.
* IPv4-mapped IPv6 peers (``::ffff:127.0.0.1``, from a dual-stack listener) are matched as
  IPv4.

Library use: set ``forwarded_allow_ips`` on the server (``"127.0.0.1,10.0.0.0/8"``, ``"*"``,
a sequence of those, or a :class:`TrustedProxies`); the handler then rewrites
``client_address`` per request (the direct peer stays in ``handler.peer_address``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

__all__ = [
    "FORWARDED",
    "X_FORWARDED_FOR",
    "TrustedProxies",
    "apply",
    "client_from_forwarded",
    "client_from_x_forwarded_for",
    "parse_address",
    "parse_forwarded_for",
    "trusted_proxies",
]

X_FORWARDED_FOR = "x-forwarded-for"
FORWARDED = "forwarded"

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A client as found in a header: (address text, port) with port 0 when not given.
Client = tuple[str, int]


def _normalize(addr: _Address) -> _Address:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class TrustedProxies:
    """A set of trusted proxy networks (``*`` trusts every address) and the header to read."""

    __slots__ = ("all", "header", "networks")

    def __init__(self, spec: str | Iterable[str] = (), header: str = X_FORWARDED_FOR) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        header = header.lower()
        if header not in (X_FORWARDED_FOR, FORWARDED):
            raise ValueError(f"header must be {X_FORWARDED_FOR!r} or {FORWARDED!r}")
        self.header = header
        self.all = False
        networks: list[_Network] = []
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                self.all = True
                continue
            try:
                net = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
            if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
                mapped = net.network_address.ipv4_mapped
                if mapped is not None:  # ::ffff:a.b.c.d/n written out: match as IPv4
                    net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
            networks.append(net)
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return self.all or bool(self.networks)

    def __repr__(self) -> str:
        nets = ["*"] if self.all else [str(n) for n in self.networks]
        return f"TrustedProxies({','.join(nets)!r}, header={self.header!r})"

    def trusts(self, addr: _Address | str | None) -> bool:
        """Whether ``addr`` (an address or its text) belongs to a trusted proxy."""
        if isinstance(addr, str):
            addr = parse_address(addr)
        if addr is None:
            return False
        if self.all:
            return True
        addr = _normalize(addr)
        return any(addr in net for net in self.networks)


@lru_cache(maxsize=64)
def _cached(spec: str | tuple[str, ...], header: str) -> TrustedProxies:
    return TrustedProxies(spec, header)


def trusted_proxies(value: Any, header: str = X_FORWARDED_FOR) -> TrustedProxies:
    """A :class:`TrustedProxies` from a server's ``forwarded_allow_ips`` value (cached)."""
    if isinstance(value, TrustedProxies):
        return value
    spec = value if isinstance(value, str) else tuple(value)
    return _cached(spec, header)


def parse_address(text: str) -> _Address | None:
    """An IP address from a header's node: ``1.2.3.4``, ``1.2.3.4:80``, ``[v6]``,
    ``[v6]:80`` or bare ``v6``; None for anything else (``unknown``, ``_hidden``, junk)."""
    node = text.strip()
    if node.startswith("["):
        end = node.find("]")
        if end < 0 or (end + 1 < len(node) and not _is_port(node[end + 1:])):
            return None
        node = node[1:end]
    elif node.count(":") == 1:  # IPv4 with a port
        node, _, port = node.partition(":")
        if not port.isdigit():
            return None
    if "%" in node:
        return None  # zone ids name a local interface: never a remote client
    try:
        return ipaddress.ip_address(node)
    except ValueError:
        return None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and len(text) <= 6


def _port_of(text: str) -> int:
    node = text.strip()
    if node.startswith("["):
        rest = node[node.find("]") + 1:]
    elif node.count(":") == 1:
        rest = node[node.find(":"):]
    else:
        return 0
    return int(rest[1:]) if _is_port(rest) else 0


def _walk(peer: str, nodes: list[str], trusted: TrustedProxies) -> Client | None:
    """The rule of the module over ``nodes`` (left to right as sent); None: keep the peer."""
    if not trusted.trusts(peer):
        return None
    current: Client | None = None
    for node in reversed(nodes):
        addr = parse_address(node)
        if addr is None:
            break
        current = (str(_normalize(addr)), _port_of(node))
        if not trusted.trusts(addr):
            break
    return current


def client_from_x_forwarded_for(peer: str, values: Iterable[str],
                                trusted: TrustedProxies) -> Client | None:
    """The client per ``X-Forwarded-For`` field values (several fields form one list,
    RFC 9110 section 5.3), or None to keep the direct peer."""
    nodes = [n for v in values for n in v.split(",")]
    if not nodes:
        return None
    return _walk(peer, nodes, trusted)


def parse_forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` nodes of ``Forwarded`` field values, left to right (RFC 7239 section 4).

    Elements are comma-separated, pairs within an element semicolon-separated; values may be
    quoted strings (needed for IPv6 and ports: ``for="[2001:db8::1]:4711"``). An element
    without ``for=`` is kept as an empty node so the walk stops there rather than skipping a
    hop it cannot see.
    """
    nodes: list[str] = []
    for value in values:
        for element in _split_quoted(value, ","):
            node = ""
            for pair in _split_quoted(element, ";"):
                name, eq, val = pair.partition("=")
                if eq and name.strip().lower() == "for":
                    val = val.strip()
                    if len(val) >= 2 and val[0] == val[-1] == '"':
                        val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                    node = val
            if element.strip():
                nodes.append(node)
    return nodes


def _split_quoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings (RFC 9110 section 5.6.4), keeping quotes."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def client_from_forwarded(peer: str, values: Iterable[str],
                          trusted: TrustedProxies) -> Client | None:
    """The client per ``Forwarded: for=`` field values, or None to keep the direct peer."""
    nodes = parse_forwarded_for(values)
    if not nodes:
        return None
    return _walk(peer, nodes, trusted)


@lru_cache(maxsize=4096)
def _resolve(peer: str, values: tuple[str, ...], trusted: TrustedProxies) -> Client | None:
    """Memo of the walk: behind a proxy the same (peer, header) pairs repeat, and parsing
    addresses with :mod:`ipaddress` costs ~15 us per request (bounded LRU: a client sending
    ever-new values only evicts entries)."""
    find = client_from_forwarded if trusted.header == FORWARDED else client_from_x_forwarded_for
    return find(peer, values, trusted)


def apply(handler: Any, trusted_value: Any) -> None:
    """Rewrite ``handler.client_address`` from the request's headers (called per request).

    The connection's direct peer is kept in ``handler.peer_address`` (set on the first
    request), so each request of a keep-alive connection is judged from the real peer.
    """
    # getattr, not handler.__dict__: on CPython 3.11 reading __dict__ gives the handler a
    # real dict for its life, and every attribute access gets slower (see
    # BaseHTTPRequestHandler's docstring).
    peer = getattr(handler, "peer_address", None)
    if peer is None:
        peer = handler.peer_address = handler.client_address
    trusted = trusted_proxies(trusted_value, getattr(handler.server, "forwarded_header",
                                                     X_FORWARDED_FOR))
    client: Client | None = None
    if peer and trusted:
        values = handler.headers.get_all(trusted.header)
        if values:
            client = _resolve(str(peer[0]), tuple(values), trusted)
    handler.client_address = peer if client is None else client
