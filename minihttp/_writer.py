"""The response writer: ``self.wfile`` on a socket, one response at a time.

Rules of this module:

* :class:`ResponseWriter` buffers the response head and body and sends them with one
  ``sendall`` at the end of the request (or past :data:`FLUSH_AT` bytes, or on ``flush``).
* It enforces the framing chosen for the response: a declared Content-Length is a promise
  (RFC 9112 section 6.3: a short message must not be followed by another on the connection).
* How a response ends is decided in one place, :meth:`ResponseWriter.end` (its docstring
  is the table of rules); the handler only turns the ending into a log line and a close.
* ``body_bytes`` is what the access log reports: body bytes handed to the socket or queued
  for it. A send that fails takes back what did not leave: counted for a large write
  (:meth:`_sendall`) and for ``sendfile`` (from the file's position, where
  ``socket.sendfile`` leaves it), all of a failed buffer (at most :data:`FLUSH_AT`). An
  interrupted download is logged with the bytes that went out, not 0 nor all of it.
* Its state is its own: other modules call its methods and read ``body_bytes`` and
  ``started``; the only field they set is ``broken``. Nothing outside this module touches an
  underscored name of it (tests/test_writer_api.py scans the package to keep it so).
"""

from __future__ import annotations

import socket
from typing import Any

from ._sockets import ClientDisconnected
from .http11 import LAST_CHUNK

__all__ = [
    "CHUNKED", "CLOSE", "END_CLOSE", "END_KEEP", "END_NO_RESPONSE", "END_SHORT",
    "FLUSH_AT", "LENGTH", "NOBODY", "PASSTHROUGH", "RAW", "ResponseNotSent", "ResponseTooLong",
    "ResponseWriter",
]

#: Buffered response bytes past which the writer sends without waiting for the request's end.
FLUSH_AT = 64 * 1024
#: Non-blocking send flag for ``send_some`` (0 where the platform has none).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class ResponseTooLong(ValueError):
    """A handler wrote more body bytes than the Content-Length it declared."""


class ResponseNotSent(OSError):
    """:meth:`ResponseWriter.end` could not send: the socket's error is ``__cause__``.

    ``ending`` is how the response ended all the same (an ``END_*``), so that a handler's
    bug (END_SHORT, END_NO_RESPONSE) is still reported when the client also went away.
    """

    def __init__(self, ending: int) -> None:
        super().__init__("the end of the response could not be sent")
        self.ending = ending


RAW, LENGTH, CHUNKED, CLOSE, NOBODY, PASSTHROUGH = range(6)

# How a response ended: what :meth:`ResponseWriter.end` returns. Only END_KEEP lets the
# connection carry another request; the others say why it must close (the handler logs the
# two that are a handler's bug).
#: Complete and delimited by its own framing: the connection may be reused.
END_KEEP = 0
#: Delimited by closing the connection, or broken (the handler failed, the client left).
END_CLOSE = 1
#: Fewer body bytes than the Content-Length declared: a handler bug; the client would wait
#: for the rest or read the next response as it (RFC 9112 section 6.3).
END_SHORT = 2
#: No head declared and nothing sent before the end: the handler sent no response.
END_NO_RESPONSE = 3


class ResponseWriter:
    """``self.wfile`` on a socket: buffers, frames and sends one response at a time.

    Modes: RAW (nothing declared yet: bytes pass through, the connection will close), LENGTH
    (Content-Length: more raises :class:`ResponseTooLong`, fewer closes), CHUNKED (each write
    becomes a chunk, ``finish`` sends the last chunk), CLOSE (delimited by closing the
    connection), NOBODY (HEAD, 1xx, 204, 304: body bytes are dropped, RFC 9110 section 9.3.2
    and RFC 9112 section 6.3), PASSTHROUGH (the handler framed the body itself, e.g. its own
    ``Transfer-Encoding: chunked``).
    """

    __slots__ = ("_buf", "body_bytes", "broken", "closed", "committed", "hold", "mode",
                 "remaining", "sock", "started")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.mode = RAW
        self.remaining = 0
        #: A final response head was handed over for this request.
        self.started = False
        #: Bytes of this response already given to the socket (the head may be among them).
        self.committed = False
        #: Body bytes of this response sent or queued (for the access log; see the rules).
        self.body_bytes = 0
        #: The response cannot be completed correctly: close the connection after it.
        self.broken = False
        #: ``write`` only buffers, never sends (see :meth:`send_some`); for this response.
        self.hold = False

    # -- called by the server
    def start(self, head: bytes, mode: int, length: int = 0) -> None:
        """Queue the final response head and fix how its body is framed."""
        self._buf += head
        self.mode = mode
        self.remaining = length
        self.started = True

    def interim(self, head: bytes) -> None:
        """Send a 1xx response head now: the client is waiting for it.

        A 1xx is not part of the final response (RFC 9110 section 15.2: a final response
        follows it), so sending one does not commit that: a handler that fails after
        ``100 Continue`` still gets its 500 instead of a silently closed connection.
        """
        committed = self.committed or bool(self._buf)
        self._buf += head
        self._send()
        self.committed = committed

    def discard_unsent(self) -> bool:
        """Forget a response that is still wholly buffered (to replace it with an error).

        False when some of it is already on the wire: then it cannot be replaced.
        """
        if self.committed:
            return False
        self._buf.clear()
        self._reset()
        return True

    def end(self) -> int:
        """Complete the response, send what is buffered, and say how it ended (``END_*``).

        The rules, in order (the first that matches decides; what is buffered is sent in
        every case):

        ===========  =======================  ================  ===================
        mode         when                     added             ending
        ===========  =======================  ================  ===================
        any          ``broken``               nothing [1]_      END_CLOSE
        LENGTH       all declared bytes sent                    END_KEEP
        LENGTH       bytes missing                              END_SHORT [2]_
        CHUNKED                               the last chunk    END_KEEP
        NOBODY                                                  END_KEEP
        PASSTHROUGH                                             END_KEEP [3]_
        CLOSE                                                   END_CLOSE
        RAW          some bytes sent before                     END_CLOSE [4]_
        RAW          nothing sent before                        END_NO_RESPONSE
        ===========  =======================  ================  ===================

        .. [1] no last chunk: the client sees a truncated chunked body as truncated.
        .. [2] RFC 9112 section 6.3: the client would wait for the rest, or take the next
           response for it.
        .. [3] the handler framed the body itself (its own ``Transfer-Encoding: chunked``).
        .. [4] raw bytes (no head through ``start``): no framing to trust.

        Afterwards the writer is ready for the next response, also when the send fails: then
        it raises :class:`ResponseNotSent` (the connection must close).
        """
        # One straight path for every mode, the common one (LENGTH, complete) first; the
        # handler calls this instead of keeping its own copy (measured: see
        # BaseHTTPRequestHandler._end_request in server.py).
        mode = self.mode
        buf = self._buf
        if self.broken:
            ending = END_CLOSE
        elif mode == LENGTH:
            ending = END_SHORT if self.remaining else END_KEEP
        elif mode == CHUNKED:
            buf += LAST_CHUNK
            ending = END_KEEP
        elif mode in (NOBODY, PASSTHROUGH):
            ending = END_KEEP
        elif mode == CLOSE or self.committed:
            ending = END_CLOSE
        else:
            ending = END_NO_RESPONSE
        # _reset(), inlined (the hot path), before the send so that a failure leaves it done;
        # ``remaining`` is left: it means something only in LENGTH mode, which start() sets.
        self.mode = RAW
        self.body_bytes = 0
        self.started = self.committed = self.broken = False
        if buf:
            try:
                self.sock.sendall(buf)
            except OSError as err:
                self._drop_buffer()
                raise ResponseNotSent(ending) from err
            buf.clear()
        return ending

    def finish(self) -> bool:
        """Complete the response and send what is buffered; True if the connection is reusable."""
        return self.end() == END_KEEP

    def abort(self) -> None:
        """Send what is buffered without completing the message; the connection must close."""
        self.broken = True
        if self._buf:
            self._send()

    def _send(self) -> None:
        buf = self._buf
        self.committed = True
        try:
            self.sock.sendall(buf)
        except BaseException:
            # How much of it left is unknown: count none of its body bytes (the log then
            # says what surely went out; if the head is in ``buf``, all body bytes are).
            self.body_bytes = max(0, self.body_bytes - len(buf))
            self._drop_buffer()
            raise
        buf.clear()

    def _sendall(self, data: Any) -> None:
        """``sock.sendall(data)`` for a large body write that, when it fails, takes the
        bytes that did not leave off ``body_bytes`` (``sendall`` does not say how far it
        got, and a handler may write megabytes at once). Buffered sends keep ``sendall``."""
        sock = self.sock
        with memoryview(data) as view:
            total = view.nbytes
            sent = 0
            try:
                while sent < total:
                    sent += sock.send(view[sent:])
            except BaseException:
                self.body_bytes = max(0, self.body_bytes - (total - sent))
                raise

    def _drop_buffer(self) -> None:
        """After a failed send: a new buffer, not ``clear()``. ``SSLSocket.sendall`` holds a
        memoryview of the old one that lives on in the exception's traceback, and while
        anything keeps that exception (a log record), resizing the buffer raises BufferError."""
        self._buf = bytearray()

    # -- file API
    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        """Queue body bytes under the response's framing; returns their length."""
        mode = self.mode
        if mode == LENGTH and b.__class__ is bytes:
            # The common case: a bytes body under a Content-Length, buffered.
            n = len(b)
            remaining = self.remaining
            buf = self._buf
            if n <= remaining and len(buf) + n < FLUSH_AT:
                self.remaining = remaining - n
                self.body_bytes += n
                buf += b
                return n
        if isinstance(b, (bytes, bytearray)):
            n = len(b)
        else:
            with memoryview(b) as view:
                n = view.nbytes
                b = view.tobytes()
        mode = self.mode
        if mode == LENGTH:
            if n > self.remaining:
                self.broken = True
                raise ResponseTooLong(
                    f"response body longer than its Content-Length ({n} bytes written, "
                    f"{self.remaining} left)")
            self.remaining -= n
        elif mode == NOBODY:
            return n
        elif mode == CHUNKED:
            if not n:
                return 0  # an empty chunk would end the body (RFC 9112 section 7.1)
            self._buf += b"%x\r\n" % n
            self._buf += b
            self._buf += b"\r\n"
            self.body_bytes += n
            if len(self._buf) >= FLUSH_AT and not self.hold:
                self._send()
            return n
        self.body_bytes += n
        buf = self._buf
        if len(buf) + n < FLUSH_AT or self.hold:
            buf += b
        else:
            # A large write: send what is queued, then the data itself without copying it.
            if buf:
                self._send()
            self.committed = True
            self._sendall(b)
        return n

    def pending(self) -> int:
        """Bytes buffered, not sent yet."""
        return len(self._buf)

    def hold_writes(self) -> None:
        """From now on (this response) ``write`` only buffers; see :meth:`send_some`."""
        self.hold = True

    def send_some(self) -> bool:
        """Send what the socket takes now without waiting; True when nothing is left
        buffered. For a handler that waits for a slow client on an event loop
        (``defer_until_writable``) instead of blocking in ``flush``; with ``hold`` set,
        ``write`` only buffers (what it is given must then be bounded by the caller). A
        socket that cannot send without waiting this way (TLS) is flushed blocking."""
        buf = self._buf
        if not buf:
            return True
        if _DONTWAIT == 0 or type(self.sock) is not socket.socket:
            self._send()
            return True
        self.committed = True
        try:
            sent = self.sock.send(buf, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except BaseException:
            self._drop_buffer()
            raise
        del buf[:sent]
        return not buf

    def flush(self) -> None:
        """Send what is buffered now (a streaming response)."""
        if self._buf:
            self._send()

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send part of a regular file as body bytes (``socket.sendfile``: zero-copy on TCP).

        Framing is applied as for :meth:`write`; returns the bytes sent.
        """
        if count is None:
            import os

            count = os.fstat(file.fileno()).st_size - offset
        if count <= 0:
            return 0
        mode = self.mode
        if mode == NOBODY:
            return 0
        if mode == LENGTH:
            if count > self.remaining:
                self.broken = True
                raise ResponseTooLong("sendfile past the response's Content-Length")
            self.remaining -= count
        if mode == CHUNKED:
            self._buf += b"%x\r\n" % count
        self.flush()
        self.committed = True
        # socket.sendfile leaves the file at offset + bytes sent when it fails after sending
        # some (and where it was when it sent none): start from ``offset`` to read it back.
        file.seek(offset)
        try:
            sent = self.sock.sendfile(file, offset, count)
        except BaseException:
            self.broken = True
            self.body_bytes += min(max(file.tell() - offset, 0), count)
            raise
        self.body_bytes += sent
        if sent != count:
            self.broken = True
            raise ClientDisconnected("file shorter than announced")
        if mode == CHUNKED:
            self._buf += b"\r\n"
        return sent

    def close(self) -> None:
        """Send anything still buffered; writes after this fail."""
        if not self.closed:
            try:
                self.flush()
            except OSError:
                pass  # the client is gone
            self.closed = True

    def fileno(self) -> int:
        return self.sock.fileno()
