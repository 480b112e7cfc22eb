"""A request body relayed upstream as it arrives, holding no thread (issue 16 item 2).

Before this, the proxy sent a request body by reading ``self.rfile`` blocking: a slow
uploader held its handler's thread (on the pooled server, the loop lost that thread and the
upload took a worker) for the whole upload. :class:`Upload` relays the body with
non-blocking steps instead: it reads what the client has sent
(:meth:`minihttp._body.BodyReader.read_nowait`), frames it with the exchange's h11 client
(Content-Length as declared, or chunked: re-framed, trailers dropped), sends what the
upstream takes (``MSG_DONTWAIT``), and when either side has to be waited for it defers the
wait to the server (``defer_until_readable`` on the client's connection,
``defer_until_writable`` on the upstream socket). On the pooled server's loop the upload then
holds no thread; elsewhere the handler's thread waits with ``poll`` (same bytes, same order).

Rules of this module (RFC 9112 sections 6 and 7, RFC 9110 section 10.1.1):

* Bounded: the client is read only when nothing is waiting to go upstream (one read of at
  most ``_READ`` bytes, plus its framing, in memory per upload); the request head leaves
  together with the first body bytes when they are already there (one segment).
* Strict: the upstream gets exactly the body as parsed (chunked decoded and re-framed by
  h11; a Content-Length body exactly that long). A client that leaves mid-body, a body
  that breaks its framing or passes ``max_body``, or a wait that times out ends the
  exchange and the upstream connection is closed, never pooled (a half-sent request must
  not be completed by the next one).
* Fair: after :data:`TURN` bytes in one go the relay, with its next bytes at hand, waits
  for the upstream to take them (immediate when it has room), so one fast upload never
  keeps the loop; never for the client, whose next bytes may never come (the body whole,
  its end not yet framed: :meth:`Upload._yield_turn`).
* ``Expect: 100-continue`` is answered by the body reader before the first read (lazily),
  as for a blocking read.
* Used only when both sockets are plain TCP sockets and the body reader can read without
  blocking (:meth:`Upload._can_stream`); otherwise the caller sends the body blocking.
"""

from __future__ import annotations

import select
import socket
from typing import TYPE_CHECKING, Any, NoReturn

import h11

from minihttp.errors import RequestTimeout
from minihttp.proxy.connections import UpstreamConnection, UpstreamError, UpstreamTimeout
from minihttp.proxy.route import Refuse, Routing

__all__ = ["READ_SIZE", "TURN", "Upload"]

#: Most client bytes read at once (and so buffered per upload).
READ_SIZE = 64 * 1024
#: Bytes relayed in one go before the loop serves others (fairness; see _yield_turn).
TURN = 256 * 1024

_END = h11.EndOfMessage()
_READABLE, _WRITABLE = select.POLLIN | select.POLLHUP | select.POLLERR, select.POLLOUT


class _ClientGone(ConnectionError):
    """The client connection failed while we read its body; the server closes it quietly."""


class _Pump:
    """One upload under way."""

    __slots__ = ("conn", "ended", "head_only", "out")

    def __init__(self, conn: UpstreamConnection, head: bytes) -> None:
        self.conn = conn
        #: Framed bytes read from the client (or the head), not yet taken by the upstream.
        self.out = head
        #: ``out`` holds only the request head (the first body bytes may join it).
        self.head_only = True
        #: The end of the body was framed (nothing more to read from the client).
        self.ended = False


def _wait(sock: Any, events: int, timeout: float | None) -> bool:
    """Wait on this thread until ``sock`` is ready for ``events`` (False: timed out)."""
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(None if timeout is None else max(timeout, 0.0) * 1000.0))


class Upload(Routing):
    """The streamed request body of an exchange (mixed into
    :class:`minihttp.proxy.upstream.Exchange`)."""

    _pump: _Pump | None = None
    _body_started = False

    if TYPE_CHECKING:
        def _await_response(self, conn: UpstreamConnection) -> None: ...
        def _drop(self, conn: UpstreamConnection) -> None: ...
        def _upstream_failed(self, conn: UpstreamConnection, exc: UpstreamError) -> None: ...
        def _send_plain(self, status: int, message: str,
                        headers: Any = None) -> None: ...
        @staticmethod
        def _upstream_error(conn: UpstreamConnection, exc: BaseException) -> NoReturn: ...

    def _can_stream(self, conn: UpstreamConnection) -> bool:
        """Whether this body can be relayed without blocking (see the rules above)."""
        rfile = self.rfile
        return (getattr(self.server, "defer_readable", None) is not None
                and type(self.connection) is socket.socket
                and type(conn.sock) is socket.socket
                and bool(getattr(rfile, "nowait", False)))

    def _stream_body(self, conn: UpstreamConnection, request: Any,
                     timeout: float | None) -> None:
        """Send the request head and relay the body as it arrives; then wait for the
        response (``_await_response``). Failures are answered as for a blocking send."""
        try:
            conn.set_timeout(timeout)
            try:
                head = conn.h11.send(request) or b""
            except (OSError, h11.ProtocolError) as exc:
                self._upstream_error(conn, exc)
        except UpstreamError as exc:
            self._upstream_failed(conn, exc)
            return
        except BaseException:
            self._drop(conn)
            raise
        self._pump = _Pump(conn, head)
        self._pumping(None)

    def _on_pump(self, ready: bool) -> None:
        """The deferred rest of the upload (the server calls it): as ``do_*`` would."""
        try:
            self._pumping(ready)
        except Refuse as refusal:
            self._send_plain(refusal.status, refusal.message, refusal.headers)

    def _pumping(self, ready: bool | None) -> None:
        """Relay until the body is all upstream, or defer a wait (``ready``: None to go
        on, else the outcome of the last wait; False: it timed out)."""
        pump = self._pump
        assert pump is not None
        conn = pump.conn
        sock = conn.sock
        try:
            try:
                if ready is False:
                    if pump.out:  # it waited for the upstream to take bytes
                        raise UpstreamTimeout("upstream took no request body bytes in time")
                    raise RequestTimeout("request body not received in time")
                budget = TURN
                while True:
                    if not pump.ended and (not pump.out or pump.head_only):
                        self._body_started = True
                        try:
                            piece = self.rfile.read_nowait(READ_SIZE)
                        except OSError as exc:  # the client left mid-body: not a 502
                            raise _ClientGone(str(exc)) from exc
                        if piece is None:
                            if not pump.out:
                                if self.defer_until_readable(self.connection, self._on_pump,
                                                             self._body_timeout()):
                                    return
                                if not _wait(self.connection, _READABLE, self._body_timeout()):
                                    raise RequestTimeout("request body not received in time")
                                continue
                        else:
                            framed = conn.h11.send(h11.Data(data=piece) if piece else _END)
                            pump.out += framed or b""
                            pump.ended = not piece
                    pump.head_only = False
                    if pump.out:
                        # After TURN bytes: yield with bytes at hand (see _yield_turn).
                        if budget <= 0 and not pump.ended and self._yield_turn(pump):
                            return
                        try:
                            sent = sock.send(pump.out, socket.MSG_DONTWAIT)
                        except (BlockingIOError, InterruptedError):
                            sent = 0
                        pump.out = pump.out[sent:]
                        budget -= sent
                        if pump.out:
                            timeout = self._job_timeout()
                            if self.defer_until_writable(self._on_pump, timeout, sock):
                                return
                            if not _wait(sock, _WRITABLE, timeout):
                                raise UpstreamTimeout(
                                    "upstream took no request body bytes in time")
                            continue
                    if pump.ended:
                        break
            except (_ClientGone, UpstreamError):
                raise
            except (OSError, h11.ProtocolError) as exc:
                self._upstream_error(conn, exc)
        except UpstreamError as exc:
            self._pump = None
            self.close_connection = True
            self._upstream_failed(conn, exc)  # no retry: the body has started
            return
        except BaseException:
            # The client left, broke its framing, passed max_body or timed out: the
            # upstream got a partial request; its connection is closed, never pooled.
            self._pump = None
            self.close_connection = True
            self._drop(conn)
            raise
        self._pump = None
        self._await_response(conn)

    def _yield_turn(self, pump: _Pump) -> bool:
        """After :data:`TURN` bytes in one go: let the loop serve others (a fast client
        and a fast upstream would otherwise keep the loop for the whole body, and lose it
        to the watchdog). Called with framed bytes at hand (``pump.out``): waits for the
        upstream to take them (immediate when it has room); False when the server cannot
        wait for it (go on here).

        Never a wait for the client: its next bytes may never come. The body may be whole
        already, its end not yet framed (that happens at the next read), or its next bytes
        may be buffered by the reader, where poll does not see them; the client, waiting
        for its response, then sent nothing more and the upload stalled until
        ``body_timeout`` (seen: a 3 MiB PUT through the proxy, 1 in 30, when the budget ran
        out as the last body bytes went out)."""
        return self.defer_until_writable(self._on_pump, self._job_timeout(), pump.conn.sock)

    def _body_timeout(self) -> float | None:
        """How long the client may send no body byte (the server's body_timeout)."""
        return self._limits().body_timeout

    def _job_timeout(self) -> float | None:
        return self._job.ctx.timeout  # type: ignore[attr-defined, no-any-return]
