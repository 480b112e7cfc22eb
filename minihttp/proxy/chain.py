"""Chaining: sending requests and tunnels through a parent proxy (``--upstream``).

A :class:`Parent` is one parent proxy (``http://[user:pass@]host:port``); :class:`Chain` is
the routing rule set (a default parent, per-domain parents, domains always reached
directly), decided per destination host by :meth:`Chain.parent_for`. A forwarded request
goes to the parent in absolute-form on the parent's pooled connections
(:mod:`minihttp.proxy.upstream`); a tunnel (CONNECT or SOCKS) is a ``CONNECT`` to the
parent, then a blind relay (:func:`connect_via`).

Rules of this module (RFC 9110 sections 7.6, 9.3.6 and 11.7):

* Rules match a domain and its subdomains (``example.com`` matches ``example.com`` and
  ``a.example.com``, never ``badexample.com``); the longest matching domain wins, and a
  ``--no-upstream`` rule beats an ``--upstream-for`` rule for the same domain.
* The parent's credentials come only from its URL's userinfo (percent-decoded); the
  client's own Proxy-Authorization is hop-by-hop and never forwarded (it is for us).
* What the parent does wrong is ours to explain, never relayed as if it were the origin's:
  unreachable -> 502 "parent proxy unreachable", timed out -> 504, 407 -> 502 "refused our
  credentials", any other refusal of a CONNECT -> 502 naming the parent's status.
* Every wait on the parent is bounded (the upstream timeout); a parent's CONNECT answer
  head is at most :data:`MAX_HEAD` bytes.
"""

from __future__ import annotations

import argparse
import base64
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from minihttp.proxy.connections import UpstreamError, UpstreamTimeout, open_connection

__all__ = [
    "Chain",
    "Parent",
    "ParentRefused",
    "add_arguments",
    "config_changes",
    "connect_via",
    "parse_parent",
    "refusal",
]

#: Longest CONNECT answer head read from a parent.
MAX_HEAD = 16 * 1024
_DOMAIN = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?)+|"
                     r"[0-9a-fA-F:.]+|\[[0-9a-fA-F:.]+\]")
_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r?\n")


class ParentRefused(UpstreamError):
    """The parent proxy answered, but not with the tunnel or response we asked for (502)."""

    def __init__(self, message: str, parent_status: int | None = None) -> None:
        super().__init__(message)
        #: The parent's status code, when it answered with one.
        self.parent_status = parent_status


@dataclass(frozen=True)
class Parent:
    """One parent proxy: where it listens and the Proxy-Authorization value we send it."""

    host: str
    port: int
    #: ``Basic ...`` built from the URL's userinfo, or None.
    authorization: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The upstream pool's key for connections to this parent."""
        return (self.host.lower(), self.port)

    def __repr__(self) -> str:  # never show the credentials (logs, tracebacks)
        auth = ", with credentials" if self.authorization else ""
        return f"Parent({self.host}:{self.port}{auth})"


def parse_parent(url: str) -> Parent:
    """A :class:`Parent` from ``http://[user:pass@]host[:port]`` (ValueError when not one).

    The port defaults to 3128, the common proxy port (squid); userinfo is percent-decoded
    (RFC 3986 section 2.1) before it is encoded for Basic (RFC 7617).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ValueError(f"parent proxy must be http://[user:pass@]host:port, not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"parent proxy URL has a path or query: {url!r}")
    try:
        port = parts.port or 3128
    except ValueError as exc:
        raise ValueError(f"bad port in parent proxy URL {url!r}") from exc
    authorization = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return Parent(parts.hostname, port, authorization)


def _domain(text: str) -> str:
    domain = text.strip().lower().rstrip(".").removeprefix("*.").removeprefix(".")
    if not domain or not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a domain: {text!r}")
    return domain.strip("[]")


@dataclass(frozen=True)
class Chain:
    """Which parent (if any) a destination host is reached through."""

    #: The parent for hosts no rule names (None: direct).
    default: Parent | None = None
    #: ``(domain, parent)``: the domain and its subdomains go through ``parent``; a parent
    #: of None means direct (``--no-upstream``).
    rules: tuple[tuple[str, Parent | None], ...] = ()

    def __post_init__(self) -> None:
        # Longest domain first; for equal domains, direct (None) first: it wins.
        ordered = sorted(((_domain(d), p) for d, p in self.rules),
                         key=lambda r: (-len(r[0]), r[1] is not None))
        object.__setattr__(self, "rules", tuple(ordered))

    def parent_for(self, host: str) -> Parent | None:
        """The parent for ``host`` (a name or an IP literal), or None to go direct."""
        if not self.rules:
            return self.default
        name = host.lower().rstrip(".")
        for domain, parent in self.rules:
            if name == domain or name.endswith("." + domain):
                return parent
        return self.default


def connect_via(parent: Parent, host: str, port: int, timeout: float,
                via: str | None = None) -> tuple[socket.socket, bytes]:
    """A socket tunnelled through ``parent`` to ``host:port``, and any bytes the parent
    already relayed from the destination after its 2xx head (send them to the client first).
    ``via``: our Via pseudonym, sent so that a chain looping back to us is seen (508).

    Raises :class:`UpstreamError` (502: unreachable, refused, 407) or
    :class:`UpstreamTimeout` (504); the socket is closed on every failure.
    """
    try:
        sock = open_connection(parent.host, parent.port, timeout=timeout)
    except UpstreamTimeout as exc:
        raise UpstreamTimeout("parent proxy timed out") from exc
    except UpstreamError as exc:
        raise UpstreamError("parent proxy unreachable") from exc
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if via:
            head += f"Via: 1.1 {via}\r\n"
        if parent.authorization:
            head += f"Proxy-Authorization: {parent.authorization}\r\n"
        sock.sendall((head + "\r\n").encode("latin-1"))
        status, reason, rest = _read_answer(sock, timeout)
    except TimeoutError as exc:
        sock.close()
        raise UpstreamTimeout("parent proxy timed out") from exc
    except OSError as exc:
        sock.close()
        raise UpstreamError("parent proxy connection failed") from exc
    except BaseException:
        sock.close()
        raise
    if 200 <= status < 300:
        return sock, rest
    sock.close()
    raise refusal(status, reason)


def refusal(status: int, reason: str) -> ParentRefused:
    """The error a parent's non-2xx answer to CONNECT (or 407 to a request) is for us."""
    if status == 407:
        return ParentRefused("the parent proxy refused our credentials (407)", status)
    text = f"{status} {reason}".strip()
    return ParentRefused(f"the parent proxy refused the tunnel: {text}", status)


def _read_answer(sock: socket.socket, timeout: float) -> tuple[int, str, bytes]:
    """(status, reason, bytes past the head) of the parent's answer, within ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(data) > MAX_HEAD:
            raise ParentRefused("the parent proxy sent an oversized answer")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("parent proxy answer timed out")
        sock.settimeout(left)
        piece = sock.recv(4096)
        if not piece:
            raise ParentRefused("the parent proxy closed the connection without an answer")
        data += piece
    match = _STATUS.match(data)
    if match is None:
        raise ParentRefused("the parent proxy sent a malformed answer")
    reason = (match.group(2) or b"").decode("latin-1")
    return int(match.group(1)), reason, data[end + 4:]


# -- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The chaining, PAC and SOCKS flags of the proxy's command line."""
    group = parser.add_argument_group("chaining, PAC and SOCKS5")
    group.add_argument("--upstream", metavar="URL",
                       help="send requests and tunnels through this parent proxy, "
                            "http://[user:pass@]host:port")
    group.add_argument("--upstream-for", action="append", default=[], metavar="DOMAIN=URL",
                       help="use this parent for DOMAIN and its subdomains (repeatable)")
    group.add_argument("--no-upstream", action="append", default=[], metavar="DOMAIN",
                       help="reach DOMAIN and its subdomains directly (repeatable)")
    group.add_argument("--pac", metavar="FILE",
                       help="serve FILE at /proxy.pac (application/x-ns-proxy-autoconfig)")
    group.add_argument("--socks", type=int, metavar="PORT",
                       help="also accept SOCKS5 clients on PORT (same bind address, policy "
                            "and --auth)")


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """ProxyConfig fields from the flags of :func:`add_arguments` (ValueError on bad ones)."""
    changes: dict[str, Any] = {}
    upstream = getattr(args, "upstream", None)
    rules: list[tuple[str, Parent | None]] = []
    for item in getattr(args, "upstream_for", None) or ():
        domain, sep, url = item.partition("=")
        if not sep:
            raise ValueError("--upstream-for must be DOMAIN=URL")
        rules.append((domain, parse_parent(url)))
    rules += [(domain, None) for domain in getattr(args, "no_upstream", None) or ()]
    if upstream or rules:
        changes["chain"] = Chain(parse_parent(upstream) if upstream else None, tuple(rules))
    pac = getattr(args, "pac", None)
    if pac:
        try:
            with open(pac, "rb") as f:
                changes["pac"] = f.read()
        except OSError as exc:
            raise ValueError(f"cannot read --pac {pac}: {exc.strerror}") from exc
    socks = getattr(args, "socks", None)
    if socks is not None:
        changes["socks_port"] = socks
    return changes
