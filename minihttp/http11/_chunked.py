"""Incremental decoder of the chunked transfer coding (RFC 9112 section 7.1). No I/O.

Rules of this module:

* ``feed`` accepts any split of the input (one byte at a time included) and returns the body
  bytes decoded so far; only an incomplete chunk-size or trailer line is buffered, so memory
  stays bounded by ``max_chunk_line`` / ``max_trailer`` whatever the body size.
* Strict syntax: chunk-size is 1-16 hex digits (no sign, no ``0x``, no whitespace, no
  overflow); extensions must match RFC 9112 section 7.1.1 (token / quoted-string, no control
  bytes, no bare CR); chunk data must be followed by exactly CRLF. Violations: 400.
* A chunk line over ``max_chunk_line``: 400. Trailer section over ``max_trailer`` bytes or
  ``max_header_count`` fields: 431. Decoded body over ``max_body``: 413.
* Trailer fields obey the same field-line rules as the head, are collected in ``trailers``
  and are never merged into the request's headers (RFC 9110 section 6.5.1).
* Bytes after the final CRLF are kept in ``unused`` (the next pipelined request).
"""

from __future__ import annotations

from ..config import DEFAULT_LIMITS, Limits
from ..errors import BadRequest, HeaderFieldsTooLarge, PayloadTooLarge
from ..headers import Headers
from ._rules import BARE_CR_LF, CHUNK_LINE, parse_fields

__all__ = ["ChunkedDecoder"]

# States of the decoder.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Feed it the bytes after a head with ``Transfer-Encoding: chunked``."""

    __slots__ = (
        "_buf", "_index", "_items", "_limits", "_remaining", "_state", "_total",
        "_trailer_bytes", "trailers", "unused",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = b""
        self._state = _SIZE
        self._remaining = 0
        self._total = 0
        self._trailer_bytes = 0
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        #: Trailer fields, complete once ``done`` is true.
        self.trailers = Headers._from_parsed(self._items, self._index)
        #: Bytes received past the end of the chunked body.
        self.unused = b""

    @property
    def done(self) -> bool:
        """True once the last chunk and the trailer section have been read."""
        return self._state == _DONE

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Decode ``data``; return the body pieces it completes (possibly none)."""
        if self._state == _DONE:
            self.unused += bytes(data)
            return []
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        state = self._state
        limits = self._limits
        while pos < n:
            if state == _DATA:
                take = min(self._remaining, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    state = _DATA_END
            elif state == _DATA_END:
                # RFC 9112 section 7.1: chunk-data is followed by CRLF, nothing else.
                if buf[pos] != 0x0D or (n - pos > 1 and buf[pos + 1] != 0x0A):
                    raise BadRequest("chunk data not followed by CRLF")
                if n - pos < 2:
                    break
                pos += 2
                state = _SIZE
            elif state == _SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    _check_partial(buf, pos, n, limits.max_chunk_line, BadRequest)
                    break
                if end - pos > limits.max_chunk_line:
                    raise BadRequest("chunk size line too long")
                m = CHUNK_LINE.fullmatch(buf, pos, end)
                if m is None:
                    raise BadRequest("invalid chunk size line")
                size = int(m.group(1), 16)
                self._total += size
                if self._total > limits.max_body:
                    raise PayloadTooLarge("request body too large")
                pos = end + 2
                if size:
                    self._remaining = size
                    state = _DATA
                else:
                    state = _TRAILER
            else:  # _TRAILER
                end = buf.find(b"\r\n", pos)
                room = limits.max_trailer - self._trailer_bytes
                if end < 0:
                    _check_partial(buf, pos, n, room, HeaderFieldsTooLarge)
                    break
                self._trailer_bytes += end + 2 - pos
                if self._trailer_bytes > limits.max_trailer:
                    raise HeaderFieldsTooLarge("trailer section too large")
                if end == pos:
                    state = _DONE
                    self.unused = buf[end + 2 :]
                    pos = n
                    break
                line = buf[pos:end].decode("latin-1")
                parse_fields([line], self._items, self._index, limits.max_header_count)
                pos = end + 2
        self._state = state
        self._buf = buf[pos:] if pos < n else b""
        return out


def _check_partial(
    buf: bytes, pos: int, n: int, room: int, too_long: type[BadRequest] | type[HeaderFieldsTooLarge]
) -> None:
    """Reject an incomplete line early: bare CR/LF in it, or longer than ``room`` allows."""
    if BARE_CR_LF.search(buf, pos) is not None:
        raise BadRequest("bare CR or LF in chunked framing")
    length = n - pos - (1 if buf[n - 1] == 0x0D else 0)
    if length > room:
        raise too_long("chunk line or trailer section too long")
