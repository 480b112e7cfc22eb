"""One exchange with the upstream: the request through h11, the response relayed back.

:class:`Exchange` sits between :class:`minihttp.proxy.route.Routing` and the two forwarding
paths (:mod:`minihttp.proxy.general`, :mod:`minihttp.proxy.fast`): they build an
``h11.Request``; :meth:`Exchange._exchange` sends it (and the client's body) on a pooled
connection and relays the answer. :class:`Context` holds what every request on one client
connection needs, looked up once per connection.

Rules of this module (RFC 9110 sections 6.6.1, 7.6 and 9.2.2, RFC 9112 section 6.3):

* A request goes out on a pooled connection when there is one; a reused connection that
  fails before any response byte is retried once on a fresh one, only for an idempotent
  method (:data:`IDEMPOTENT`) whose body we have not started to read.
* Upstream failures map to 502 (connection failed, bad framing: Content-Length with
  Transfer-Encoding, an unasked-for 101) or 504 (timed out); a destination on the deny-list
  is 403, a connection that reached this proxy 508, a request h11 refuses to send 500.
  A client that fails while we read its body is not the upstream's fault: it is closed.
* The response's hop-by-hop fields (and those its Connection lists, except
  :data:`PROTECTED` ones) are dropped; Content-Length is re-sent by us, so the server's
  writer enforces it; Date is added when missing; our Via entry is appended.
* Once the head is out, a failure cuts the client off (a truncated body must never look
  complete). Every connection goes back to the pool or is closed and untracked.

Speed: the response's fields are filtered in one pass over h11's parsed list and join our
head as bytes; the body is relayed with a flush only before a read that may wait. h11's own
field list class is used as given only when a probe at import shows it behaves as expected.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any, NoReturn

import h11

from minihttp._writer import LENGTH
from minihttp.http11 import ResponseHead
from minihttp.proxy.chain import Chain, Parent
from minihttp.proxy.config import ProxyConfig
from minihttp.proxy.connections import (
    DestinationDenied,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
    address_in,
)
from minihttp.proxy.headers import (
    HOP_BY_HOP,
    PROTECTED,
    ProxyRequest,
    ProxyResponse,
    connection_options,
)
from minihttp.proxy.route import Refuse, Routing, client_allowed
from minihttp.proxy.upload import Upload, _ClientGone
from minihttp.server import BaseHTTPRequestHandler

__all__ = ["H11_HEADERS", "H11_PARSED", "IDEMPOTENT", "Context", "Exchange"]

#: Methods that may be retried once on a fresh connection (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

_READ = 64 * 1024

_END = h11.EndOfMessage()

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


H11_PARSED = _h11_takes_parsed()


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
H11_HEADERS: Any = _h11_headers_type() if H11_PARSED else None

# What the relay does with each response field (by h11's lower-case name).
_R_SKIP, _R_LENGTH, _R_CHUNKED, _R_CONNECTION, _R_DATE = range(5)
_RESPONSE_ACTIONS: dict[bytes, int] = {
    **{name: _R_SKIP for name in _RESPONSE_SKIP},
    b"content-length": _R_LENGTH, b"transfer-encoding": _R_CHUNKED,
    b"connection": _R_CONNECTION, b"date": _R_DATE,
}


#: (status, reason bytes) of upstream responses -> ``send_response_only``'s message, for
#: handlers with the standard ``responses`` table (others get one per connection). Keyed on
#: what upstreams send, bounded: cleared when full.
_REASONS: dict[tuple[int, bytes], str | None] = {}
_REASONS_MAX = 256
#: Not in the table (compared by identity: no decoded reason is this object).
_UNKNOWN = "(not known)"


class Context:
    """What every request on one client connection needs from the server and the config,
    looked up once per connection (not per request): the allow-list decision, the bind
    port for the loop check, our Via entries as bytes, which hooks are overridden."""

    __slots__ = ("allowed", "auth", "bind_port", "cfg", "chain", "client", "fast", "pool",
                 "raw_fields", "reasons", "relay_again", "repeat", "request_hook",
                 "response_hook", "server", "timeout", "via_request", "via_response", "xff")

    def __init__(self, handler: Routing, request_hook: bool, response_hook: bool) -> None:
        """``request_hook`` / ``response_hook``: whether the handler's class overrides them."""
        self.server = handler.server
        self.client = handler.client_address
        cfg = self.cfg = handler.config
        self.pool = handler.pool
        self.allowed = client_allowed(str(self.client[0]), cfg.allow)
        self.auth = cfg.auth
        self.timeout = cfg.upstream_timeout
        self.chain: Chain | None = cfg.chain
        address = getattr(self.server, "server_address", None)
        self.bind_port = address[1] if isinstance(address, tuple) and len(address) > 1 else -1
        cls = type(handler)
        # The fast path builds h11's field list itself; a request hook gets the general one.
        self.request_hook = request_hook
        self.fast = H11_HEADERS is not None and not request_hook
        self.response_hook = response_hook
        # Relayed fields (validated by h11's parser) join the head as bytes unless a
        # subclass wants to see each one in send_header.
        self.raw_fields = cls.send_header is BaseHTTPRequestHandler.send_header
        # Status-line messages by (status, reason): shared while the reason table is ours.
        self.reasons: dict[tuple[int, bytes], str | None] = (
            _REASONS if handler.responses is BaseHTTPRequestHandler.responses else {})
        # A relayed head may be sent again as the same bytes (Exchange._relay_again) only
        # when the methods that build it are minihttp's own.
        base = BaseHTTPRequestHandler
        self.relay_again = (not response_hook and self.raw_fields
                            and self.reasons is _REASONS
                            and cls.send_response_only is base.send_response_only
                            and cls.end_headers is base.end_headers)
        via = cfg.via_name.encode("ascii")
        self.via_request = b"1.1 " + via
        self.via_response = b"Via: 1.1 " + via + b"\r\n"
        self.xff = str(self.client[0]).encode("latin-1") if cfg.forwarded_for else None
        #: Whether a repeated head may be forwarded without parsing it (set by the handler:
        #: :func:`minihttp.proxy.repeat.eligible`).
        self.repeat = False


@dataclasses.dataclass(slots=True)
class _Job:
    """The exchange under way on one client request: what its continuations (a retry, the
    deferred wait for the response head, the body relay) need."""

    #: The ``h11.Request`` sent upstream, or (the fast path's bodyless request, sent
    #: without h11) its bytes.
    request: Any
    #: Whether the client's request has a body (sent from ``rfile``).
    has_body: bool
    host: str
    port: int
    #: What the response hook is given (None when there is no hook).
    hook_request: ProxyRequest | None
    ctx: Context
    #: The parent proxy the request goes through (None: straight to the origin).
    parent: Parent | None = None


class Exchange(Upload):
    """Sending a built request upstream and relaying the response (see above); a request
    body is relayed as it arrives when it can be (:mod:`minihttp.proxy.upload`)."""

    #: The exchange under way, the connection it was sent on (until the response head is
    #: read), and whether it was retried on a fresh connection already.
    _job: _Job
    _upstream: UpstreamConnection | None = None
    _retried = False
    #: The connection whose response body is being relayed.
    _relaying: UpstreamConnection | None = None
    #: While waiting for a slow client: the upstream body was read whole already.
    _relay_ended = False

    def _exchange(self, h11_request: Any, has_body: bool, host: str, port: int,
                  request: ProxyRequest | None, ctx: Context) -> None:
        """Send ``h11_request`` (and the client's body) upstream, relay the response.

        ``request`` is what the response hook is given (None when there is no hook). The
        wait for the response head is deferred to the server when it can wait for it
        (``defer_until_readable``: on the pooled server's event loop the request then holds
        no thread while the upstream works); otherwise this thread waits.
        """
        chain = ctx.chain
        parent = chain.parent_for(host) if chain is not None else None
        if parent is None:
            key = (host.lower(), port)
        else:
            if ctx.cfg.deny and address_in(host, ctx.cfg.deny):  # names are the parent's
                raise Refuse(403, "Forbidden: destination not allowed.")
            h11_request = self._for_parent(h11_request, host, port, parent)
            key = parent.key
        self._run(_Job(h11_request, has_body, host, port, request, ctx, parent), key)

    def _run(self, job: _Job, key: tuple[str, int]) -> None:
        """Run ``job`` (never changed once made, so a repeated request may run the same one
        again: minihttp.proxy.repeat) on a pooled connection for ``key``."""
        self._body_started = False
        self._job = job
        self._retried = False
        self._send_upstream(job.ctx.pool.acquire(key))

    def _for_parent(self, req: Any, host: str, port: int, parent: Parent) -> Any:
        """``req`` as a parent proxy takes it: absolute-form target (RFC 9112 section
        3.2.2; ``*`` becomes the bare authority, section 3.2.4) and the parent's
        Proxy-Authorization from its URL (the client's own was dropped as hop-by-hop)."""
        authority = self._authority(host, port).encode("latin-1")
        credentials = parent.authorization
        if type(req) is bytes:  # the fast path's bodyless request, as the bytes to send
            end = req.index(b"\r\n")
            method, target, version = req[:end].split(b" ", 2)
            target = b"http://" + authority + (b"" if target == b"*" else target)
            extra = (b"Proxy-Authorization: %s\r\n" % credentials.encode("latin-1")
                     if credentials else b"")
            return b"%s %s %s\r\n%s%s\r\n" % (method, target, version, req[end + 2:-2], extra)
        target = req.target
        target = b"http://" + authority + (b"" if target == b"*" else target)
        fields = [(n, v) for n, v in req.headers.raw_items()]
        if credentials:
            fields.append((b"Proxy-Authorization", credentials.encode("latin-1")))
        try:
            return h11.Request(method=req.method, target=target, headers=fields)
        except h11.LocalProtocolError as exc:  # a target h11 refuses in absolute-form
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc

    def _send_upstream(self, conn: UpstreamConnection | None) -> None:
        """One attempt: send the request on ``conn`` (a new one if None), then wait."""
        job = self._job
        ctx = job.ctx
        if conn is None:
            if job.parent is None:
                conn = self._connect(job.host, job.port, ctx.cfg)
            else:
                conn = self._connect_parent(job.parent, ctx.cfg)
        if job.has_body and self._can_stream(conn):
            self._stream_body(conn, job.request, ctx.timeout)  # then _await_response
            return
        try:
            try:
                if job.has_body:
                    self._send_body(conn, job.request, ctx.timeout)
                elif type(job.request) is bytes:  # the fast path's (no h11: send_raw)
                    conn.send_raw(job.request, self.command == "HEAD", ctx.timeout)
                else:
                    conn.send_bodyless(job.request, ctx.timeout)
            except _ClientGone:
                raise
            except (OSError, h11.ProtocolError) as exc:
                self._upstream_error(conn, exc)
        except UpstreamError as exc:
            self._upstream_failed(conn, exc)
            return
        except BaseException:
            self._drop(conn)
            raise
        self._await_response(conn)

    def _await_response(self, conn: UpstreamConnection) -> None:
        """The request is out on ``conn``: wait for the response head (deferred when the
        server can wait for it), then relay it."""
        self._upstream = conn
        if not self.defer_until_readable(conn.sock, self._on_upstream, self._job.ctx.timeout):
            self._upstream_ready(True)

    def _on_upstream(self, ready: bool) -> None:
        """The deferred rest of the exchange (the server calls it): as ``do_GET`` would."""
        try:
            self._upstream_ready(ready)
        except Refuse as refusal:
            self._send_plain(refusal.status, refusal.message, refusal.headers)

    def _upstream_ready(self, ready: bool) -> None:
        """Read the response head (``ready`` False: the wait timed out) and relay it."""
        conn = self._upstream
        assert conn is not None
        self._upstream = None
        job = self._job
        ctx = job.ctx
        try:
            if not ready:
                raise UpstreamTimeout("upstream timed out")
            try:
                response = conn.response_head()
            except (OSError, h11.ProtocolError) as exc:
                self._upstream_error(conn, exc)
        except UpstreamError as exc:
            self._upstream_failed(conn, exc)
            return
        except BaseException:
            self._drop(conn)
            raise
        if job.parent is not None and response.status_code == 407:
            # The parent wants credentials we do not have or it refused: not the client's
            # to answer (its Proxy-Authorization was for us), so not relayed as a 407.
            self._drop(conn)
            if job.has_body:
                self.close_connection = True
            raise Refuse(502, "Bad Gateway: the parent proxy refused our credentials (407).")
        try:
            self._relay_response(job.hook_request, conn, response, ctx)
        except BaseException:
            ctx.pool.release(conn)  # closes it unless the exchange is complete
            raise

    def _upstream_failed(self, conn: UpstreamConnection, exc: UpstreamError) -> None:
        """Retry once on a fresh connection, or refuse with 502/504.

        A pooled connection the upstream closed while idle fails before any response byte;
        an idempotent request whose body we have not touched yet is retried once on a fresh
        connection (RFC 9110 section 9.2.2).
        """
        stale = conn.reused and not conn.got_response_bytes
        self._drop(conn)
        if (not self._retried and stale and not self._body_started
                and (self.command or "GET") in IDEMPOTENT):
            self._retried = True
            self._send_upstream(None)
            return
        if self._job.has_body:
            self.close_connection = True  # the client's body may be half read
        if self._job.parent is not None:
            raise Refuse(exc.status, "Gateway Timeout: parent proxy timed out."
                         if isinstance(exc, UpstreamTimeout) else
                         "Bad Gateway: parent proxy connection failed.") from exc
        raise Refuse(exc.status, self._gateway_text(exc)) from exc

    def _connect_parent(self, parent: Parent, cfg: ProxyConfig) -> UpstreamConnection:
        """A fresh connection to a parent proxy (its address is not checked against the
        deny-list: that is for destinations; a parent that is this proxy is 508)."""
        try:
            conn = self.pool.connect(parent.host, parent.port, timeout=cfg.upstream_timeout)
        except UpstreamTimeout as exc:
            raise Refuse(504, "Gateway Timeout: parent proxy timed out.") from exc
        except UpstreamError as exc:
            raise Refuse(502, "Bad Gateway: parent proxy unreachable.") from exc
        if self._is_self(parent.host, parent.port, conn.sock):
            conn.close()
            raise Refuse(508, "Loop Detected: the parent proxy is this proxy.")
        self.server_track(conn.sock, True)
        return conn

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

    def _send_body(self, conn: UpstreamConnection, req: Any, timeout: float) -> None:
        """Send the request head and the client's body (socket and h11 errors propagate;
        the client failing mid-body is :class:`_ClientGone`)."""
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

    @staticmethod
    def _upstream_error(conn: UpstreamConnection, exc: BaseException) -> NoReturn:
        """The error an upstream failure is to the client: 504 on a timeout, 500 when h11
        refused what we (or a hook) built (our fault), else 502."""
        if isinstance(exc, TimeoutError):
            raise UpstreamTimeout("upstream timed out") from exc
        if isinstance(exc, h11.LocalProtocolError) and not conn.got_response_bytes:
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc
        raise UpstreamError("upstream connection failed") from exc

    def _relay_response(self, request: ProxyRequest | None, conn: UpstreamConnection,
                        head: Any, ctx: Context) -> None:
        # One pass over h11's fields (raw name, lower-case name, value): framing fields are
        # taken out, hop-by-hop ones dropped (RFC 9110 section 7.6.1), the rest kept as the
        # lines they will be in our head (h11's parser validated them: token names, no
        # CR/LF/NUL in values).
        items: Any
        if type(head) is ResponseHead:  # our parser's (a raw exchange)
            relayed = head.relayed
            if (relayed is not None and ctx.relay_again
                    and relayed[0] == (ctx.via_response, self.protocol_version)
                    and self._relay_memo_ok()):
                self._relay_again(conn, head, relayed[1])
                return
            items = head.items
        else:
            items = head.headers._full_items if H11_HEADERS is not None else [
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
        send_header = self.send_header
        http_version = head.http_version
        if not ctx.response_hook:
            reasons = ctx.reasons
            message = reasons.get((status, head.reason), _UNKNOWN)
            if message is _UNKNOWN:
                message = self._reason_argument(status, head.reason, reasons)
            self.send_response_only(status, message)
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
            reason = head.reason.decode("latin-1")
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
            # Fields dropped for Connection's options come from the head's bytes too, so
            # a head naming some (nginx's "Connection: keep-alive") is kept like any other.
            if (type(head) is ResponseHead and has_date
                    and ctx.relay_again and status >= 200 and status != 204 and status != 304
                    and self._relay_memo_ok(built=True)):
                head.relayed = ((ctx.via_response, self.protocol_version),
                                b"".join(self._headers_buffer) + b"\r\n")
        self.end_headers()
        self.log_request(status)
        self._relaying = conn
        self._relay_body(None)

    def _relay_memo_ok(self, built: bool = False) -> bool:
        """Whether this response's head goes out by ``end_headers``'s common case (a
        keep-alive HTTP/1.1 GET, minihttp's writer), so that the head relayed for the same
        upstream head before is the same bytes (see :meth:`_relay_again`); nothing may be
        queued yet unless ``built`` (the head being kept is queued)."""
        writer = self._direct_writer
        return (self.command == "GET" and self.request_version == "HTTP/1.1"
                and not self.close_connection and self._resp_te is None
                and (built or not self._headers_buffer) and writer is not None
                and self.wfile is writer)

    def _relay_again(self, conn: UpstreamConnection, head: ResponseHead, out: bytes) -> None:
        """:meth:`_relay_response` for an upstream head relayed before on a connection
        like this one (the same ResponseHead: its exact bytes; the same Via and protocol;
        :meth:`_relay_memo_ok`): what it queued and ``end_headers`` sent, at once.

        The head it builds is a function of the upstream head's bytes, our Via, the
        protocol and the request's method, version and keep-alive, all the same here; its
        Date is the upstream's own (a head without one is never kept). measured:
        benchmarks/icount_proxy.py, see the commit."""
        status = head.status_code
        self._status = status
        self._resp_length = head.length
        self._direct_writer.start(out, LENGTH, head.length)  # type: ignore[union-attr]
        self.log_request(status)
        self._relaying = conn
        self._relay_body(None)

    def _reason_argument(self, status: int, reason: bytes,
                         reasons: dict[tuple[int, bytes], str | None]) -> str | None:
        """``send_response_only``'s message for an upstream status and reason: None (our
        standard phrase) when the reason is the standard one, else the reason (or None when
        empty); remembered in ``reasons`` (bounded: cleared when full)."""
        text = reason.decode("latin-1")
        std = self.responses.get(status)
        message = None if std and std[0] == text else text or None
        if len(reasons) >= _REASONS_MAX:
            reasons.clear()
        reasons[(status, reason)] = message
        return message

    def _relay_body(self, ready: bool | None) -> None:
        """Relay the response body; when the upstream has sent nothing more yet, the wait is
        deferred like the wait for the head (a slow or streaming upstream then holds no
        thread), else this thread waits. At the end the connection goes back to the pool.

        ``ready``: None to start, else called back after a deferred wait (False: it timed
        out). Once the head is out, a failure (timeout, reset, broken framing, the client
        gone) cuts the client off: the only honest signal left (a truncated body must never
        look complete).
        """
        conn = self._relaying
        assert conn is not None
        wfile = self.wfile
        # minihttp's writer: bytes are only buffered by write() and pushed out as the client
        # takes them (send_some); a slow client is waited for on the event loop
        # (defer_until_writable), not on a thread. At most one upstream read is buffered.
        send_some = getattr(wfile, "send_some", None)
        try:
            if ready is not None:
                if not ready:
                    raise UpstreamTimeout("upstream timed out mid-body")
                conn.receive()
            if send_some is not None:
                wfile.hold_writes()
            while True:
                done = conn.relay_buffered(wfile.write)
                if send_some is None:
                    if done:
                        break
                    wfile.flush()  # the client sees what has arrived before we wait
                elif not send_some():
                    self._relay_ended = done
                    if self.defer_until_writable(self._relay_flushed, self._send_timeout()):
                        return
                    wfile.flush()  # no loop to wait on: wait here
                if done:
                    break
                if self.defer_until_readable(conn.sock, self._relay_body, self._job.ctx.timeout):
                    return
                conn.receive()
        except (OSError, h11.ProtocolError, UpstreamError):
            self._relaying = None
            self._drop(conn)
            self._abort_client()
            return
        self._relaying = None
        self._job.ctx.pool.release(conn)

    def _relay_flushed(self, ready: bool) -> None:
        """The slow client can take bytes again (``ready``; False: it took none for the send
        timeout): send what it takes, wait again, or go on with the relay."""
        conn = self._relaying
        assert conn is not None
        try:
            if not ready:
                raise TimeoutError("client took no bytes for the send timeout")
            if not self.wfile.send_some():
                if self.defer_until_writable(self._relay_flushed, self._send_timeout()):
                    return
                self.wfile.flush()
        except OSError:
            self._relaying = None
            self._drop(conn)
            self._abort_client()
            return
        if self._relay_ended:
            self._relaying = None
            self._job.ctx.pool.release(conn)
            return
        self._relay_body(None)

    def _send_timeout(self) -> float | None:
        """How long a client may take no bytes of a response (the server's send_timeout)."""
        return self._limits().send_timeout

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
