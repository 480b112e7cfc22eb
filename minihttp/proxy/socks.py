"""SOCKS5 beside the HTTP proxy (``--socks PORT``): RFC 1928 CONNECT, RFC 1929 passwords.

A :class:`SocksServer` is a second listening socket in the proxy's process, served by a
bounded pool of threads (:class:`minihttp.socketserver.ThreadPoolTCPServer`); each client
is a short handshake (:class:`SocksHandler`) on a pool thread, then its tunnel is handed to a
:class:`minihttp.proxy.hub.TunnelHub` (the HTTP proxy's own beside ``--socks``, else one of
the SOCKS server's), which relays every tunnel on one thread: an open SOCKS tunnel holds no
thread (issue 16 item 2), as a CONNECT tunnel. Same policy as CONNECT
(:class:`minihttp.proxy.config.ProxyConfig`) and through the same parent proxy when chaining
(:func:`minihttp.proxy.chain.connect_via`).

Rules of this module (RFC 1928, RFC 1929):

* Only CONNECT: BIND and UDP ASSOCIATE get reply 0x07 (command not supported); an unknown
  address type 0x08. IPv4, IPv6 and domain-name destinations are taken.
* Authentication: with ``ProxyConfig.auth`` set, only username/password (0x02) is offered
  (no-auth is not, even when the client lists it) and the pair is checked by
  :class:`minihttp.auth.Credentials` as Proxy-Authorization is; without it, only no-auth
  (0x00). No acceptable method: 0xFF, then close.
* Policy, as for CONNECT: a client outside ``allow`` is told no method is acceptable
  (0xFF) before anything else; a destination port outside ``connect_ports``, a destination
  on the deny-list, or this proxy itself get 0x02 (not allowed by ruleset).
* Failures to reach the destination: refused 0x05, unreachable or timed out 0x04 (0x03
  for an unreachable network), anything else 0x01; a parent proxy that refuses the tunnel
  0x02 (403) or 0x04 (502/504), other parent failures 0x01.
* The whole handshake (greeting to request) must arrive within ``handshake_timeout``
  seconds; a client that stalls is closed. Every socket is closed in a ``finally``, or
  owned by the hub once handed over: ``shutdown_request`` then leaves the client socket
  alone (the hub closes it when the tunnel ends), and ``server_close`` closes an own hub.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import re
import socket
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from minihttp.auth import Credentials
from minihttp.proxy.chain import ParentRefused, connect_via
from minihttp.proxy.config import ProxyConfig
from minihttp.proxy.connections import (
    DestinationDenied,
    UpstreamError,
    UpstreamTimeout,
    address_in,
    open_connection,
)
from minihttp.proxy.hub import TunnelHub
from minihttp.proxy.route import client_allowed
from minihttp.socketserver import BaseRequestHandler, ThreadPoolTCPServer

__all__ = ["SocksHandler", "SocksServer", "listen_beside", "reply_code", "serving"]

VERSION = 5
NO_AUTH, USERPASS, NO_METHOD = 0x00, 0x02, 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04

# Reply codes (RFC 1928 section 6).
SUCCEEDED = 0x00
GENERAL_FAILURE = 0x01
NOT_ALLOWED = 0x02
NETWORK_UNREACHABLE = 0x03
HOST_UNREACHABLE = 0x04
CONNECTION_REFUSED = 0x05
COMMAND_NOT_SUPPORTED = 0x07
ADDRESS_NOT_SUPPORTED = 0x08


#: A domain name as a SOCKS client sends it: letters, digits, hyphens, dots, underscores.
_NAME = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?")


class _Fail(Exception):
    """End the handshake with this reply code (None: just close)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def reply_code(exc: BaseException) -> int:
    """The RFC 1928 reply code for a failure to open the tunnel."""
    if isinstance(exc, DestinationDenied):
        return NOT_ALLOWED
    if isinstance(exc, ParentRefused):
        status = exc.parent_status
        if status == 403:
            return NOT_ALLOWED
        return HOST_UNREACHABLE if status in (502, 504) else GENERAL_FAILURE
    if isinstance(exc, UpstreamTimeout):
        return HOST_UNREACHABLE
    cause = exc.__cause__
    if isinstance(cause, socket.gaierror):
        return HOST_UNREACHABLE  # the name does not resolve
    if isinstance(cause, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(cause, OSError):
        if cause.errno == errno.ENETUNREACH:
            return NETWORK_UNREACHABLE
        if cause.errno in (errno.EHOSTUNREACH, errno.ETIMEDOUT):
            return HOST_UNREACHABLE
    return GENERAL_FAILURE


class SocksServer(ThreadPoolTCPServer):
    """The SOCKS5 listener: a pool thread per handshake, then the tunnel on a
    :class:`~minihttp.proxy.hub.TunnelHub` (no thread per open tunnel), sharing the proxy's
    config.

    ``http_address``: the HTTP proxy's address, so a SOCKS tunnel to it is refused as a
    loop like one to this listener. ``hub``: the hub to relay on (the HTTP proxy's; its
    owner closes it); None: the server makes its own, closed by :meth:`server_close`.
    """

    #: Most concurrent SOCKS handshakes; more wait in the backlog (tunnels hold no thread).
    max_workers = 256
    max_queue = 64
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    #: Seconds for the whole handshake, greeting to request.
    handshake_timeout = 10.0

    def __init__(self, server_address: tuple[Any, ...], config: ProxyConfig | None = None, *,
                 http_address: tuple[Any, ...] | None = None,
                 address_family: int | None = None, hub: TunnelHub | None = None) -> None:
        self.proxy_config = config or ProxyConfig()
        self._own_hub = hub is None
        self.tunnel_hub = hub if hub is not None else TunnelHub("minihttp-socks-tunnels")
        #: Client sockets the hub owns now: shutdown_request must leave them alone.
        self._handed: set[socket.socket] = set()
        self.http_address = http_address
        if address_family is not None:
            self.address_family = address_family
        self._live: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._live_lock = threading.Lock()
        self._closed = False
        super().__init__(server_address, SocksHandler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        """Remember (or forget) a tunnel socket so :meth:`server_close` can cut it."""
        with self._live_lock:
            (self._live.add if alive else self._live.discard)(sock)

    def hand_over(self, client: socket.socket, upstream: socket.socket,
                  initial: bytes) -> bool:
        """Give a tunnel to the hub (it owns both sockets from now on; the client's is not
        shut nor closed by :meth:`shutdown_request`). False when the hub is closed (the
        server is stopping): the sockets are still the caller's."""
        with self._live_lock:
            self._handed.add(client)
        if self.tunnel_hub.add(client, upstream, initial=initial,
                               idle_timeout=self.proxy_config.tunnel_idle_timeout):
            return True
        with self._live_lock:
            self._handed.discard(client)
        return False

    def shutdown_request(self, request: Any) -> None:
        """Close a client connection after its handler, unless its tunnel went to the hub
        (then the hub's: a shutdown here would send the client a FIN mid-tunnel)."""
        with self._live_lock:
            if request in self._handed:
                self._handed.discard(request)
                return
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listener, then cut open tunnels and handshakes so their threads end,
        and end the tunnels of an own hub (once: a second call does nothing)."""
        with self._live_lock:
            if self._closed:
                return
            self._closed = True
        super().server_close()
        if self._own_hub:
            self.tunnel_hub.close()
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SocksHandler(BaseRequestHandler):
    """One SOCKS5 client: handshake (bounded in time), then the tunnel."""

    server: SocksServer
    request: socket.socket

    def handle(self) -> None:
        server = self.server
        sock = self.request
        server.track(sock, True)
        self._buf = b""
        self._deadline = time.monotonic() + server.handshake_timeout
        try:
            try:
                host, port = self._handshake()
                upstream, early, direct = self._open(host, port)
            except _Fail as fail:
                if fail.code is not None:
                    try:
                        self._reply(fail.code)
                    except OSError:
                        pass
                return
            except OSError:
                return  # the client went away or stalled: just close
            owned: socket.socket | None = upstream
            try:
                server.track(upstream, True)
                bound = upstream.getsockname()
                if direct and self._reached_self(upstream, port):
                    self._reply(NOT_ALLOWED)
                    return
                self._reply(SUCCEEDED, bound[0], bound[1])
                if early:
                    sock.sendall(early)
                server.track(upstream, False)
                server.track(sock, False)
                if server.hand_over(sock, upstream, self._buf):
                    owned = None  # the hub's now (the client socket too)
            except OSError:
                pass
            finally:
                if owned is not None:
                    server.track(owned, False)
                    owned.close()
        finally:
            server.track(sock, False)

    # -- the handshake ------------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        """Exactly ``n`` bytes of the handshake, within its deadline (OSError otherwise)."""
        while len(self._buf) < n:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("SOCKS handshake timed out")
            self.request.settimeout(left)
            piece = self.request.recv(4096)
            if not piece:
                raise ConnectionResetError("client closed during the SOCKS handshake")
            self._buf += piece
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _handshake(self) -> tuple[str, int]:
        """Greeting, authentication, request: the destination ``(host, port)``."""
        cfg = self.server.proxy_config
        version, count = self._read(2)
        if version != VERSION:
            raise _Fail(None)  # not SOCKS5 (SOCKS4 or HTTP): nothing we can answer in kind
        methods = self._read(count)
        allowed = client_allowed(str(self.client_address[0]), cfg.allow)
        wanted = USERPASS if cfg.auth is not None else NO_AUTH
        if not allowed or wanted not in methods:
            self.request.sendall(bytes((VERSION, NO_METHOD)))
            raise _Fail(None)
        self.request.sendall(bytes((VERSION, wanted)))
        if cfg.auth is not None:
            self._authenticate(cfg.auth)
        version, command, _reserved, atyp = self._read(4)
        if version != VERSION:
            raise _Fail(GENERAL_FAILURE)
        if atyp == ATYP_IPV4:
            host = str(ipaddress.IPv4Address(self._read(4)))
        elif atyp == ATYP_IPV6:
            host = str(ipaddress.IPv6Address(self._read(16)))
        elif atyp == ATYP_DOMAIN:
            name = self._read(self._read(1)[0])
            if not name.isascii() or not _NAME.fullmatch(name):  # IDNA is the client's job
                raise _Fail(HOST_UNREACHABLE)
            host = name.decode("ascii")
        else:
            raise _Fail(ADDRESS_NOT_SUPPORTED)
        (port,) = struct.unpack("!H", self._read(2))
        if command != CMD_CONNECT:
            raise _Fail(COMMAND_NOT_SUPPORTED)
        if port not in cfg.connect_ports or self._is_self(host, port):
            raise _Fail(NOT_ALLOWED)
        return host, port

    def _authenticate(self, auth: Credentials | tuple[str, str]) -> None:
        """RFC 1929: version 1, user, password; status 0 on success, else 1 and close.

        Checked by :class:`minihttp.auth.Credentials`, as ``Proxy-Authorization`` is (the
        same users, hashed passwords and constant-time comparison); names and passwords
        are taken as UTF-8, as curl and browsers send them.
        """
        if not isinstance(auth, Credentials):  # a pair: ProxyConfig turns it into these
            auth = Credentials.plain([auth])
        version, length = self._read(2)
        user = self._read(length)
        password = self._read(self._read(1)[0])
        try:
            ok = version == 1 and auth.verify(user.decode("utf-8"), password.decode("utf-8"))
        except UnicodeDecodeError:
            ok = False
        self.request.sendall(bytes((1, 0 if ok else 1)))
        if not ok:
            raise _Fail(None)

    def _is_self(self, host: str, port: int) -> bool:
        """True when the destination is one of this proxy's listeners on a loopback or the
        bound address (a tunnel to ourselves would only loop)."""
        ours = {self.server.server_address[1]}
        if self.server.http_address is not None:
            ours.add(self.server.http_address[1])
        if port not in ours:
            return False
        if host.lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        bound = str(self.server.server_address[0])
        return ip.is_loopback or ip.is_unspecified or host == bound

    def _reached_self(self, upstream: socket.socket, port: int) -> bool:
        """After a direct connect: True when it reached one of our listeners through one
        of this host's own addresses (a name that resolves to us, a wildcard bind)."""
        ours = {self.server.server_address[1]}
        if self.server.http_address is not None:
            ours.add(self.server.http_address[1])
        if port not in ours:
            return False
        try:
            return bool(upstream.getpeername()[0] == upstream.getsockname()[0])
        except OSError:
            return False

    # -- the tunnel ---------------------------------------------------------------------------

    def _open(self, host: str, port: int) -> tuple[socket.socket, bytes, bool]:
        """The upstream socket (direct or through the parent), bytes the parent relayed
        already, and whether it is direct."""
        cfg = self.server.proxy_config
        parent = cfg.chain.parent_for(host) if cfg.chain is not None else None
        try:
            if parent is None:
                return open_connection(host, port, timeout=cfg.upstream_timeout,
                                       deny=cfg.deny), b"", True
            if cfg.deny and address_in(host, cfg.deny):
                raise DestinationDenied(host)
            sock, early = connect_via(parent, host, port, cfg.upstream_timeout, cfg.via_name)
            return sock, early, False
        except (DestinationDenied, UpstreamError) as exc:
            raise _Fail(reply_code(exc)) from exc

    def _reply(self, code: int, host: str = "0.0.0.0", port: int = 0) -> None:
        """A reply (RFC 1928 section 6): the code and the bound address (zero on failure)."""
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
        self.request.sendall(bytes((VERSION, code, 0, atyp)) + ip.packed
                             + struct.pack("!H", port))


# -- running beside the HTTP proxy (the command line) ----------------------------------------


def listen_beside(http_server: Any, config: ProxyConfig) -> SocksServer | None:
    """The SOCKS listener ``config.socks_port`` asks for, on the HTTP server's bind address
    and family (None when there is no ``--socks``); OSError when it cannot listen.

    Non-blocking, like the HTTP listener under pre-forked workers: every worker serves it,
    and a worker that loses the race for a connection just goes on.
    """
    if config.socks_port is None:
        return None
    address = http_server.server_address
    socks = SocksServer((address[0], config.socks_port), config, http_address=address,
                        address_family=http_server.address_family,
                        hub=getattr(http_server, "tunnel_hub", None))
    socks.socket.setblocking(False)
    return socks


@contextlib.contextmanager
def serving(socks: SocksServer | None) -> Iterator[None]:
    """Serve ``socks`` in a thread for the block (nothing when None); on exit it stops
    accepting, open tunnels are cut and the listener is closed."""
    if socks is None:
        yield
        return
    thread = threading.Thread(target=socks.serve_forever, name="minihttp-socks", daemon=True)
    thread.start()
    try:
        yield
    finally:
        socks.shutdown()
        thread.join(10)
        socks.server_close()
