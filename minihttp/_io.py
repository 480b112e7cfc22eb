"""Connection I/O for the HTTP server: a buffered socket reader, body readers, a response writer.

Why not ``socket.makefile``: a request head is found in one buffer with one search
(``http11.find_head_end``) after one ``recv`` per fill, instead of a ``readline`` call per
line; and the per-connection state (socket + unread bytes) lives in one object,
:class:`SocketReader`, so a connection can be parked in a selector between requests and
resumed later (``feed`` bytes received elsewhere, ask ``has_request``).

Rules of this module:

* A reader never hands out bytes past the end of the current message. Body readers are
  bounded by Content-Length or by the chunked framing (RFC 9112 sections 6.3, 7.1); bytes
  after a chunked body go back into the connection's buffer (``unread``), so a pipelined
  request is never read as body, nor a body as a request.
* Timeouts: the head has a *deadline* from its first byte (RFC 9112 section 9.8 lets a server
  close slow connections; per-``recv`` timeouts would let a slowloris trickle forever); an
  idle keep-alive wait ends silently; each body read has its own timeout. The socket timeout is
  only changed when the wanted value differs from the current one (a syscall saved per request).
* :class:`ResponseWriter` buffers the response head and body and sends them with one
  ``sendall`` at the end of the request (or past :data:`FLUSH_AT` bytes, or on ``flush``), and
  enforces the framing chosen for the response: a declared Content-Length is a promise
  (RFC 9112 section 6.3: a short message must not be followed by another on the connection).
"""

from __future__ import annotations

import io
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any, Protocol

from .config import DEFAULT_LIMITS, Limits
from .errors import BadRequest, PayloadTooLarge, RequestTimeout, URITooLong
from .http11 import LAST_CHUNK, ChunkedDecoder, find_head_end

#: A Content-Length field line of a head, any case (RFC 9110 section 8.6: 1*DIGIT).
_LENGTH_FIELD = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,18})[ \t]*(?=\r\n)",
                           re.IGNORECASE)
#: Fields that make waiting for the body wrong (chunked: size unknown; Expect: the client
#: waits for our 100 Continue before it sends the body).
_NO_WAIT_FIELD = re.compile(rb"\r\n(?:transfer-encoding|expect):", re.IGNORECASE)

__all__ = [
    "EMPTY_BODY",
    "FLUSH_AT",
    "KERNEL_TIMEOUTS",
    "BodyReader",
    "ChunkedBody",
    "ClientDisconnected",
    "FileSource",
    "LengthBody",
    "ResponseTooLong",
    "ResponseWriter",
    "SocketReader",
    "Source",
    "set_send_timeout",
]

#: Buffered response bytes past which the writer sends without waiting for the request's end.
FLUSH_AT = 64 * 1024
#: Bytes asked of the socket per ``recv``.
RECV_SIZE = 64 * 1024
#: Size of each connection's preallocated head buffer (one ``recv_into`` per idle wait).
#: ``recv(n)`` allocates an ``n``-byte object and shrinks it on every call; ``recv_into`` a
#: buffer allocated once per connection, then one copy of the bytes received, is cheaper.
HEAD_RECV_SIZE = 16 * 1024


#: Kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO) on a blocking socket instead of Python's
#: ``settimeout``: with a Python timeout every ``recv`` / ``send`` is preceded by a ``poll``,
#: i.e. one more syscall and one more release and re-acquisition of the GIL per call, which
#: with a thread per connection roughly halves throughput (measured with wrk -c16).
KERNEL_TIMEOUTS = sys.platform.startswith("linux") and hasattr(socket, "SO_RCVTIMEO")


def _timeval(timeout: float | None) -> bytes:
    if timeout is None:
        return struct.pack("ll", 0, 0)  # zero: wait forever
    sec = int(timeout)
    usec = max(int((timeout - sec) * 1_000_000), 0 if sec else 1)
    return struct.pack("ll", sec, usec)


def set_send_timeout(sock: socket.socket, timeout: float | None) -> bool:
    """Bound each blocking ``send`` with SO_SNDTIMEO; False if that is not possible here."""
    if not KERNEL_TIMEOUTS or type(sock) is not socket.socket or sock.gettimeout() is not None:
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))
    return True


class ClientDisconnected(ConnectionError):
    """The client closed the connection before the message was complete."""


class ResponseTooLong(ValueError):
    """A handler wrote more body bytes than the Content-Length it declared."""


# --------------------------------------------------------------------------- sources


class Source(Protocol):
    """What body readers need from a connection: raw bytes after the head."""

    def read1(self, n: int) -> bytes: ...
    def readline(self, limit: int) -> bytes: ...
    def unread(self, data: bytes) -> None: ...
    def set_body_timeout(self, timeout: float | None) -> None: ...


class SocketReader:
    """Read side of one connection: the socket, its unread bytes, and its timeouts.

    ``self.rfile`` between requests. Supports the file methods a body reader needs
    (``read1``, ``read``, ``readline``) plus ``read_head`` for the server, and for a pooled
    server ``feed`` (append bytes received elsewhere) and ``has_request``.
    """

    __slots__ = ("_body_timeout", "_head", "_kernel", "_rbuf", "_rview", "_timeout", "buf",
                 "eof", "limits", "requests", "sock")

    def __init__(self, sock: socket.socket, limits: Limits = DEFAULT_LIMITS) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.limits = limits
        self.eof = False
        #: Requests read on this connection so far (the first one waits head_timeout idle).
        self.requests = 0
        self._timeout: float | None = sock.gettimeout()
        # Plain blocking TCP socket: kernel timeouts (see KERNEL_TIMEOUTS). A socket with a
        # Python timeout (handler ``timeout`` attribute) or TLS keeps Python's timeouts.
        self._kernel = (KERNEL_TIMEOUTS and type(sock) is socket.socket
                        and self._timeout is None)
        self._body_timeout = limits.body_timeout
        # The receive buffer is made on the first blocking wait: a connection parked by the
        # pooled server is fed with feed() and never needs one (10,000 idle connections
        # would otherwise hold 160 MB of empty buffers).
        self._rbuf: bytearray | None = None
        self._rview: memoryview | None = None
        #: A fed chunk that is exactly one whole head (see ``feed``), returned by read_head.
        self._head: bytes | None = None

    # -- pooled-server support
    def feed(self, data: bytes) -> None:
        """Append bytes received by someone else (a selector loop); ``b''`` means EOF.

        The usual keep-alive case, one recv holding exactly one whole head and nothing
        else, is kept as it is for ``read_head`` (the same test ``read_head`` applies to
        its own recv): no copy into the buffer, no second search for the blank line.
        """
        head = self._head
        if head is not None:  # not read yet: keep the byte order
            self._head = None
            self.buf += head
        if data:
            n = len(data)
            if (not self.buf and 4 <= n <= self.limits.max_head and data[0] != 0x0D
                    and data.find(b"\r\n\r\n") == n - 4):
                self._head = data
            else:
                self.buf += data
        else:
            self.eof = True

    def body_missing(self, most: int) -> bool:
        """True when the buffered head declares a body of at most ``most`` bytes and at most
        ``max_body`` (one plain Content-Length, no Transfer-Encoding, no Expect) that is not
        all buffered yet.

        A pooled server's loop waits for such a body without a thread, as it waits for a
        head, so a client that sends its body slowly holds no handler. Anything unusual
        (several lengths, a bad value, chunked, EOF) answers False: the handler reads the
        body as usual and the parser reports what is wrong.
        """
        head = self._head
        if head is not None:
            end, have = len(head), 0
        else:
            buf = self.buf
            end = buf.find(b"\r\n\r\n") + 4
            if end < 4 or self.eof:
                return False
            head = bytes(buf[:end])
            have = len(buf) - end
        if b"ength" not in head and b"ENGTH" not in head:
            return False  # the usual GET: no Content-Length (odd casings just do not wait)
        lengths = _LENGTH_FIELD.findall(head)
        if len(lengths) != 1 or _NO_WAIT_FIELD.search(head):
            return False
        # Over max_body: no waiting, the handler answers 413 before reading it.
        return have < int(lengths[0]) <= min(most, self.limits.max_body)

    def has_request(self) -> bool:
        """True when ``read_head`` will not block: a whole head is buffered, EOF, or an error."""
        if self._head is not None or self.eof:
            return True
        try:
            return find_head_end(self.buf, 0, self.limits) >= 0
        except Exception:
            return True  # the error is reported when the head is read

    @property
    def kernel_timeouts(self) -> bool:
        """True when waits are bounded by SO_RCVTIMEO (a plain blocking TCP socket): a
        ``recv`` that times out costs one system call and raises ``BlockingIOError``."""
        return self._kernel

    def set_wait_timeout(self, timeout: float | None) -> None:
        """Bound the socket's next blocking reads by ``timeout`` seconds.

        For a pooled server's worker that waits for a client's next request with its own
        ``recv``: the reader sets its own timeout again before each of its blocking reads,
        so leaving this one in place is harmless (and saves a system call per request).
        """
        self._settimeout(timeout)

    # -- internals
    def _settimeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            if self._kernel:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
            else:
                self.sock.settimeout(timeout)
            self._timeout = timeout

    def _fill(self) -> int:
        """One ``recv`` into the buffer; 0 at EOF. Raises TimeoutError."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            raise TimeoutError("timed out") from None  # SO_RCVTIMEO expired
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return 0
        self.buf += data
        return len(data)

    def _head_end(self) -> int:
        """``find_head_end`` with a fast path for the common case.

        A buffer that does not start with an empty line and has its blank line within
        ``max_head`` is a candidate head; ``parse_head`` checks it whole (request line length
        included), so the full incremental check is only needed while the head is incomplete.
        """
        buf = self.buf
        if buf[0] != 0x0D:
            end = buf.find(b"\r\n\r\n")
            if 0 <= end <= self.limits.max_head - 4:
                return end + 4
        return find_head_end(buf, 0, self.limits)

    def _take(self, n: int) -> bytes:
        buf = self.buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]  # cheap: bytearray deletes at the front by moving its start
        return data

    # -- the head
    def read_head(self) -> bytes | None:
        """Return the next request head (up to and including CRLFCRLF), or None.

        None means: the client closed or stayed idle past the keep-alive timeout before
        sending a byte (close silently). Raises ``RequestTimeout`` when a started head misses
        its deadline, ``BadRequest`` when the connection ends inside a head, and the
        ``http11.find_head_end`` errors (414, 431).
        """
        head = self._head
        if head is not None:  # fed whole by a pooled server's loop
            self._head = None
            self.requests += 1
            return head
        buf = self.buf
        limits = self.limits
        if not buf and not self.eof:
            # Idle wait: the first request of a connection gets the head deadline, later
            # ones the keep-alive timeout (RFC 9112 section 9.8: close idle connections).
            timeout = limits.keepalive_timeout if self.requests else limits.head_timeout
            if timeout != self._timeout:
                self._settimeout(timeout)
            rbuf = self._rbuf
            if rbuf is None:
                rbuf = self._rbuf = bytearray(HEAD_RECV_SIZE)
                self._rview = memoryview(rbuf)
            try:
                got = self.sock.recv_into(rbuf)
            except (BlockingIOError, TimeoutError):
                return None  # SO_RCVTIMEO or the Python timeout expired: idle, close
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                got = 0
            if not got:
                self.eof = True
                return None
            data = self._rview[:got].tobytes()  # type: ignore[index]  # half bytes(view)
            # The common case: exactly one whole head, nothing after it, no leading CRLF.
            # Anything else (pipelining, a body, a split head) takes the general path.
            if (got <= limits.max_head and data[0] != 0x0D and got >= 4
                    and data.find(b"\r\n\r\n") == got - 4):  # 3 bytes: find() == -1 == got - 4
                self.requests += 1
                return data
            buf += data
        if buf:
            end = self._head_end()
            if end >= 0:
                self.requests += 1
                return self._take(end)
        if self.eof:
            if buf.strip():
                raise BadRequest("connection closed inside the request head")
            return None
        # Slow path: a head arriving in pieces, under one deadline from its first byte.
        deadline = None if limits.head_timeout is None else monotonic() + limits.head_timeout
        while True:
            if deadline is not None:
                left = deadline - monotonic()
                if left <= 0:
                    raise RequestTimeout("request head not received in time")
                self._settimeout(left)
            else:
                self._settimeout(None)
            try:
                got = self._fill()
            except TimeoutError:
                raise RequestTimeout("request head not received in time") from None
            if not got:
                if not buf.strip():
                    return None
                raise BadRequest("connection closed inside the request head")
            end = find_head_end(buf, 0, limits)
            if end >= 0:
                self.requests += 1
                return self._take(end)

    # -- raw reads after the head (used by body readers)
    def set_body_timeout(self, timeout: float | None) -> None:
        """Timeout of each body ``recv`` from now on (the discard phase shortens it)."""
        self._body_timeout = timeout

    def _fill_body(self) -> int:
        self._settimeout(self._body_timeout)
        try:
            return self._fill()
        except TimeoutError:
            raise RequestTimeout("request body not received in time") from None

    def read1(self, n: int = -1) -> bytes:
        """At most ``n`` bytes, with at most one ``recv``; ``b''`` at EOF."""
        if not self.buf and not self.eof:
            self._fill_body()
        if n < 0:
            n = len(self.buf)
        return self._take(n) if self.buf else b""

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until EOF when negative), fewer only at EOF."""
        buf = self.buf
        while (n < 0 or len(buf) < n) and not self.eof:
            self._fill_body()
        return self._take(len(buf) if n < 0 else n) if buf else b""

    def readline(self, limit: int = -1) -> bytes:
        """One line including its LF, at most ``limit`` bytes; shorter only at EOF."""
        buf = self.buf
        start = 0
        while True:
            i = buf.find(b"\n", start)
            if i >= 0 and (limit < 0 or i < limit):
                return self._take(i + 1)
            if (limit >= 0 and len(buf) >= limit) or self.eof:
                return self._take(len(buf) if limit < 0 else limit) if buf else b""
            start = len(buf)
            self._fill_body()

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the buffer (what followed a chunked body)."""
        if data:
            self.buf[0:0] = data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Forget buffered bytes; the socket itself is closed by the server."""
        self.buf.clear()
        self.eof = True

    @property
    def closed(self) -> bool:
        return self.eof and not self.buf


class FileSource:
    """A plain binary file (``BytesIO`` in unit tests, a ``makefile`` reader) as a source.

    Heads are read with ``readline(limit)`` line by line, as the standard library does; bytes
    read past a chunked body are kept here, because a file cannot take them back.
    """

    __slots__ = ("limits", "pending", "raw")

    def __init__(self, raw: Any, limits: Limits = DEFAULT_LIMITS) -> None:
        self.raw = raw
        self.limits = limits
        self.pending = b""

    def read_head(self) -> bytes | None:
        """Like :meth:`SocketReader.read_head`, with the same limits (414, 431)."""
        limits = self.limits
        lines: list[bytes] = []
        size = 0
        blank_lines = 0
        while True:
            if not lines:
                line = self.readline(limits.max_request_line + 2)
                if line in (b"\r\n", b"\n") and blank_lines < 8:
                    blank_lines += 1  # RFC 9112 section 2.2: ignore a CRLF before the line
                    continue
                if len(line) > limits.max_request_line and not line.endswith(b"\n"):
                    raise URITooLong("request line too long")
            else:
                line = self.readline(limits.max_head - size + 1)
            if not line:
                if not lines:
                    return None
                raise BadRequest("connection closed inside the request head")
            size += len(line)
            if size > limits.max_head:
                from .errors import HeaderFieldsTooLarge

                raise HeaderFieldsTooLarge("request head too large")
            lines.append(line)
            if line in (b"\r\n", b"\n") and len(lines) > 1:
                return b"".join(lines)
            if not line.endswith(b"\n"):
                raise BadRequest("connection closed inside the request head")

    def read1(self, n: int = -1) -> bytes:
        if self.pending:
            data = self.pending if n < 0 else self.pending[:n]
            self.pending = self.pending[len(data):]
            return data
        read1 = getattr(self.raw, "read1", None)
        data = read1(n) if read1 is not None else self.raw.read(n)
        return bytes(data) if data else b""

    def readline(self, limit: int = -1) -> bytes:
        if self.pending:
            i = self.pending.find(b"\n")
            if i >= 0 and (limit < 0 or i < limit):
                return self.read1(i + 1)
            if limit >= 0 and len(self.pending) >= limit:
                return self.read1(limit)
            head = self.read1()
            rest = limit - len(head) if limit >= 0 else -1
            return head + (self.raw.readline(rest) or b"")
        return bytes(self.raw.readline(limit) or b"")

    def unread(self, data: bytes) -> None:
        self.pending = data + self.pending

    def set_body_timeout(self, timeout: float | None) -> None:
        """Files have no timeouts."""


# --------------------------------------------------------------------------- bodies


class BodyReader(io.RawIOBase):
    """``self.rfile`` during a request: exactly the request body, then ``b''``.

    Subclasses implement ``_read_some(n)`` (at most ``n`` > 0 bytes, ``b''`` at the end of
    the body). ``on_first_read`` runs once before the first byte is asked of the client
    (the lazy ``100 Continue``, RFC 9110 section 10.1.1).
    """

    def __init__(self, on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_first_read = on_first_read
        #: Body bytes handed to the handler (or discarded) so far.
        self.consumed = 0

    # subclass API
    @property
    def done(self) -> bool:
        """The whole body has been read (or there was none)."""
        raise NotImplementedError

    @property
    def started(self) -> bool:
        """Some of the body was asked of the client."""
        return self.on_first_read is None

    def _read_some(self, n: int) -> bytes:
        raise NotImplementedError

    def _readline_some(self, limit: int) -> bytes:
        raise NotImplementedError

    def _first(self) -> None:
        cb = self.on_first_read
        if cb is not None:
            self.on_first_read = None
            cb()

    # file API
    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        """At most ``size`` bytes with at most one read from the client."""
        if self.done or size == 0:
            return b""
        self._first()
        data = self._read_some(size if size > 0 else RECV_SIZE)
        self.consumed += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes, fewer only at the end of the body; all of it when negative."""
        if size is None:
            size = -1
        if self.done or size == 0:
            return b""
        self._first()
        parts: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            data = self._read_some(RECV_SIZE if size < 0 else size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.consumed += got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view, view.cast("B") as target:
            data = self.read1(len(target))
            target[: len(data)] = data
            return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        """One line of the body including its LF, at most ``size`` bytes."""
        if size is None:
            size = -1
        if self.done or size == 0:
            return b""
        self._first()
        data = self._readline_some(size)
        self.consumed += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def discard(self, max_bytes: int, timeout: float | None) -> bool:
        """Read and drop the rest of the body so the connection can be reused.

        False when that would take more than ``max_bytes`` or ``timeout`` seconds, or the
        client misbehaves: the caller must then close the connection.
        """
        deadline = None if timeout is None else monotonic() + timeout
        budget = max_bytes
        try:
            while not self.done:
                if deadline is not None:
                    left = deadline - monotonic()
                    if left <= 0:
                        return False
                    self._set_timeout(left)
                data = self._read_some(min(budget, RECV_SIZE))
                if not data:
                    return self.done
                budget -= len(data)
                if budget <= 0 and not self.done:
                    return False
            return True
        except (OSError, ValueError, RequestTimeout, BadRequest, PayloadTooLarge):
            return False

    def _set_timeout(self, timeout: float) -> None:
        """Shorten body-read timeouts (discard phase)."""


class _EmptyBody(BodyReader):
    """No body: every read is ``b''`` at once."""

    @property
    def done(self) -> bool:
        return True

    def _read_some(self, n: int) -> bytes:
        return b""

    def _readline_some(self, limit: int) -> bytes:
        return b""


    def close(self) -> None:
        """Shared by every request without a body: never closed."""


#: The reader of every request without a body (stateless, shared).
EMPTY_BODY: BodyReader = _EmptyBody()


class LengthBody(BodyReader):
    """A body delimited by Content-Length (RFC 9112 section 6.2)."""

    def __init__(self, source: Source, length: int,
                 on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(on_first_read)
        self._src = source
        self.remaining = length

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def _read_some(self, n: int) -> bytes:
        if self.remaining <= 0:
            return b""
        data = self._src.read1(min(n, self.remaining))
        if not data:
            raise ClientDisconnected("connection closed inside the request body")
        self.remaining -= len(data)
        return data

    def _readline_some(self, limit: int) -> bytes:
        if self.remaining <= 0:
            return b""
        n = self.remaining if limit < 0 else min(limit, self.remaining)
        data = self._src.readline(n)
        if not data:
            raise ClientDisconnected("connection closed inside the request body")
        self.remaining -= len(data)
        return data

    def _set_timeout(self, timeout: float) -> None:
        self._src.set_body_timeout(timeout)


class ChunkedBody(BodyReader):
    """A chunked body (RFC 9112 section 7.1), decoded; trailers kept apart in ``trailers``."""

    def __init__(self, source: Source, limits: Limits = DEFAULT_LIMITS,
                 on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(on_first_read)
        self._src = source
        self._decoder = ChunkedDecoder(limits)
        self._pending = bytearray()
        self._max_body = limits.max_body
        self._total = 0

    @property
    def done(self) -> bool:
        return self._decoder.done and not self._pending

    @property
    def trailers(self) -> Any:
        """Trailer fields (a Headers), available once the body is read."""
        return self._decoder.trailers

    def _fill(self) -> bool:
        decoder = self._decoder
        if decoder.done:
            return False
        data = self._src.read1(RECV_SIZE)
        if not data:
            raise ClientDisconnected("connection closed inside the chunked request body")
        for piece in decoder.feed(data):
            self._pending += piece
            self._total += len(piece)
        if self._total > self._max_body:
            raise PayloadTooLarge("request body too large")
        if decoder.done and decoder.unused:
            self._src.unread(bytes(decoder.unused))  # a pipelined request: give it back
        return True

    def _read_some(self, n: int) -> bytes:
        pending = self._pending
        while not pending:
            if not self._fill():
                return b""
        data = bytes(pending[:n])
        del pending[:n]
        return data

    def _readline_some(self, limit: int) -> bytes:
        pending = self._pending
        start = 0
        while True:
            i = pending.find(b"\n", start)
            if i >= 0 and (limit < 0 or i < limit):
                return self._read_some(i + 1)
            if limit >= 0 and len(pending) >= limit:
                return self._read_some(limit)
            start = len(pending)
            if not self._fill():
                return self._read_some(len(pending)) if pending else b""

    def _set_timeout(self, timeout: float) -> None:
        self._src.set_body_timeout(timeout)


# --------------------------------------------------------------------------- the writer

#: Response body framing modes (RFC 9112 section 6.3), chosen by the server at end_headers.
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
