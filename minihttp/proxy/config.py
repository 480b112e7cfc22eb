"""Proxy policy: :class:`ProxyConfig` (what the proxy decides by policy, not protocol) and the
command line that builds one.

Rules of this module: a config is validated once, when built, and immutable afterwards
(``replace`` builds a new, validated copy); networks are parsed once here, never per request.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from minihttp import auth_cli
from minihttp.auth import Credentials
from minihttp.proxy import chain as _chain
from minihttp.proxy.connections import IPNetwork

__all__ = ["ProxyConfig", "build_parser", "config_from_args", "parse_args"]

#: A reg-name (RFC 3986 section 3.2.2), also used for our Via pseudonym.
REG_NAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]+")


def _networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(v if not isinstance(v, str) else ipaddress.ip_network(v, strict=False)
                 for v in values)


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the proxy decides by policy rather than by protocol, validated once."""

    #: Client networks allowed to use the proxy; others get 403. Loopback only by default.
    allow: tuple[IPNetwork, ...] = _networks(["127.0.0.0/8", "::1/128"])
    #: Destination networks refused (checked on the resolved address); 403.
    deny: tuple[IPNetwork, ...] = ()
    #: Ports CONNECT may open tunnels to; others get 403.
    connect_ports: frozenset[int] = frozenset({443})
    #: Who may use the proxy (Basic Proxy-Authorization), or None for no authentication.
    #: A ``(user, password)`` pair is accepted too (turned into :class:`Credentials`).
    auth: Credentials | tuple[str, str] | None = None
    #: Append the client address to X-Forwarded-For.
    forwarded_for: bool = True
    #: Connect timeout and longest wait for any upstream read (504 when exceeded).
    upstream_timeout: float = 30.0
    #: A CONNECT tunnel with no traffic either way for this long is closed.
    tunnel_idle_timeout: float = 300.0
    #: Idle keep-alive connections kept per upstream (host, port), and how long. Keep it
    #: at least the number of requests in flight to one upstream: a smaller pool closes
    #: connections that the next requests must open again (measured with 16 clients and 8:
    #: 149 connects in 4 s, and 1 s stalls when the upstream's listen backlog overflowed;
    #: 32, the value commonly given to nginx's ``keepalive``: 16 connects, no stall).
    max_idle_per_host: int = 32
    pool_idle_timeout: float = 30.0
    #: Pseudonym in our Via entries; a request whose Via already has it is a loop (508).
    #: Random per process by default so two chained minihttp proxies do not collide.
    via_name: str = field(default_factory=lambda: "minihttp-" + secrets.token_hex(3))
    #: Do not log requests (the CLI then configures no access log).
    quiet: bool = False
    # -- chaining, PAC and SOCKS5 (minihttp.proxy.chain, minihttp.proxy.socks) --------------
    #: Parent proxies by destination domain (None: every request goes direct).
    chain: _chain.Chain | None = None
    #: Proxy auto-config served at ``/proxy.pac`` to direct requests (None: not served).
    pac: bytes | None = None
    #: Port of the SOCKS5 listener beside the HTTP one (None: none; 0: any free port).
    socks_port: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", _networks(self.allow))
        object.__setattr__(self, "deny", _networks(self.deny))
        object.__setattr__(self, "connect_ports", frozenset(self.connect_ports))
        if isinstance(self.auth, tuple):
            object.__setattr__(self, "auth", Credentials.plain([self.auth]))
        for name in ("upstream_timeout", "tunnel_idle_timeout", "pool_idle_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ProxyConfig.{name} must be positive")
        if self.max_idle_per_host < 0:
            raise ValueError("ProxyConfig.max_idle_per_host must be >= 0")
        if any(not 0 < p < 65536 for p in self.connect_ports):
            raise ValueError("ProxyConfig.connect_ports must be TCP ports")
        if self.socks_port is not None and not 0 <= self.socks_port < 65536:
            raise ValueError("ProxyConfig.socks_port must be a TCP port")
        if not REG_NAME.fullmatch(self.via_name):
            raise ValueError("ProxyConfig.via_name must be a token")

    def replace(self, **changes: Any) -> ProxyConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m minihttp proxy``."""
    parser = argparse.ArgumentParser(
        prog="python -m minihttp proxy", description="minihttp forward HTTP proxy")
    _add_common_arguments(parser)
    parser.add_argument("--allow", action="append", metavar="NET",
                        help="client network allowed to use the proxy (repeatable; "
                             "default 127.0.0.0/8 and ::1)")
    parser.add_argument("--deny", action="append", default=[], metavar="NET",
                        help="destination network refused, checked on the resolved address")
    parser.add_argument("--connect-port", action="append", type=int, metavar="N",
                        help="port CONNECT may tunnel to (repeatable; default 443)")
    parser.add_argument("--no-forwarded-for", action="store_true",
                        help="do not append the client address to X-Forwarded-For")
    parser.add_argument("--upstream-timeout", type=float, default=30.0, metavar="S",
                        help="connect/read timeout towards upstreams (default 30)")
    parser.add_argument("--tunnel-idle-timeout", type=float, default=300.0, metavar="S",
                        help="close CONNECT tunnels idle this long (default 300)")
    parser.add_argument("--via", metavar="NAME", help="pseudonym for Via (default random)")
    parser.add_argument("--threads", action="store_true",
                        help="a thread per client connection (ProxyServer) instead of the "
                             "default minihttp.eventloop.PooledHTTPServer, whose event loop "
                             "waits for upstream responses without holding a thread")
    _chain.add_arguments(parser)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The proxy's command line parsed (``argv`` None: ``sys.argv``); exits on usage errors."""
    args = build_parser().parse_args(argv)
    args.pool = not args.threads
    return args


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    """Build a ProxyConfig from parsed CLI arguments (ValueError on bad values)."""
    changes: dict[str, Any] = {
        "deny": _networks(args.deny),
        "forwarded_for": not args.no_forwarded_for,
        "upstream_timeout": args.upstream_timeout,
        "tunnel_idle_timeout": args.tunnel_idle_timeout,
        "quiet": args.quiet,
    }
    if args.allow:
        changes["allow"] = _networks(args.allow)
    if args.connect_port:
        changes["connect_ports"] = frozenset(args.connect_port)
    changes["auth"] = auth_cli.credentials_from_args(args)
    if args.via:
        changes["via_name"] = args.via
    changes.update(_chain.config_changes(args))
    return ProxyConfig(**changes)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the proxy shares with the file server (one family: ``-b``, ``-q``,
    ``--access-log*``, ``--workers``, ``--version``, the credential options), and its port."""
    # Imported here: the command line brings the file server's modules, which a program
    # using ProxyConfig alone does not need.
    from minihttp.cli import add_server_arguments, parse_port

    parser.add_argument("port", nargs="?", type=parse_port, default=8080,
                        help="port to listen on (default 8080; 0 picks a free port)")
    add_server_arguments(parser, default_bind="127.0.0.1, loopback only", transport=False)
    parser.set_defaults(bind="127.0.0.1")
    auth_cli.add_arguments(parser, upload_only=False, header="Proxy-Authorization")
