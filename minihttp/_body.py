"""Request body readers: exactly the body, then ``b''`` (``self.rfile`` during a request).

Rules of this module:

* A body reader is bounded by Content-Length or by the chunked framing (RFC 9112 sections
  6.3, 7.1) and never reads past it; bytes after a chunked body go back into the
  connection's buffer (``Source.unread``), so a pipelined request is never read as body.
* The lazy ``100 Continue`` (RFC 9110 section 10.1.1) is sent by ``on_first_read``, before
  the first byte is asked of the client, never earlier.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

from ._reader import Source
from ._sockets import RECV_SIZE, ClientDisconnected
from .config import DEFAULT_LIMITS, Limits
from .errors import BadRequest, PayloadTooLarge, RequestTimeout
from .http11 import ChunkedDecoder

__all__ = ["EMPTY_BODY", "BodyReader", "ChunkedBody", "LengthBody"]


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

    @property
    def nowait(self) -> bool:
        """Whether :meth:`read_nowait` can be used on this body (its source reads a plain
        socket without blocking; a body with nothing left to read always can)."""
        return self.done or bool(getattr(self._source(), "nowait", False))

    def read_nowait(self, size: int) -> bytes | None:
        """At most ``size`` (> 0) body bytes of what the client has sent, never waiting:
        None when nothing has arrived yet (wait until the connection is readable, then ask
        again), ``b''`` at the end of the body. For a handler that streams the body on an
        event loop (the proxy's upload relay); only when :attr:`nowait` is true. Framing
        errors, limits and a client that leaves mid-body raise as :meth:`read1` does."""
        if self.done:
            return b""
        self._first()
        data = self._read_nowait(size)
        if data:
            self.consumed += len(data)
        return data

    def _source(self) -> Any:
        return None

    def _read_nowait(self, n: int) -> bytes | None:
        raise NotImplementedError

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

    def _source(self) -> Any:
        return self._src

    def _read_nowait(self, n: int) -> bytes | None:
        data = self._src.read1_nowait(min(n, self.remaining))  # type: ignore[attr-defined]
        if data is None:
            return None
        if not data:
            raise ClientDisconnected("connection closed inside the request body")
        self.remaining -= len(data)
        return bytes(data)


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
        self._feed(data)
        return True

    def _feed(self, data: bytes) -> None:
        """Decode received bytes into ``_pending`` (limits checked; bytes past the body
        go back to the source)."""
        decoder = self._decoder
        for piece in decoder.feed(data):
            self._pending += piece
            self._total += len(piece)
        if self._total > self._max_body:
            raise PayloadTooLarge("request body too large")
        if decoder.done and decoder.unused:
            self._src.unread(bytes(decoder.unused))  # a pipelined request: give it back

    def _source(self) -> Any:
        return self._src

    def _read_nowait(self, n: int) -> bytes | None:
        pending = self._pending
        while not pending:
            if self._decoder.done:
                return b""
            data = self._src.read1_nowait(RECV_SIZE)  # type: ignore[attr-defined]
            if data is None:
                return None
            if not data:
                raise ClientDisconnected("connection closed inside the chunked request body")
            self._feed(data)
        data = bytes(pending[:n])
        del pending[:n]
        return data

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


