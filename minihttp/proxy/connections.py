"""Upstream side of the proxy: resolving, connecting, and a keep-alive connection pool.

Every upstream connection is driven by h11's client state machine, so the proxy's idea of
where one response ends is h11's (strict RFC 9112 section 6.3 framing), never a guess.

Rules of this module:

* Resolve once, check every resolved address against the deny-list, then connect to one of
  *those* addresses. The name is never resolved a second time, so a DNS answer cannot
  change between the check and the connect (no DNS-rebinding gap).
* A connection goes back to the pool only when h11 says both sides are DONE and
  ``start_next_cycle()`` succeeds; anything else (MUST_CLOSE, an error, a partially read
  body) closes it.
* The pool is bounded per (host, port) and in total; idle connections expire after
  ``idle_timeout`` and are dropped when found readable while idle (the upstream closed them
  or sent bytes nobody asked for -- either way they are unusable).
* Thread-safe: handler threads share one pool.

Speed: an upstream socket is blocking with kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO, as the
server's own sockets; see :data:`minihttp._sockets.KERNEL_TIMEOUTS`) so a ``send`` or ``recv`` is
one syscall, not a ``poll`` plus the call; responses are received into one buffer per
connection (no 64 KiB allocation per ``recv``); one ``h11.Connection`` serves every exchange
on its socket (``start_next_cycle``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import h11

from minihttp._sockets import KERNEL_TIMEOUTS, timeval
from minihttp.config import DEFAULT_LIMITS
from minihttp.errors import HTTPError
from minihttp.http11 import (
    CHUNKED,
    LENGTH,
    UNTIL_CLOSE,
    BadResponse,
    ChunkedDecoder,
    ResponseHead,
    parse_response_head,
)
from minihttp.proxy.strict import AmbiguousResponse, check_response_head, check_response_heads

__all__ = [
    "ConnectionPool",
    "DestinationDenied",
    "IPNetwork",
    "UpstreamConnection",
    "UpstreamError",
    "UpstreamTimeout",
    "address_in",
    "open_connection",
    "resolve",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_RECV = 64 * 1024
_END = h11.EndOfMessage()
#: An idle connection younger than this (seconds) is reused without a liveness poll.
POLL_AFTER = 0.005
#: Largest upstream response head h11 will buffer (its default, 16 KiB, is too tight for
#: real sites with many cookies).
MAX_RESPONSE_HEAD = 64 * 1024


class UpstreamError(Exception):
    """The upstream could not be reached or broke HTTP: answered with 502 Bad Gateway."""

    status = 502


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time: answered with 504 Gateway Timeout."""

    status = 504


class DestinationDenied(Exception):
    """The destination resolves to an address on the deny-list: answered with 403."""

    status = 403


def address_in(ip: str, networks: Iterable[IPNetwork]) -> bool:
    """True when ``ip`` (v4, v6 or v4-mapped v6, optional %scope) is in one of ``networks``."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    return any(a in net for a in candidates for net in networks if a.version == net.version)


def resolve(host: str, port: int, deny: Iterable[IPNetwork]) -> list[tuple[Any, ...]]:
    """getaddrinfo once; raise DestinationDenied if ANY answer is on the deny-list.

    Refusing when any answer is denied (rather than skipping to an allowed one) keeps a
    name that mixes public and internal addresses from being used as a way in.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UpstreamError(f"cannot resolve {host}") from exc
    deny = tuple(deny)
    if deny:
        for info in infos:
            if address_in(str(info[4][0]), deny):
                raise DestinationDenied(f"destination {host} is not allowed")
    return infos


def open_connection(
    host: str, port: int, *, timeout: float | None, deny: Iterable[IPNetwork] = ()
) -> socket.socket:
    """Resolve (checked against ``deny``) and connect to the first address that answers."""
    infos = resolve(host, port, deny)
    last: OSError | None = None
    for family, type_, proto, _name, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if isinstance(last, TimeoutError):
        raise UpstreamTimeout(f"timed out connecting to {host}:{port}") from last
    raise UpstreamError(f"cannot connect to {host}:{port}") from last


#: A relayed chunked response body has no size bound of ours (the client's writer streams
#: it); chunk lines and trailers keep the server's bounds.
_RELAY_LIMITS = dataclasses.replace(DEFAULT_LIMITS, max_body=2**62)


class _Raw:
    """The state of one exchange that bypasses h11 (:meth:`UpstreamConnection.send_raw`):
    the request went out as bytes we built; the response is read by our own strict parser
    (:func:`minihttp.http11.parse_response_head`) and its body framed here."""

    __slots__ = ("buf", "decoder", "done", "eof", "framing", "head_request", "keep", "left")

    def __init__(self, head_request: bool) -> None:
        self.head_request = head_request
        self.buf = bytearray()  # received, not consumed
        self.eof = False
        self.framing = -1  # before the head
        self.left = 0  # LENGTH: body bytes still to relay
        self.decoder: ChunkedDecoder | None = None
        self.done = False  # the whole response was relayed
        self.keep = False  # and the connection may carry another exchange


class UpstreamConnection:
    """One socket to an upstream plus the h11 client state machine that frames it (or,
    for a bodyless request of the fast path, our own framing: :meth:`send_raw`)."""

    #: The exchange under way bypasses h11 (None: h11 frames it).
    _raw: _Raw | None = None

    def __init__(self, sock: socket.socket, key: tuple[str, int]) -> None:
        self.sock = sock
        self.key = key
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        #: True once this connection has carried a complete exchange (it came from the pool).
        self.reused = False
        #: True once any byte of the current response has arrived.
        self.got_response_bytes = False
        self.idle_since = time.monotonic()
        self._pending = b""
        #: True while nothing of the current response has been asked of h11 (its receive
        #: buffer is empty at the start of every cycle): the next read needs no NEED_DATA.
        self._fresh = True
        self._buf = bytearray(_RECV)
        self._view = memoryview(self._buf)
        self._timeout: float | None = -1.0  # not set yet
        self._kernel = KERNEL_TIMEOUTS and type(sock) is socket.socket
        #: The bytes of the response so far, kept while its head is read (None otherwise),
        #: for the strict check h11 does not make (:mod:`minihttp.proxy.strict`).
        self._collect: bytearray | None = None

    def set_timeout(self, timeout: float | None) -> None:
        """Bound each later send and recv by ``timeout`` seconds (None: no bound).

        A timeout surfaces as :class:`TimeoutError` from :meth:`send` / :meth:`next_event`.
        """
        if timeout == self._timeout:
            return
        self._timeout = timeout
        if self._kernel:
            self.sock.settimeout(None)
            value = timeval(timeout)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        else:
            self.sock.settimeout(timeout)

    def send(self, event: Any, *, flush: bool = True) -> None:
        """Serialize ``event`` with h11 and write it; socket errors propagate.

        With ``flush=False`` the bytes wait for the next send, so a request head and the
        first piece of its body leave in one segment (no Nagle/delayed-ACK stall, one
        syscall fewer).
        """
        data = self.h11.send(event)
        if data:
            self._pending += data
        if flush and self._pending:
            pending, self._pending = self._pending, b""
            try:
                self.sock.sendall(pending)
            except BlockingIOError:
                raise TimeoutError("upstream send timed out") from None  # SO_SNDTIMEO

    def send_bodyless(self, request: Any, timeout: float | bool | None = False) -> None:
        """Send ``request`` and its end (no body) in one ``sendall``.

        The two h11 events a bodyless request needs (RFC 9112 section 6.3: no framing
        fields means no body), serialized back to back, then one system call. A
        ``timeout`` (seconds or None) other than False is applied first, as by
        :meth:`set_timeout` (one call fewer per request on the hot path).
        """
        if timeout is not False and timeout != self._timeout:
            self.set_timeout(timeout)
        h = self.h11
        data = h.send(request)
        end = h.send(_END)
        if self._pending:
            data, self._pending = self._pending + data, b""
        try:
            self.sock.sendall(data + end if end else data)
        except BlockingIOError:
            raise TimeoutError("upstream send timed out") from None  # SO_SNDTIMEO

    def send_raw(self, data: bytes, head_request: bool,
                 timeout: float | bool | None = False) -> None:
        """Send a whole bodyless request we serialized (the fast path's), bypassing h11:
        its response is then read by :meth:`response_head` / :meth:`relay_buffered` with
        our own parser. h11's state is left untouched (idle), so the next exchange on this
        connection may use either."""
        if timeout is not False and timeout != self._timeout:
            self.set_timeout(timeout)
        self._raw = _Raw(head_request)
        try:
            self.sock.sendall(data)
        except BlockingIOError:
            raise TimeoutError("upstream send timed out") from None  # SO_SNDTIMEO

    def next_event(self) -> Any:
        """Next h11 event, reading from the socket as needed (socket timeout applies).

        The first call after a request was sent reads before asking h11: its receive buffer
        is known to be empty then (the pool only keeps connections whose buffer is empty,
        see :meth:`ConnectionPool.release`), so asking first would only yield NEED_DATA.
        """
        h = self.h11
        if self._fresh:
            self._fresh = False
            self._receive()
        event = h.next_event()
        while event is h11.NEED_DATA:
            self._receive()
            event = h.next_event()
        return event

    def _receive(self) -> None:
        """One ``recv`` into the connection's buffer, handed to h11 (``b""`` at EOF)."""
        try:
            n = self.sock.recv_into(self._buf)
        except BlockingIOError:
            raise TimeoutError("upstream read timed out") from None  # SO_RCVTIMEO
        raw = self._raw
        if n:
            self.got_response_bytes = True
            if raw is not None:
                raw.buf += self._view[:n]
            else:
                if self._collect is not None:
                    self._collect += self._view[:n]
                # h11 copies into its own buffer (bytearray +=), so a view is enough; its
                # annotation says bytes only (no cast(): it is a call, once per response).
                self.h11.receive_data(self._view[:n])  # type: ignore[arg-type]
        elif raw is not None:
            raw.eof = True
        else:
            self.h11.receive_data(b"")

    def response_head(self) -> Any:
        """The final response head (h11.Response); 1xx heads are skipped.

        100/103 are ours to drop (RFC 9110 section 15.2); a 101 is never asked for (no
        Upgrade is forwarded; h11 refuses it). Raises :class:`UpstreamError` when the
        upstream closes before a head, or when a head is ambiguous
        (:func:`minihttp.proxy.strict.check_response_heads`, on the bytes received: h11
        accepts some ambiguous heads, and for those it refuses this says why).
        """
        raw = self._raw
        if raw is not None:
            return self._raw_head(raw)
        self._collect = collected = bytearray()
        try:
            while True:
                event = self.next_event()
                kind = type(event)
                if kind is h11.Response:
                    break
                if kind is h11.InformationalResponse:
                    continue
                raise UpstreamError("upstream closed without a response")
        except h11.RemoteProtocolError as exc:
            # Say what was wrong when it is a framing ambiguity; h11's words otherwise.
            try:
                check_response_heads(collected)
            except AmbiguousResponse as ambiguous:
                raise UpstreamError(str(ambiguous)) from exc
            raise UpstreamError(f"upstream sent a malformed response ({exc})") from exc
        finally:
            self._collect = None
        try:
            check_response_heads(collected)
        except AmbiguousResponse as exc:
            raise UpstreamError(str(exc)) from exc
        return event

    def _raw_head(self, raw: _Raw) -> ResponseHead:
        """:meth:`response_head` of a raw exchange: our parser, 1xx skipped, 101 and
        ambiguous framing refused (:class:`UpstreamError`)."""
        buf = raw.buf
        self._fresh = False
        while True:
            if not buf:
                if raw.eof:
                    raise UpstreamError("upstream closed without a response")
                self._receive()
                continue
            try:
                parsed = parse_response_head(buf, head_request=raw.head_request,
                                             max_head=MAX_RESPONSE_HEAD)
            except BadResponse as exc:
                try:  # the reason minihttp.proxy.strict gives, when it is an ambiguity
                    check_response_heads(buf)
                except AmbiguousResponse as ambiguous:
                    raise UpstreamError(str(ambiguous)) from exc
                raise UpstreamError(f"upstream response has invalid framing ({exc})") from exc
            if parsed is None:
                if raw.eof:
                    raise UpstreamError("upstream closed without a response")
                self._receive()
                continue
            head, used = parsed
            try:  # the same strict rules as on the h11 path (minihttp.proxy.strict)
                check_response_head(buf[:used])
            except AmbiguousResponse as exc:
                raise UpstreamError(str(exc)) from exc
            del buf[:used]
            status = head.status_code
            if status < 200:
                if status == 101:  # never asked for: no Upgrade is forwarded
                    raise UpstreamError("upstream response has invalid framing (101)")
                continue  # 100/103: ours to drop (RFC 9110 section 15.2)
            raw.framing, raw.left, raw.keep = head.framing, head.length, head.keep_alive
            if head.framing == CHUNKED:
                raw.decoder = ChunkedDecoder(_RELAY_LIMITS)
            return head

    def _raw_relay(self, raw: _Raw, write: Callable[[bytes], Any]) -> bool:
        """:meth:`relay_buffered` of a raw exchange (its body framed by the head)."""
        buf = raw.buf
        framing = raw.framing
        if framing == LENGTH:
            if buf:
                take = min(raw.left, len(buf))
                if take:
                    write(bytes(buf[:take]))
                    del buf[:take]
                    raw.left -= take
            if raw.left:
                if raw.eof:
                    raise UpstreamError("upstream ended the response early")
                return False
        elif framing == CHUNKED:
            decoder = raw.decoder
            assert decoder is not None
            if buf:
                try:
                    pieces = decoder.feed(buf)
                except HTTPError as exc:
                    raise UpstreamError(f"bad chunked body from upstream ({exc})") from exc
                buf.clear()
                for piece in pieces:
                    write(piece)
            if not decoder.done:
                if raw.eof:
                    raise UpstreamError("upstream ended the response early")
                return False
            buf += decoder.unused  # bytes past the body: the connection is not reused
        elif framing == UNTIL_CLOSE:
            if buf:
                write(bytes(buf))
                buf.clear()
            if not raw.eof:
                return False
        raw.done = True
        return True

    def relay_buffered(self, write: Callable[[bytes], Any]) -> bool:
        """Pass the body h11 has buffered to ``write``: True at its end (EndOfMessage),
        False when more must be read first (:meth:`receive`; nothing is read here).

        Raises :class:`UpstreamError` when the upstream ends the body early; h11's protocol
        errors propagate.
        """
        raw = self._raw
        if raw is not None:
            return self._raw_relay(raw, write)
        next_event = self.h11.next_event
        data, end, need = h11.Data, h11.EndOfMessage, h11.NEED_DATA
        while True:
            event: Any = next_event()
            kind = type(event)
            if kind is data:
                write(event.data)
            elif kind is end:
                return True
            elif event is need:
                return False
            else:
                raise UpstreamError("upstream ended the response early")

    def receive(self) -> None:
        """One ``recv`` for h11 (it waits up to the socket timeout; TimeoutError past it)."""
        self._receive()

    def reusable(self) -> bool:
        """True when h11 says this exchange is complete on both sides (RFC 9112 sec. 9.3)
        and no byte arrived past the response (an idle upstream must be silent: such bytes
        would be taken as the answer to the next request)."""
        raw = self._raw
        if raw is not None:
            return raw.done and raw.keep and not raw.buf
        h = self.h11
        return (h.our_state is h11.DONE and h.their_state is h11.DONE
                and not h.trailing_data[0])

    def next_cycle(self) -> None:
        """Ready the connection for the next exchange on this socket (h11's next cycle;
        after a raw exchange h11 is idle already)."""
        if self._raw is not None:
            self._raw = None
        else:
            self.h11.start_next_cycle()
        self._fresh = True

    def close(self) -> None:
        self._view.release()
        try:
            self.sock.close()
        except OSError:
            pass


class ConnectionPool:
    """Idle keep-alive upstream connections, bounded per (host, port) and in total."""

    def __init__(
        self, *, max_idle_per_host: int = 32, max_idle_total: int = 128, idle_timeout: float = 30.0
    ) -> None:
        self.max_idle_per_host = max_idle_per_host
        self.max_idle_total = max_idle_total
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self._count = 0  # idle connections over all keys
        self._next_sweep = 0.0  # monotonic time of the next scan for expired connections
        self._lock = threading.Lock()
        self._closed = False

    def idle_count(self, key: tuple[str, int] | None = None) -> int:
        """Number of idle connections (for one key, or all)."""
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, ()))
            return self._count

    def acquire(self, key: tuple[str, int]) -> UpstreamConnection | None:
        """Most recently used live idle connection for ``key``, or None.

        The liveness poll runs outside the lock (it is a syscall: other threads would queue
        on the lock meanwhile), and is skipped for a connection idle less than
        :data:`POLL_AFTER`: a close or stray bytes that recent cannot be told from ones
        arriving just after the poll, which no check can catch (idempotent requests are
        retried on a fresh connection, RFC 9110 section 9.2.2).
        """
        while True:
            now = time.monotonic()
            with self._lock:
                stale = self._sweep_locked(now) if now >= self._next_sweep else []
                conns = self._idle.get(key)
                conn = conns.pop() if conns else None
                if conn is not None:
                    self._count -= 1
                    if not conns:
                        del self._idle[key]
            for old in stale:
                old.close()
            if conn is None:
                return None
            idle = now - conn.idle_since
            if idle <= self.idle_timeout and (idle < POLL_AFTER or self._looks_alive(conn)):
                conn.reused = True
                conn.got_response_bytes = False
                return conn
            conn.close()

    def connect(
        self, host: str, port: int, *, timeout: float | None, deny: Iterable[IPNetwork] = ()
    ) -> UpstreamConnection:
        """A fresh connection (not from the pool)."""
        sock = open_connection(host, port, timeout=timeout, deny=deny)
        return UpstreamConnection(sock, (host.lower(), port))

    def release(self, conn: UpstreamConnection) -> None:
        """Return ``conn`` to the pool if h11 allows another cycle on it; else close it."""
        raw = conn._raw
        if raw is not None:  # a raw exchange: h11 was not used (still idle)
            conn._raw = None
            if self._closed or not raw.done or not raw.keep or raw.buf:
                conn.close()
                return
        else:
            h = conn.h11
            # conn.reusable() and conn.next_cycle(), inline: this runs once per request.
            if (self._closed or h.our_state is not h11.DONE or h.their_state is not h11.DONE
                    or h.trailing_data[0]):
                conn.close()
                return
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                conn.close()
                return
        conn._fresh = True
        conn.idle_since = now = time.monotonic()
        key = conn.key
        with self._lock:
            drop = self._sweep_locked(now) if now >= self._next_sweep else []
            conns = self._idle.get(key)
            if conns is None:
                conns = self._idle[key] = []
            conns.append(conn)
            self._count += 1
            if len(conns) > self.max_idle_per_host:
                drop.append(conns.pop(0))
                self._count -= 1
            if self._count > self.max_idle_total and conns:
                drop.append(conns.pop(0))
                self._count -= 1
            if not conns:
                del self._idle[key]
        for c in drop:
            c.close()

    def close(self) -> None:
        """Close every idle connection; later releases close instead of pooling."""
        with self._lock:
            self._closed = True
            conns = [c for v in self._idle.values() for c in v]
            self._idle.clear()
            self._count = 0
        for c in conns:
            c.close()

    def _sweep_locked(self, now: float) -> list[UpstreamConnection]:
        """Expired idle connections of every key, removed; a full scan at most a few times
        per ``idle_timeout`` (a connection taken by :meth:`acquire` is checked on its own)."""
        if now < self._next_sweep:
            return []
        self._next_sweep = now + min(1.0, self.idle_timeout / 4)
        expired: list[UpstreamConnection] = []
        for key in list(self._idle):
            keep: list[UpstreamConnection] = []
            for c in self._idle[key]:
                (expired if now - c.idle_since > self.idle_timeout else keep).append(c)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        self._count -= len(expired)
        return expired

    @staticmethod
    def _looks_alive(conn: UpstreamConnection) -> bool:
        # An idle HTTP/1.1 connection must be silent; readable means FIN, RST or stray bytes.
        # poll(), not select(): select() fails on descriptors above FD_SETSIZE.
        try:
            poller = select.poll()
            poller.register(conn.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
