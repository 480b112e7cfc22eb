"""The read side of a connection: a buffered socket reader, and a file source for tests.

Why not ``socket.makefile``: a request head is found in one buffer with one search
(``http11.find_head_end``) after one ``recv`` per fill, instead of a ``readline`` call per
line; and the per-connection state (socket + unread bytes) lives in one object,
:class:`SocketReader`, so a connection can be parked in a poller between requests and
resumed later (``feed`` bytes received elsewhere, ask ``has_request``).

Rules of this module:

* A reader never hands out bytes past the end of the current message (the body readers of
  :mod:`minihttp._body` bound themselves; bytes after a chunked body come back via
  ``unread``), so a pipelined request is never read as body, nor a body as a request.
* Timeouts: the head has a *deadline* from its first byte (RFC 9112 section 9.8 lets a server
  close slow connections; per-``recv`` timeouts would let a slowloris trickle forever); an
  idle keep-alive wait ends silently; each body read has its own timeout. The socket timeout is
  only changed when the wanted value differs from the current one (a syscall saved per request).
"""

from __future__ import annotations

import re
import socket
from time import monotonic
from typing import Any, Protocol

from ._sockets import KERNEL_TIMEOUTS, RECV_SIZE, timeval
from .config import DEFAULT_LIMITS, Limits
from .errors import BadRequest, RequestTimeout, URITooLong
from .http11 import find_head_end

#: A Content-Length field line of a head, any case (RFC 9110 section 8.6: 1*DIGIT).
_LENGTH_FIELD = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,18})[ \t]*(?=\r\n)",
                           re.IGNORECASE)
#: Fields that make waiting for the body wrong (chunked: size unknown; Expect: the client
#: waits for our 100 Continue before it sends the body).
_NO_WAIT_FIELD = re.compile(rb"\r\n(?:transfer-encoding|expect):", re.IGNORECASE)

__all__ = ["HEAD_RECV_SIZE", "FileSource", "SocketReader", "Source"]

#: Size of each connection's preallocated head buffer (one ``recv_into`` per idle wait).
#: ``recv(n)`` allocates an ``n``-byte object and shrinks it on every call; ``recv_into`` a
#: buffer allocated once per connection, then one copy of the bytes received, is cheaper.
HEAD_RECV_SIZE = 16 * 1024


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
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(timeout))
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

    @property
    def nowait(self) -> bool:
        """Whether :meth:`read1_nowait` can be used (a plain TCP socket: TLS sockets take no
        recv flags, and their buffered records are not seen by poll)."""
        return type(self.sock) is socket.socket

    def read1_nowait(self, n: int) -> bytes | None:
        """At most ``n`` bytes of what has arrived, without waiting: None when nothing has
        (the caller waits for readability), ``b''`` at EOF. Buffered bytes come first; then
        at most one non-blocking ``recv`` (``MSG_DONTWAIT``: the socket's blocking mode
        and kernel timeouts stay as they are)."""
        buf = self.buf
        if not buf:
            if self.eof:
                return b""
            try:
                data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return None
            if not data:
                self.eof = True
                return b""
            buf += data
        return self._take(n)

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
