"""The response writer: ``self.wfile`` on a socket, one response at a time.

Rules of this module:

* :class:`ResponseWriter` buffers the response head and body and sends them with one
  ``sendall`` at the end of the request (or past :data:`FLUSH_AT` bytes, or on ``flush``).
* It enforces the framing chosen for the response: a declared Content-Length is a promise
  (RFC 9112 section 6.3: a short message must not be followed by another on the connection).
"""

from __future__ import annotations

import socket
from typing import Any

from ._sockets import ClientDisconnected
from .http11 import LAST_CHUNK

__all__ = [
    "CHUNKED", "CLOSE", "FLUSH_AT", "LENGTH", "NOBODY", "PASSTHROUGH", "RAW", "ResponseTooLong",
    "ResponseWriter",
]

#: Buffered response bytes past which the writer sends without waiting for the request's end.
FLUSH_AT = 64 * 1024


class ResponseTooLong(ValueError):
    """A handler wrote more body bytes than the Content-Length it declared."""



RAW, LENGTH, CHUNKED, CLOSE, NOBODY, PASSTHROUGH = range(6)


class ResponseWriter:
    """``self.wfile`` on a socket: buffers, frames and sends one response at a time.

    Modes: RAW (nothing declared yet: bytes pass through, the connection will close), LENGTH
    (Content-Length: more raises :class:`ResponseTooLong`, fewer closes), CHUNKED (each write
    becomes a chunk, ``finish`` sends the last chunk), CLOSE (delimited by closing the
    connection), NOBODY (HEAD, 1xx, 204, 304: body bytes are dropped, RFC 9110 section 9.3.2
    and RFC 9112 section 6.3), PASSTHROUGH (the handler framed the body itself, e.g. its own
    ``Transfer-Encoding: chunked``).
    """

    __slots__ = ("_buf", "body_bytes", "broken", "closed", "committed", "dropped", "mode",
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
        #: Body bytes accepted for this response (for the access log).
        self.body_bytes = 0
        #: The response cannot be completed correctly: close the connection after it.
        self.broken = False
        self.dropped = 0

    # -- called by the server
    def start(self, head: bytes, mode: int, length: int = 0) -> None:
        """Queue the final response head and fix how its body is framed."""
        self._buf += head
        self.mode = mode
        self.remaining = length
        self.started = True

    def interim(self, head: bytes) -> None:
        """Send a 1xx response head now: the client is waiting for it."""
        self._buf += head
        self._send()

    def discard_unsent(self) -> bool:
        """Forget a response that is still wholly buffered (to replace it with an error).

        False when some of it is already on the wire: then it cannot be replaced.
        """
        if self.committed:
            return False
        self._buf.clear()
        self._reset()
        return True

    def finish(self) -> bool:
        """Complete the response and send what is buffered; True if the connection is reusable."""
        mode = self.mode
        ok = not self.broken
        if mode == LENGTH and ok and not self.remaining:
            # The common case: a complete Content-Length response, sent with one sendall.
            # (BaseHTTPRequestHandler._end_request inlines this branch: keep them in step.)
            buf = self._buf
            if buf:
                self.committed = True
                try:
                    self.sock.sendall(buf)
                finally:
                    buf.clear()
            self.mode = RAW
            self.started = self.committed = False
            self.body_bytes = self.dropped = 0
            return True
        if mode == CHUNKED:
            if ok:
                self._buf += LAST_CHUNK
        elif mode == LENGTH:
            ok = ok and self.remaining == 0
        elif mode in (RAW, CLOSE):
            ok = False
        if self._buf:
            self._send()
        self._reset()
        return ok

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
        finally:
            buf.clear()

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
            self.dropped += n
            return n
        elif mode == CHUNKED:
            if not n:
                return 0  # an empty chunk would end the body (RFC 9112 section 7.1)
            self._buf += b"%x\r\n" % n
            self._buf += b
            self._buf += b"\r\n"
            self.body_bytes += n
            if len(self._buf) >= FLUSH_AT:
                self._send()
            return n
        self.body_bytes += n
        buf = self._buf
        if len(buf) + n < FLUSH_AT:
            buf += b
        else:
            # A large write: send what is queued, then the data itself without copying it.
            if buf:
                self._send()
            self.committed = True
            self.sock.sendall(b)
        return n

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
        sent = self.sock.sendfile(file, offset, count)
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
