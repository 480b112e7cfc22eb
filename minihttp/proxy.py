"""A forward HTTP proxy: absolute-form requests relayed over pooled h11 connections, CONNECT.

Run it (loopback only, port 8080)::

    python -m minihttp.proxy 8080
    python -m minihttp.proxy 3128 -b 0.0.0.0 --allow 10.0.0.0/8 --auth alice:secret
    python -m minihttp.proxy 8080 --pool    # on minihttp.pool.PooledHTTPServer

or subclass :class:`ProxyHandler` and override :meth:`ProxyHandler.request_hook` /
:meth:`ProxyHandler.response_hook` to inspect and change traffic (see
``examples/logging_proxy.py``).

The proxy is split by idea: :mod:`minihttp._proxy_config` (policy and command line),
:mod:`minihttp._proxy_headers` (hop-by-hop rules, Via, the heads hooks see),
:mod:`minihttp._proxy_pool` (resolving, connecting, pooled h11 upstream connections),
:mod:`minihttp._tunnel` (CONNECT relay); this module is the handler and the server, and
re-exports the public names of the others.

Rules of this module (RFC 9110 section 7.6, RFC 9112 sections 3.2 and 9.3):

* Only absolute-form ``http://`` targets are forwarded; origin-form requests get 400 (we are
  a proxy, not an origin server) and ``https://`` must come through CONNECT.
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
Without a request hook a request takes the fast path (:meth:`ProxyHandler._forward_fast`):
what the server and the config say is looked up once per client connection
(:class:`_Context`); the fields are classified in one pass by a table of names and go to h11
as its own field list, which it adopts without re-normalising (the framing field is ours, in
normal form; a hook's fields get h11's full validation instead); a plain ``http://reg-name``
target is split by one regex. The response's fields are filtered in one pass over h11's
parsed list and join our head as bytes; the body is relayed with a flush only before a read
that may wait. What stays is h11's own work (about 35 us and 250 function calls for the
five events of an exchange on this machine), which the issue requires. Measured with
``benchmarks/cpu_proxy.py`` (CPU per proxied request, no memo keyed on request bytes; the
name table is keyed on field names, which real traffic repeats as much as the benchmark).
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
import weakref
from typing import Any

import h11

from minihttp._proxy_config import REG_NAME as _REG_NAME
from minihttp._proxy_config import ProxyConfig, config_from_args, parse_args
from minihttp._proxy_headers import (
    HOP_BY_HOP,
    PROTECTED,
    ProxyRequest,
    ProxyResponse,
    connection_options,
    end_to_end,
    strip_fields,
    via_has,
)
from minihttp._proxy_pool import (
    ConnectionPool,
    DestinationDenied,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
    open_connection,
)
from minihttp._proxy_route import Refuse, Routing, client_allowed
from minihttp._tunnel import relay
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT",
    "PROTECTED",
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

#: The command-line parser, under the name it had before the split (kept for callers).
_parse_args = parse_args

#: Methods that may be retried once on a fresh connection (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

_READ = 64 * 1024

_END = h11.EndOfMessage()

#: Request fields never forwarded as received: hop-by-hop ones, Host (rebuilt from the target,
#: RFC 9112 section 3.2.2), Content-Length (re-added with the framing), Expect (answered
#: here), X-Forwarded-For (rebuilt with the client's address).
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "expect", "x-forwarded-for"}
#: Response fields taken out of h11's list before relaying: hop-by-hop ones and
#: Content-Length (re-added by us, so the server's writer enforces it).
_RESPONSE_SKIP = frozenset(n.encode("ascii") for n in HOP_BY_HOP | {"content-length"})


def _h11_takes_parsed() -> bool:
    """True when this h11 has the ``_parsed`` flag on events (it skips re-validating fields
    its own parser produced; we use it for fields our stricter parser produced)."""
    try:
        h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"x")], _parsed=True)
    except TypeError:
        return False
    return True


_H11_PARSED = _h11_takes_parsed()


def _h11_headers_type() -> Any:
    """h11's own header list class, when this h11 takes it as given (None otherwise).

    ``h11.Request(headers=<h11 Headers>)`` adopts the list as is: no per-field lower-casing
    and copying (``normalize_and_validate``). The fields must then already be h11's
    ``(raw name, lower-case name, value)`` triples with framing values in normal form; the
    fast path builds exactly that from fields our strict parser accepted. Checked once by
    serializing a request, so a future h11 that changes the class is simply not used.
    """
    try:
        from h11._headers import Headers as h11_headers

        fields = h11_headers([(b"Host", b"host", b"x"), (b"X-A", b"x-a", b"1")])
        request = h11.Request(method=b"GET", target=b"/", headers=fields, _parsed=True)
        conn = h11.Connection(h11.CLIENT)
        wire = conn.send(request) + conn.send(_END)
        if (wire != b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"
                or request.headers.raw_items() != [(b"Host", b"x"), (b"X-A", b"1")]):
            return None
        response = h11.Response(status_code=200, headers=[(b"A-B", b"c")])
        if getattr(response.headers, "_full_items", None) != [(b"A-B", b"a-b", b"c")]:
            return None
    except Exception:  # any change in h11's internals: use its public input types
        return None
    return h11_headers


#: h11's Headers class (fast path) or None; when set, ``_full_items`` of a parsed
#: response's headers is the (raw, lower, value) list too (checked above).
_H11_HEADERS: Any = _h11_headers_type() if _H11_PARSED else None

#: Absolute-form ``http://reg-name[:port][/path-or-?query][#fragment]`` (RFC 9112 section
#: 3.2.2, RFC 3986 section 3.2.2 reg-name): the common target in one match. Anything else
#: (IPv6 literals, userinfo, other schemes, bad ports) goes to :meth:`ProxyHandler._target`,
#: which accepts or refuses it with a precise message.
_ABSOLUTE = re.compile(
    r"(?i:http)://(" + _REG_NAME.pattern + r")(?::([0-9]{1,5})?)?(?:([/?][^#]*)(?:#.*)?)?",
    re.DOTALL)

def _fast_target(target: str) -> tuple[str, int, str] | None:
    """(host, port, origin-form path) of a plain ``http://reg-name[:port]...`` target, or
    None for anything :meth:`ProxyHandler._target` must look at (it gives the same answer
    for every target this accepts; tests/test_proxy_speed.py checks that)."""
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        return None
    host, port_text, path = match.group(1, 2, 3)
    port = 80
    if port_text:
        port = int(port_text)
        if not 0 < port < 65536:
            return None
    if not path:
        path = "/"
    elif path[0] == "?":
        path = "/" + path
    return host, port, path


# What the fast path does with each request field (by lower-case name).
_KEEP, _DROP, _CONNECTION, _VIA, _XFF, _TE, _CL = range(7)
_REQUEST_ACTIONS: dict[str, int] = {
    **{name: _DROP for name in _REQUEST_DROP},
    "connection": _CONNECTION, "via": _VIA, "x-forwarded-for": _XFF,
    "transfer-encoding": _TE, "content-length": _CL,
}
#: Field name as received -> (name bytes, lower-case name bytes, action). Field names are a
#: small vocabulary (the same dozen on most requests), so each is encoded and classified
#: once; the table is bounded (cleared when full) so odd names cannot grow it. Values are
#: never cached: they are encoded on every request.
_NAMES: dict[str, tuple[bytes, bytes, int]] = {}
_NAMES_MAX = 512


def _name_entry(name: str) -> tuple[bytes, bytes, int]:
    low = name.lower()
    entry = (name.encode("latin-1"), low.encode("latin-1"), _REQUEST_ACTIONS.get(low, _KEEP))
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[name] = entry
    return entry


# What the relay does with each response field (by h11's lower-case name).
_R_SKIP, _R_LENGTH, _R_CHUNKED, _R_CONNECTION, _R_DATE = range(5)
_RESPONSE_ACTIONS: dict[bytes, int] = {
    **{name: _R_SKIP for name in _RESPONSE_SKIP},
    b"content-length": _R_LENGTH, b"transfer-encoding": _R_CHUNKED,
    b"connection": _R_CONNECTION, b"date": _R_DATE,
}


class _ClientGone(ConnectionError):
    """The client connection failed while we read its body; the server closes it quietly."""


class ProxyServerMixIn:
    """What makes a server a proxy server: its config, upstream pool and live sockets.

    Combine it with any server class of :mod:`minihttp.server` (or one built on it) whose
    constructor takes ``(server_address, RequestHandlerClass, bind_and_activate)``; it must
    come first in the bases, e.g. ``class PooledProxyServer(ProxyServerMixIn,
    PooledHTTPServer)``. :class:`ProxyServer` is the thread-per-connection one.
    """

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
        super().__init__(  # type: ignore[call-arg]
            server_address, RequestHandlerClass or ProxyHandler, bind_and_activate)

    def track(self, sock: socket.socket, alive: bool) -> None:
        """Remember (or forget) an upstream socket so server_close can cut it."""
        with self._live_lock:
            (self._live.add if alive else self._live.discard)(sock)

    def server_close(self) -> None:
        """Close the listener, the pool, and cut live upstream sockets so workers end now."""
        super().server_close()  # type: ignore[misc]
        self.proxy_pool.close()
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


class _Context:
    """What every request on one client connection needs from the server and the config,
    looked up once per connection (not per request): the allow-list decision, the bind
    port for the loop check, our Via entries as bytes, which hooks are overridden."""

    __slots__ = ("allowed", "auth", "bind_port", "cfg", "client", "fast", "pool",
                 "raw_fields", "request_hook", "response_hook", "server", "timeout",
                 "via_request", "via_response", "xff")

    def __init__(self, handler: ProxyHandler, request_hook: bool, response_hook: bool) -> None:
        """``request_hook`` / ``response_hook``: whether the handler's class overrides them."""
        self.server = handler.server
        self.client = handler.client_address
        cfg = self.cfg = handler.config
        self.pool = handler.pool
        self.allowed = client_allowed(str(self.client[0]), cfg.allow)
        self.auth = cfg.auth
        self.timeout = cfg.upstream_timeout
        address = getattr(self.server, "server_address", None)
        self.bind_port = address[1] if isinstance(address, tuple) and len(address) > 1 else -1
        cls = type(handler)
        # The fast path builds h11's field list itself; a request hook gets the general one.
        self.request_hook = request_hook
        self.fast = _H11_HEADERS is not None and not request_hook
        self.response_hook = response_hook
        # Relayed fields (validated by h11's parser) join the head as bytes unless a
        # subclass wants to see each one in send_header.
        self.raw_fields = cls.send_header is BaseHTTPRequestHandler.send_header
        via = cfg.via_name.encode("ascii")
        self.via_request = b"1.1 " + via
        self.via_response = b"Via: 1.1 " + via + b"\r\n"
        self.xff = str(self.client[0]).encode("latin-1") if cfg.forwarded_for else None


class ProxyHandler(Routing):
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

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches to do_<METHOD>; any extension method is forwarded too.
        if name.startswith("do_") and name[3:].isupper():
            return self.do_GET
        raise AttributeError(name)

    #: Per-connection lookups (see :class:`_Context`), made by the first request.
    _ctx: _Context | None = None

    def do_GET(self) -> None:
        """Forward one absolute-form request (used for every method except CONNECT)."""
        try:
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

    def _admit(self) -> _Context:
        """The connection's context (made by its first request), once the allow-list (403)
        and proxy authentication (407, RFC 9110 section 11.7.1) let this client in."""
        ctx = self._ctx
        if ctx is None or ctx.server is not self.server or ctx.client is not self.client_address:
            cls = type(self)
            ctx = self._ctx = _Context(self, cls.request_hook is not ProxyHandler.request_hook,
                                       cls.response_hook is not ProxyHandler.response_hook)
        if not ctx.allowed:
            raise Refuse(403, "Forbidden: this client may not use the proxy.")
        if ctx.auth is not None and not self._authorized(ctx.auth):
            raise Refuse(407, "Proxy authentication required.",
                          [("Proxy-Authenticate", 'Basic realm="minihttp", charset="UTF-8"')])
        return ctx

    # -- forwarding ----------------------------------------------------------------------------

    def _outgoing(self, url: str, cfg: ProxyConfig) -> ProxyRequest:
        # Expect: 100-continue is answered by our server when we start reading the body; the
        # upstream never sees it (we send the body without waiting).
        headers = self.headers
        fields = strip_fields(headers.items(), _REQUEST_DROP)
        command = self.command or "GET"
        if command == "OPTIONS" or command == "TRACE":
            hops = headers.get("Max-Forwards")
            if hops is not None:  # RFC 9110 section 7.6.2: forward one less (> 0 here)
                fields = [(n, v) for n, v in fields if n.lower() != "max-forwards"]
                fields.append(("Max-Forwards", str(int(hops) - 1)))
        version = self.request_version
        version = version[5:] if version.startswith("HTTP/") else "1.1"
        fields.append(("Via", f"{version} {cfg.via_name}"))
        xff = headers.get_all("X-Forwarded-For")
        if xff:
            xff = [v for v in xff if v.strip()]
        if cfg.forwarded_for:
            xff = xff or []
            xff.append(str(self.client_address[0]))
        if xff:
            fields.append(("X-Forwarded-For", ", ".join(xff)))
        return ProxyRequest(command, url, fields, tuple(self.client_address))

    def _max_forwards(self) -> bool:
        """Handle Max-Forwards for OPTIONS/TRACE (RFC 9110 section 7.6.2); True if answered."""
        value = self.headers.get("Max-Forwards")
        if self.command not in ("OPTIONS", "TRACE") or value is None:
            return False
        if not (value.strip().isascii() and value.strip().isdigit()):
            raise Refuse(400, "Bad Request: bad Max-Forwards.")
        if int(value) > 0:
            return False
        if self.command == "TRACE":
            head = self.raw_requestline + b"".join(
                f"{n}: {v}\r\n".encode("latin-1") for n, v in self.headers.items()
                if n.lower() not in ("proxy-authorization", "authorization", "cookie"))
            self._send_response(ProxyResponse(200, "OK", [("Content-Type", "message/http")],
                                              head))
        else:
            self._send_response(ProxyResponse(200, "OK", [("Allow", "GET, HEAD, OPTIONS")], b""))
        return True

    def _forward(self, ctx: _Context) -> None:
        cfg = ctx.cfg
        host, port, path = self._target()
        if self._is_self(host, port):
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        if (self.command == "OPTIONS" or self.command == "TRACE") and self._max_forwards():
            return
        authority = self._authority(host, port)
        url = f"http://{authority}{path}"
        request = self._outgoing(url, cfg)
        # Without a hook the fields are what our strict parser accepted plus our own: h11 need
        # not validate them again (see _exchange).
        trusted = not ctx.request_hook
        if not trusted:
            result = self.request_hook(request)
            if isinstance(result, ProxyResponse):
                self._send_response(result)
                return
            request = result or request
            if request.url != url:  # the hook re-targeted the request: check it again
                saved, self.path = self.path, request.url
                try:
                    host, port, path = self._target()
                finally:
                    self.path = saved
                if self._is_self(host, port):
                    raise Refuse(508, "Loop Detected: the target is this proxy.")
                authority = self._authority(host, port)
        framing = self._body_framing()
        try:
            h11_request = self._upstream_request(request, path, authority, framing, trusted)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            # h11 refused what a hook built: our fault, not the upstream's.
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc
        self._exchange(h11_request, framing is not None and framing != ("Content-Length", "0"),
                       host, port, request, ctx)

    def _forward_fast(self, ctx: _Context) -> None:
        """:meth:`_admit_fields` + :meth:`_forward` without a request hook, in one pass.

        The same rules, in the same order, as the general path; the request's fields are
        classified by a table (:data:`_NAMES`) and go straight into h11's own field list
        (:data:`_H11_HEADERS`), so h11 neither copies nor re-checks what our strict parser
        accepted. Only http:// targets with a reg-name host take the one-regex route.
        """
        latin = "latin-1"
        names = _NAMES
        host_slot = (b"Host", b"host", b"")
        fields = [host_slot]
        special: list[tuple[int, str]] | None = None
        for name, value in self.headers.items():
            entry = names.get(name) or _name_entry(name)
            action = entry[2]
            if action == _KEEP:
                fields.append((entry[0], entry[1], value.encode(latin)))
            elif action != _DROP:
                if action == _VIA:
                    fields.append((entry[0], entry[1], value.encode(latin)))
                if special is None:
                    special = []
                special.append((action, value))
        framing: tuple[bytes, bytes, bytes] | None = None
        xff: list[str] | None = None
        if special is not None:
            fields, framing, xff = self._special_fields(ctx, fields, special)
        target = _fast_target(self.path)
        host, port, path = target if target is not None else self._target()
        if port == ctx.bind_port and self._is_self(host, port):
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        authority = self._authority(host, port)
        fields[0] = (b"Host", b"host", authority.encode(latin))
        version = self.request_version
        if version == "HTTP/1.1":
            fields.append((b"Via", b"via", ctx.via_request))
        else:
            version = version[5:] if version.startswith("HTTP/") else "1.1"
            fields.append((b"Via", b"via", f"{version} {ctx.cfg.via_name}".encode(latin)))
        if xff:
            if ctx.xff is not None:
                xff.append(str(self.client_address[0]))
            fields.append((b"X-Forwarded-For", b"x-forwarded-for", ", ".join(xff).encode(latin)))
        elif ctx.xff is not None:
            fields.append((b"X-Forwarded-For", b"x-forwarded-for", ctx.xff))
        method = self.command or "GET"
        request = None
        if ctx.response_hook:  # the hook is given the request as a hook would have seen it
            request = ProxyRequest(method, f"http://{authority}{path}",
                                   [(n.decode(latin), v.decode(latin)) for n, _, v in fields[1:]],
                                   tuple(self.client_address))
        has_body = False
        headers: Any = fields
        if framing is not None:
            fields.append(framing)
            value = framing[2]
            has_body = value != b"0"
            if value != b"chunked" and not (value.isdigit() and len(value) < 19):
                headers = [(n, v) for n, _, v in fields]  # h11 normalises and checks it
        try:
            h11_request = h11.Request(
                method=method.encode(latin), target=path.encode(latin),
                headers=_H11_HEADERS(fields) if headers is fields else headers, _parsed=True)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc
        self._exchange(h11_request, has_body, host, port, request, ctx)

    def _special_fields(
        self, ctx: _Context, fields: list[tuple[bytes, bytes, bytes]],
        special: list[tuple[int, str]],
    ) -> tuple[list[tuple[bytes, bytes, bytes]], tuple[bytes, bytes, bytes] | None,
               list[str] | None]:
        """The rules for the request fields the fast path set aside: Connection (400 if it
        names a protected field, else the fields it names are dropped), Via (508 on a
        loop), X-Forwarded-For (kept, non-empty entries), framing (RFC 9112 section 6.3:
        chunked when Transfer-Encoding is there, else the Content-Length).

        Returns the fields, the framing field (or None) and the received X-Forwarded-For
        values (or None).
        """
        listed = [v for a, v in special if a == _CONNECTION]
        if listed:
            options = connection_options(listed)
            if options & PROTECTED:
                raise Refuse(400, "Bad Request: Connection lists an end-to-end field.")
            drop = {o.encode("latin-1") for o in options}
            fields = [f for f in fields if f[1] not in drop]
        via = [v for a, v in special if a == _VIA]
        if via and via_has(via, ctx.cfg.via_name):
            raise Refuse(508, "Loop Detected: this request already passed this proxy.")
        xff = [v for a, v in special if a == _XFF and v.strip()] or None
        framing: tuple[bytes, bytes, bytes] | None = None
        te = next((v for a, v in special if a == _TE), None)
        if te:
            framing = (b"Transfer-Encoding", b"transfer-encoding", b"chunked")
        else:
            length = next((v for a, v in special if a == _CL), None)
            if length is not None:
                framing = (b"Content-Length", b"content-length",
                           length.strip().encode("latin-1"))
        return fields, framing, xff

    def _body_framing(self) -> tuple[str, str] | None:
        if self.headers.get("Transfer-Encoding"):
            return ("Transfer-Encoding", "chunked")
        length = self.headers.get("Content-Length")
        if length is not None:
            return ("Content-Length", length.strip())
        return None

    def _upstream_request(self, request: ProxyRequest, path: str, authority: str,
                          framing: tuple[str, str] | None, trusted: bool) -> Any:
        """The h11.Request for upstream: Host from the target, the framing we chose.

        Fields go to h11 as latin-1 bytes (RFC 9110 section 5.5: obs-text is allowed in
        values; h11 would encode str as ASCII). ``trusted`` fields (from our strict parser,
        which rejects every control byte h11 rejects and more, plus fields we built) skip
        h11's per-field regex validation; h11 still normalises the names and checks the
        framing fields. A hook's fields go through h11's full validation.
        """
        latin = "latin-1"
        fields = [(b"Host", authority.encode(latin))]
        if trusted:
            fields += [(n.encode(latin), v.encode(latin)) for n, v in request.headers]
        else:
            fields += [(n.encode(latin), v.encode(latin)) for n, v in request.headers
                       if n.lower() not in ("host", "content-length", "transfer-encoding")]
        if framing is not None:
            fields.append((framing[0].encode(latin), framing[1].encode(latin)))
        method, target = request.method.encode(latin), path.encode(latin)
        if trusted and _H11_PARSED:
            return h11.Request(method=method, target=target, headers=fields, _parsed=True)
        return h11.Request(method=method, target=target, headers=fields)

    def _exchange(self, h11_request: Any, has_body: bool, host: str, port: int,
                  request: ProxyRequest | None, ctx: _Context) -> None:
        """Send ``h11_request`` (and the client's body) upstream, relay the response.

        ``request`` is what the response hook is given (None when there is no hook).
        """
        self._body_started = False
        pool = ctx.pool
        conn = pool.acquire((host.lower(), port))
        response = None
        method = self.command or "GET"
        for attempt in (0, 1):
            if conn is None:
                conn = self._connect(host, port, ctx.cfg)
            try:
                response = self._send_request(conn, h11_request, has_body, ctx.timeout)
            except UpstreamError as exc:
                # A pooled connection the upstream closed while idle fails before any
                # response byte; an idempotent request whose body we have not touched yet
                # is retried once on a fresh connection (RFC 9110 section 9.2.2).
                stale = conn.reused and not conn.got_response_bytes
                self._drop(conn)
                conn = None
                if (attempt == 0 and stale and not self._body_started
                        and method in IDEMPOTENT):
                    continue
                if has_body:
                    self.close_connection = True  # the client's body may be half read
                raise Refuse(exc.status, self._gateway_text(exc)) from exc
            except BaseException:
                self._drop(conn)
                raise
            break
        assert conn is not None and response is not None
        try:
            self._relay_response(request, conn, response, ctx)
        finally:
            pool.release(conn)

    def _connect(self, host: str, port: int, cfg: ProxyConfig) -> UpstreamConnection:
        try:
            conn = self.pool.connect(host, port, timeout=cfg.upstream_timeout, deny=cfg.deny)
        except DestinationDenied as exc:
            raise Refuse(403, "Forbidden: destination not allowed.") from exc
        except UpstreamError as exc:
            raise Refuse(exc.status, self._gateway_text(exc)) from exc
        if self._is_self(host, port, conn.sock):
            conn.close()
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        # Tracked for its whole life (the server keeps a weak set): server_close cuts it
        # whether it is busy or idle in the pool.
        self.server_track(conn.sock, True)
        return conn

    def server_track(self, sock: socket.socket, alive: bool) -> None:
        track = getattr(self.server, "track", None)
        if track is not None:
            track(sock, alive)

    def _drop(self, conn: UpstreamConnection) -> None:
        self.server_track(conn.sock, False)
        conn.close()

    @staticmethod
    def _gateway_text(exc: UpstreamError) -> str:
        if isinstance(exc, UpstreamTimeout):
            return f"Gateway Timeout: {exc}"
        return f"Bad Gateway: {exc}"

    def _send_request(self, conn: UpstreamConnection, req: Any, has_body: bool,
                      timeout: float) -> Any:
        """Send the request and its body; return the final response head (h11.Response)."""
        try:
            if has_body:
                conn.set_timeout(timeout)
                conn.send(req, flush=False)
                read = getattr(self.rfile, "read1", None) or self.rfile.read
                while True:
                    self._body_started = True
                    try:
                        piece = read(_READ)
                    except OSError as exc:  # the client went away mid-body: not a 502
                        raise _ClientGone(str(exc)) from exc
                    if not piece:
                        break
                    conn.send(h11.Data(data=piece))
                conn.send(_END)
            else:
                conn.send_bodyless(req, timeout)
            return conn.response_head()
        except _ClientGone:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream timed out") from exc
        except (OSError, h11.ProtocolError) as exc:
            if isinstance(exc, h11.LocalProtocolError) and not conn.got_response_bytes:
                # h11 refused what we (or a hook) built: our fault, not the upstream's.
                raise Refuse(500, "Internal Server Error: request cannot be forwarded.") \
                    from exc
            raise UpstreamError("upstream connection failed") from exc

    def _relay_response(self, request: ProxyRequest | None, conn: UpstreamConnection,
                        head: Any, ctx: _Context) -> None:
        # One pass over h11's fields (raw name, lower-case name, value): framing fields are
        # taken out, hop-by-hop ones dropped (RFC 9110 section 7.6.1), the rest kept as the
        # lines they will be in our head (h11's parser validated them: token names, no
        # CR/LF/NUL in values).
        items = head.headers._full_items if _H11_HEADERS is not None else [
            (n, n.lower(), v) for n, v in head.headers.raw_items()]
        actions = _RESPONSE_ACTIONS
        length: bytes | None = None
        chunked = has_date = False
        listed: list[bytes] | None = None
        lines: list[bytes] = []
        for raw_name, name, value in items:
            action = actions.get(name)
            if action is None:
                lines.append(b"%s: %s\r\n" % (raw_name, value))
            elif action == _R_DATE:
                has_date = True
                lines.append(b"%s: %s\r\n" % (raw_name, value))
            elif action == _R_LENGTH:
                length = value
            elif action == _R_CHUNKED:
                chunked = True
            elif action == _R_CONNECTION:
                listed = [*(listed or ()), value]
        status = head.status_code
        if status == 101 or (length is not None and chunked):
            # RFC 9112 section 6.3: CL with TE is a smuggling signature; 101 we never asked for.
            self._drop(conn)
            raise Refuse(502, "Bad Gateway: upstream response has invalid framing.")
        if listed is not None:
            options = connection_options(v.decode("latin-1") for v in listed) - PROTECTED
            drop = {o.encode("latin-1") for o in options}
            kept = [(n, v) for n, low, v in items
                    if low not in drop and actions.get(low) in (None, _R_DATE)]
            has_date = any(n.lower() == b"date" for n, _ in kept)
            lines = [b"%s: %s\r\n" % f for f in kept]
        reason = head.reason.decode("latin-1")
        send_header = self.send_header
        http_version = head.http_version
        if not ctx.response_hook:
            std = self.responses.get(status)
            self.send_response_only(status, None if std and std[0] == reason else reason or None)
            if not has_date:
                send_header("Date", self.date_time_string())  # RFC 9110 section 6.6.1
            lines.append(ctx.via_response if http_version == b"1.1" else
                         f"Via: {http_version.decode('ascii', 'replace')} "
                         f"{ctx.cfg.via_name}\r\n".encode("latin-1"))
            if ctx.raw_fields:
                # send_header's effect for fields that set no framing or connection state.
                self._headers_buffer.append(b"".join(lines))
            else:
                for line in lines:
                    name, _, value = line[:-2].decode("latin-1").partition(": ")
                    send_header(name, value)
        else:
            fields = [tuple(line[:-2].decode("latin-1").split(": ", 1)) for line in lines]
            fields.append(("Via", f"{http_version.decode('ascii', 'replace')} "
                                  f"{ctx.cfg.via_name}"))
            response = ProxyResponse(status, reason, fields)  # type: ignore[arg-type]
            response = self.response_hook(request or self._hook_request(), response) \
                or response
            status = response.status
            self.send_response_only(status, response.reason or None)
            if response.get_header("Date") is None:
                send_header("Date", self.date_time_string())  # RFC 9110 section 6.6.1
            for name, value in response.headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    send_header(name, value)
        if length is not None:
            send_header("Content-Length", length.decode("ascii"))
        self.end_headers()
        self.log_request(status)
        wfile = self.wfile
        try:
            conn.relay_body(wfile.write, wfile.flush)
        except (OSError, h11.ProtocolError, UpstreamError):
            # The head is out: the only honest signal left is to cut the client off.
            self._drop(conn)
            self._abort_client()

    def _hook_request(self) -> ProxyRequest:
        """The request as a hook sees it, rebuilt (only when a caller passed none)."""
        return ProxyRequest(self.command or "GET", self.path, [], tuple(self.client_address))

    def _abort_client(self) -> None:
        """Cut the client off mid-response: never complete a body we could not relay whole."""
        self.close_connection = True
        abort = getattr(self.wfile, "abort", None)
        try:
            if abort is not None:
                abort()  # minihttp's writer: send what is buffered, no last chunk, close
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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
        try:
            upstream = open_connection(host, port, timeout=cfg.upstream_timeout, deny=cfg.deny)
        except DestinationDenied as exc:
            raise Refuse(403, "Forbidden: destination not allowed.") from exc
        except UpstreamError as exc:
            raise Refuse(exc.status, self._gateway_text(exc)) from exc
        self.server_track(upstream, True)
        self.server_track(self.connection, True)
        try:
            if self._is_self(host, port, upstream):
                raise Refuse(508, "Loop Detected: the target is this proxy.")
            self.close_connection = True
            initial = self._start_tunnel()
            relay(self.connection, upstream, idle_timeout=cfg.tunnel_idle_timeout,
                  initial=initial)
        finally:
            self.server_track(self.connection, False)
            self.server_track(upstream, False)
            upstream.close()

    def _start_tunnel(self) -> bytes:
        """Send the 2xx head now; return client bytes already read past the CONNECT head.

        The server frames a 2xx answer to CONNECT with no body (RFC 9110 section 9.3.6), so
        nothing is added after the head. A client may send its first tunnel bytes (a TLS
        ClientHello) right behind the CONNECT head: those sit in the connection's reader.
        """
        self.send_response_only(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        self.log_request(200)
        self.close_connection = True  # after end_headers: no "Connection: close" in the 200
        reader = getattr(self, "reader", None)
        buf = getattr(reader, "buf", None)
        if isinstance(buf, bytearray):
            initial = bytes(buf)
            buf.clear()
            return initial
        return b""


def main(argv: list[str] | None = None, handler: type[ProxyHandler] = ProxyHandler) -> int:
    """Run the proxy until interrupted; the exit status (2 on bad arguments)."""
    args = _parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    base: type[Any] = ProxyServer
    if args.pool:
        from minihttp.pool import PooledHTTPServer

        class PooledProxyServer(ProxyServerMixIn, PooledHTTPServer):
            """The proxy on the pooled server (``--pool``)."""

        base = PooledProxyServer

    class _Server(base):  # type: ignore[misc]
        address_family = family

    try:
        server = _Server((args.bind, args.port), handler, config=config)
    except OSError as exc:
        print(f"error: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if not config.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    with server:
        host, port = server.server_address[:2]
        if not config.quiet:
            print(f"Serving HTTP proxy on {host} port {port} (Via: {config.via_name}) ...",
                  flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            if not config.quiet:
                print("\nKeyboard interrupt received, exiting.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
