"""A forward HTTP proxy: absolute-form requests relayed over pooled h11 connections, CONNECT.

Run it (loopback only, port 8080)::

    python -m minihttp proxy 8080
    MINIHTTP_AUTH=alice:secret python -m minihttp proxy 3128 -b 0.0.0.0 --allow 10.0.0.0/8
    python -m minihttp proxy 8080 --threads    # a thread per client (ProxyServer)
    python -m minihttp proxy 8080 --workers 2  # two processes (the GIL binds one to a core)

or subclass :class:`ProxyHandler` and override :meth:`ProxyHandler.request_hook` /
:meth:`ProxyHandler.response_hook` to inspect and change traffic (see
``examples/logging_proxy.py``).

The proxy is split by idea. This module is the public surface: :class:`ProxyHandler` (its
request entry points, the hooks, CONNECT), :class:`ProxyServerMixIn` / :class:`ProxyServer`
and :func:`main`, and it re-exports the public names of the others. Underneath, a handler is
a chain of mixins, each a module (one method call per step, as before the split):
:mod:`minihttp.proxy.route` (admission, targets, loops, the proxy's own answers) <-
:mod:`minihttp.proxy.upstream` (one upstream exchange through h11: retries, 502/504, the
relayed response; the per-connection :class:`~minihttp.proxy.upstream.Context`) <-
:mod:`minihttp.proxy.general` (requests a hook sees) and :mod:`minihttp.proxy.fast`
(hook-less requests in one pass). Beside them: :mod:`minihttp.proxy.config` (policy and
command line), :mod:`minihttp.proxy.headers` (hop-by-hop rules, Via, the heads hooks see),
:mod:`minihttp.proxy.connections` (resolving, connecting, pooled h11 upstream connections),
:mod:`minihttp.proxy.tunnel` (CONNECT relay), :mod:`minihttp.proxy.chain` (parent proxies:
requests and CONNECT through them), :mod:`minihttp.proxy.socks` (the SOCKS5 listener beside
this one), :mod:`minihttp.proxy.strict` (upstream response heads refused as ambiguous).

Rules of this module (RFC 9110 section 7.6, RFC 9112 sections 3.2 and 9.3):

* Only absolute-form ``http://`` targets are forwarded; origin-form requests get 400 (we are
  a proxy, not an origin server; ``/proxy.pac`` is served when ``--pac`` is given) and
  ``https://`` must come through CONNECT.
* Hop-by-hop fields are removed in both directions: Connection and every name it lists,
  plus the fixed set :data:`HOP_BY_HOP`. A Connection header that lists an end-to-end
  field we depend on (:data:`PROTECTED`) gets 400 rather than silently losing the field.
* The received Host is replaced by the target URI's authority (RFC 9112 section 3.2.2).
* Bodies are streamed, never buffered whole; framing is re-done on each side (client
  chunked -> upstream chunked, Content-Length kept). The upstream's framing is h11's.
* Every failure the client can see is a short plain-text response: 400, 403, 407, 502,
  504, 508. Once a response head has been relayed, a failure closes the client connection
  instead (a truncated body must never look complete).

Speed (a pooled keep-alive exchange is one ``recv`` from the client, one ``sendall`` of the
head (and first body piece) upstream, one ``recv`` back and one ``sendall`` to the client):
one h11 connection per pooled upstream socket (``start_next_cycle``), kernel socket timeouts
upstream (no ``poll`` per call), no liveness ``poll`` for a connection pooled < 5 ms ago.
Without a request hook a request takes the fast path (:mod:`minihttp.proxy.fast`); the
response's fields join our head as bytes (:mod:`minihttp.proxy.upstream`). What stays is
h11's own work (about 35 us and 250 function calls for the five events of an exchange on
this machine), which the issue requires. Measured with ``benchmarks/cpu_proxy.py`` (CPU per
proxied request, no memo keyed on request bytes; the name table is keyed on field names,
which real traffic repeats as much as the benchmark).
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
import weakref
from typing import Any

from minihttp.accesslog import with_access_log
from minihttp.auth_cli import warn_without_tls
from minihttp.eventloop.server import PooledHTTPServer
from minihttp.proxy import repeat
from minihttp.proxy.chain import Parent, connect_via
from minihttp.proxy.config import ProxyConfig, config_from_args, parse_args
from minihttp.proxy.connections import (
    ConnectionPool,
    DestinationDenied,
    UpstreamError,
    UpstreamTimeout,
    address_in,
    open_connection,
)
from minihttp.proxy.fast import FastPath
from minihttp.proxy.general import GeneralPath
from minihttp.proxy.headers import (
    HOP_BY_HOP,
    PROTECTED,
    ProxyRequest,
    ProxyResponse,
    connection_options,
    end_to_end,
    via_has,
)
from minihttp.proxy.hub import TunnelHub
from minihttp.proxy.route import Refuse
from minihttp.proxy.socks import listen_beside, serving
from minihttp.proxy.tunnel import detach_client, hand_over, relay_here
from minihttp.proxy.upstream import IDEMPOTENT, Context
from minihttp.server import ThreadingHTTPServer

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT",
    "PROTECTED",
    "PooledProxyServer",
    "ProxyConfig",
    "ProxyHandler",
    "ProxyRequest",
    "ProxyResponse",
    "ProxyServer",
    "ProxyServerMixIn",
    "config_from_args",
    "connection_options",
    "end_to_end",
    "main",
    "via_has",
]

class ProxyServerMixIn:
    """What makes a server a proxy server: its config, upstream pool and live sockets.

    Combine it with any server class of :mod:`minihttp.server` (or one built on it) whose
    constructor takes ``(server_address, RequestHandlerClass, bind_and_activate)``; it must
    come first in the bases, e.g. ``class PooledProxyServer(ProxyServerMixIn,
    PooledHTTPServer)``. :class:`ProxyServer` is the thread-per-connection one.

    With ``ProxyConfig.socks_port`` set it also owns the SOCKS5 listener
    (:mod:`minihttp.proxy.socks`), bound with it and served while ``serve_forever`` runs
    (in every pre-forked worker too).
    """

    #: The SOCKS5 listener beside this one (None without ``socks_port``).
    socks: Any = None

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any = None,
        bind_and_activate: bool = True,
        *,
        config: ProxyConfig | None = None,
    ) -> None:
        self.proxy_config = config or ProxyConfig()
        self.proxy_pool = ConnectionPool(
            max_idle_per_host=self.proxy_config.max_idle_per_host,
            idle_timeout=self.proxy_config.pool_idle_timeout,
        )
        # Weak: a socket that is closed and dropped anywhere leaves the set by itself, so
        # upstream sockets are tracked once, when opened, not on every request.
        self._live: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._live_lock = threading.Lock()
        #: Relays CONNECT tunnels on one thread when the server can hand connections over.
        self.tunnel_hub = TunnelHub()
        super().__init__(  # type: ignore[call-arg]
            server_address, RequestHandlerClass or ProxyHandler, bind_and_activate)
        if bind_and_activate and self.proxy_config.socks_port is not None:
            try:
                self.socks = listen_beside(self, self.proxy_config)
            except OSError as exc:
                super().server_close()  # type: ignore[misc]
                raise ValueError(f"cannot listen on port {self.proxy_config.socks_port} "
                                 f"for SOCKS5: {exc.strerror or exc}") from exc

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve HTTP (and SOCKS5 in a thread beside it, when configured) until shutdown."""
        with serving(self.socks):
            super().serve_forever(poll_interval)  # type: ignore[misc]

    def track(self, sock: socket.socket, alive: bool) -> None:
        """Remember (or forget) an upstream socket so server_close can cut it."""
        with self._live_lock:
            (self._live.add if alive else self._live.discard)(sock)

    def server_close(self) -> None:
        """Cut live upstream sockets so workers end now, then close the pool and the server.

        Cut first: a server whose ``server_close`` joins its workers (the pooled one) would
        otherwise wait for tunnels and upstream waits that only the cut ends.
        """
        self.proxy_pool.close()
        self.tunnel_hub.close()
        self._cut_upstreams()
        if self.socks is not None:
            self.socks.server_close()
        super().server_close()  # type: ignore[misc]

    def cut_stragglers(self) -> None:
        """A pooled server's shutdown past its grace: upstream waits and tunnels end too (a
        tunnel whose client side is shut still waits for its upstream's end otherwise)."""
        self._cut_upstreams()
        cut = getattr(super(), "cut_stragglers", None)
        if cut is not None:
            cut()

    def _cut_upstreams(self) -> None:
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ProxyServer(ProxyServerMixIn, ThreadingHTTPServer):
    """A threading HTTP server carrying the proxy's config, upstream pool and live sockets."""

    daemon_threads = True


class PooledProxyServer(ProxyServerMixIn, PooledHTTPServer):
    """The proxy on :class:`~minihttp.eventloop.PooledHTTPServer` (the command line's default).

    Requests are served on the server's event loop, and the wait for each upstream
    response is deferred to that loop (``defer_until_readable``): while upstreams work,
    the one thread serves other clients, and no request holds a thread. Handlers that
    block elsewhere (a hook reading a file, a slow client, a large body) lose the loop to
    another thread after ``inline_budget``, as on any pooled server. A CONNECT tunnel is
    handed over (``detach``) to the server's :class:`~minihttp.proxy.hub.TunnelHub`, which
    relays every tunnel on one thread; only a TLS client connection, which cannot be handed
    over, still takes a thread of its own (``leave_loop``; 503 when none is free).
    """

    #: Threads for blocking work (a tunnel over a TLS client connection holds one).
    max_workers = 256


class ProxyHandler(FastPath, GeneralPath):
    """Forward-proxy request handler: every method in absolute-form, plus CONNECT.

    Works under :class:`ProxyServer` (which carries config and pool); under any other
    server it uses a default :class:`ProxyConfig` and a process-wide pool.
    """

    server_version = "minihttp-proxy"
    protocol_version = "HTTP/1.1"

    # -- hooks for subclasses -------------------------------------------------------------

    def request_hook(self, request: ProxyRequest) -> ProxyRequest | ProxyResponse | None:
        """Inspect or change a request before it leaves.

        Return the (possibly changed) request or None to forward it, or a
        :class:`ProxyResponse` with ``body`` set to answer the client without any upstream.
        """
        return request

    def response_hook(
        self, request: ProxyRequest, response: ProxyResponse
    ) -> ProxyResponse | None:
        """Inspect or change status, reason and headers of an upstream response.

        The body is streamed afterwards, untouched. Return the response (or None).
        """
        return response

    # -- dispatch: every method is proxied ---------------------------------------------------

    def _not_implemented(self) -> None:
        """A method with no ``do_`` of its own (PURGE, M-SEARCH, ...): forwarded too, and
        handled as ``handle_one_request`` handles a ``do_`` method; 501 only for a method
        that could not name one (not upper case, as ``http.server`` dispatches).

        Not a ``__getattr__`` answering ``do_*``: a class with ``__getattr__`` loses
        CPython's specialised attribute access on every ``self.x`` of every request
        (measured: ~9k of ~57k instructions of parse_request + do_GET for a proxied GET).
        """
        if not self.command.isupper():  # type: ignore[union-attr]  # parsed: a token
            super()._not_implemented()
            return
        try:
            self.do_GET()
        except Exception as err:
            self._deferred = None
            self._method_failed(err)

    #: Per-connection lookups (see :class:`~minihttp.proxy.upstream.Context`), made by the
    #: first request.
    _ctx: Context | None = None

    def do_GET(self) -> None:
        """Forward one absolute-form request (used for every method except CONNECT)."""
        try:
            if self.path[:1] == "/" and self._serve_pac():
                return
            ctx = self._admit()
            command = self.command
            if ctx.fast and command != "OPTIONS" and command != "TRACE":
                self._forward_fast(ctx)
            else:
                self._admit_fields()
                self._forward(ctx)
        except Refuse as refusal:
            self._send_plain(refusal.status, refusal.message, refusal.headers)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_GET

    #: A repeated head is forwarded without parsing it (:mod:`minihttp.proxy.repeat`).
    _answer_repeat = repeat.answer

    def do_CONNECT(self) -> None:
        """Open a TCP tunnel to ``host:port`` (RFC 9110 section 9.3.6)."""
        try:
            self._admit()
            self._admit_fields()
            self._tunnel()
        except Refuse as refusal:
            self.close_connection = True
            self._send_plain(refusal.status, refusal.message, refusal.headers)

    # -- admission: allow-list, authentication, loops ----------------------------------------

    def _admit(self) -> Context:
        """The connection's context (made by its first request), once the allow-list (403)
        and proxy authentication (407, RFC 9110 section 11.7.1) let this client in."""
        ctx = self._ctx
        if ctx is None or ctx.server is not self.server or ctx.client is not self.client_address:
            cls = type(self)
            ctx = self._ctx = Context(self, cls.request_hook is not ProxyHandler.request_hook,
                                       cls.response_hook is not ProxyHandler.response_hook)
            ctx.repeat = repeat.eligible(ctx, self)
        if not ctx.allowed:
            raise Refuse(403, "Forbidden: this client may not use the proxy.")
        if ctx.auth is not None and not self._authorized(ctx.auth):
            raise Refuse(407, "Proxy authentication required.",
                          [("Proxy-Authenticate", 'Basic realm="minihttp", charset="UTF-8"')])
        return ctx

    # -- CONNECT ------------------------------------------------------------------------------

    def _tunnel(self) -> None:
        cfg = self.config
        host, port = self._split_authority(self.path, default_port=None)
        if port not in cfg.connect_ports:
            raise Refuse(403, f"Forbidden: CONNECT to port {port} is not allowed.")
        if self._is_self(host, port):
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        request = ProxyRequest("CONNECT", self._authority(host, port, default=0),
                               end_to_end(self.headers.items()), tuple(self.client_address))
        result = self.request_hook(request)
        if isinstance(result, ProxyResponse):
            self.close_connection = True
            self._send_response(result)
            return
        if result is not None and result.url != request.url:
            host, port = self._split_authority(result.url, default_port=None)
        upstream, early, parent = self._open_tunnel(host, port)
        self.server_track(upstream, True)
        self.server_track(self.connection, True)
        client: socket.socket | None = None
        owned: socket.socket | None = upstream
        try:
            if parent is None and self._is_self(host, port, upstream):
                raise Refuse(508, "Loop Detected: the target is this proxy.")
            # Relayed by the server's tunnel hub (one thread for every tunnel) when the
            # server can hand the connection over; else it blocks this thread for its whole
            # life: on an event loop it takes a thread of its own now (not after the loop's
            # budget), or is refused when none is free.
            client = detach_client(self)
            leave = getattr(self.server, "leave_loop", None)
            if client is None and leave is not None and not leave(self):
                raise Refuse(503, "Service Unavailable: too many tunnels open; try again.")
            self.close_connection = True
            initial = self._start_tunnel()
            if early:  # the destination spoke first, through the parent: after our 200
                (client if client is not None else self.connection).sendall(early)
            if client is not None:
                hand_over(self, client, upstream, idle_timeout=cfg.tunnel_idle_timeout,
                          initial=initial)
                client = owned = None  # the hub's now
            else:
                relay_here(self, upstream, idle_timeout=cfg.tunnel_idle_timeout,
                           initial=initial)
        finally:
            self.server_track(self.connection, False)
            for s in (owned, client):
                if s is not None:
                    self.server_track(s, False)
                    s.close()

    def _open_tunnel(self, host: str, port: int) -> tuple[socket.socket, bytes, Parent | None]:
        """The upstream socket of a tunnel to ``host:port``: direct, or through the parent
        proxy the chain names (a CONNECT to it; :func:`~minihttp.proxy.chain.connect_via`),
        with bytes the parent relayed already and the parent used (None: direct)."""
        cfg = self.config
        parent = cfg.chain.parent_for(host) if cfg.chain is not None else None
        try:
            if parent is None:
                sock = open_connection(host, port, timeout=cfg.upstream_timeout, deny=cfg.deny)
                return sock, b"", None
            if cfg.deny and address_in(host, cfg.deny):  # names are the parent's to check
                raise DestinationDenied(host)
            sock, early = connect_via(parent, host, port, cfg.upstream_timeout, cfg.via_name)
            return sock, early, parent
        except DestinationDenied as exc:
            raise Refuse(403, "Forbidden: destination not allowed.") from exc
        except UpstreamError as exc:
            if parent is None:
                raise Refuse(exc.status, self._gateway_text(exc)) from exc
            kind = "Gateway Timeout" if isinstance(exc, UpstreamTimeout) else "Bad Gateway"
            raise Refuse(exc.status, f"{kind}: {exc}.") from exc

    def _start_tunnel(self) -> bytes:
        """Send the 2xx head now; return client bytes already read past the CONNECT head.

        The server frames a 2xx answer to CONNECT with no body (RFC 9110 section 9.3.6), so
        nothing is added after the head. A client may send its first tunnel bytes (a TLS
        ClientHello) right behind the CONNECT head: those sit in the connection's reader.
        """
        self.send_response_only(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()  # logged when the tunnel ends (minihttp.proxy.tunnel.log_tunnel)
        self.close_connection = True  # after end_headers: no "Connection: close" in the 200
        reader = getattr(self, "reader", None)
        buf = getattr(reader, "buf", None)
        if isinstance(buf, bytearray):
            initial = bytes(buf)
            buf.clear()
            return initial
        return b""


def main(argv: list[str] | None = None, handler: type[ProxyHandler] = ProxyHandler) -> int:
    """Run the proxy until interrupted; the exit status (2 on bad arguments).

    The file server's way (:func:`minihttp.cli.serve`): its logging, its error sentences
    (a port in use reads the same), its stop and its ``--workers``.
    """
    from minihttp import cli

    try:
        args = parse_args(argv)
        config = config_from_args(args)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.auth is not None:
        warn_without_tls(args)
    try:
        return cli.serve(args, functools.partial(_make_server, handler=handler,
                                                 config=config), _announce)
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130


def _make_server(args: Any, *, handler: type[ProxyHandler], config: ProxyConfig) -> Any:
    """The proxy server the parsed arguments describe (bound and listening)."""
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    base: type[Any] = PooledProxyServer if args.pool else ProxyServer

    class _Server(base):  # type: ignore[misc]
        address_family = family

    return _Server((args.bind, args.port), with_access_log(handler, args.access_log_format),
                   config=config)


def _announce(server: Any, args: Any) -> None:
    """Where it listens, on standard output (also with ``-q``, as the file server)."""
    host, port = server.server_address[:2]
    print(f"Serving HTTP proxy on {host} port {port} "
          f"(Via: {server.proxy_config.via_name}) ...", flush=True)
    socks = getattr(server, "socks", None)
    if socks is not None:
        print(f"Serving SOCKS5 on {host} port {socks.server_address[1]} ...", flush=True)
