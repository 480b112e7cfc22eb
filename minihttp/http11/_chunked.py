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
from ..errors import BadRequest, HeaderFieldsTooLarge, PayloadTooLarge, ProtocolError
from ..headers import Headers
from ._rules import BARE_CR_LF, CHUNK_LINE, parse_field_block

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
                _check_line(buf, pos, end if end >= 0 else n, end >= 0, limits.max_chunk_line,
                            BadRequest)
                if end < 0:
                    break
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
                # A line costs its bytes plus CRLF; the room left is what it may hold.
                room = limits.max_trailer - self._trailer_bytes - 2
                _check_line(buf, pos, end if end >= 0 else n, end >= 0, room,
                            HeaderFieldsTooLarge)
                if end < 0:
                    break
                self._trailer_bytes += end + 2 - pos
                if end == pos:
                    state = _DONE
                    self.unused = buf[end + 2 :]
                    pos = n
                    break
                line = buf[pos : end + 2].decode("latin-1")
                parse_field_block(line, limits.max_header_count, (self._items, self._index))
                pos = end + 2
        self._state = state
        self._buf = buf[pos:] if pos < n else b""
        return out


def _check_line(
    buf: bytes, pos: int, stop: int, complete: bool, room: int,
    too_long: type[BadRequest] | type[HeaderFieldsTooLarge],
) -> None:
    """Reject a line (complete or still arriving) with a bare CR/LF or over ``room`` bytes.

    When both are wrong, the error revealed by the earlier byte wins (a tie goes to the bare
    CR/LF), so the outcome does not depend on how the input was split.
    """
    content = stop - pos
    if not complete and content and buf[stop - 1] == 0x0D:
        content -= 1  # may be the CR of the CRLF still to come
    # C-speed scans first: this runs on every feed of a partial line.
    clean = buf.find(b"\n", pos, stop) < 0 and buf.find(b"\r", pos, pos + content) < 0
    if clean and content <= room:
        return
    # For a complete line the CR of its CRLF is in range, so a CR just before it is judged.
    m = BARE_CR_LF.search(buf, pos, stop + 1 if complete else stop)
    if m is None and content <= room:
        return
    reveals: list[tuple[int, int, ProtocolError]] = []
    if m is not None:
        at = m.start()
        reveals.append((at + (2 if buf[at] == 0x0D else 1), 0,
                        BadRequest("bare CR or LF in chunked framing")))
    if content > room:
        # The byte that makes it too long (after a CR, the one proving it is no CRLF).
        at = pos + 1 if room < 0 else pos + room + (2 if buf[pos + room] == 0x0D else 1)
        reveals.append((at, 1, too_long("chunk line or trailer section too long")))
    raise min(reveals, key=lambda r: (r[0], r[1]))[2]
