"""Parsing a response head and deciding its body's framing (RFC 9112 sections 4-6). No I/O.

The proxy's upstream side: :func:`parse_response_head` reads the status line and the fields
of a response our client sent a request for, and says how its body is framed. h11 is its
differential oracle (tests/http11/test_response_head.py), as it is for request heads.

Rules of this module:

* Fed a buffer that may hold less or more than one head: returns None until the blank line
  is in (or raises :class:`BadResponse` as soon as the head is over ``max_head`` or a bare
  CR or LF is seen, so a head that cannot end well is not waited for), then the
  head and how many bytes it took; whatever follows is the body's (or the next head's, after
  an interim 1xx).
* Strict, a proxy's choice where RFC 9112 allows it (each a deliberate difference from h11,
  asserted in the tests): lines end in CRLF (no bare LF, section 2.2); no obs-fold (section
  5.2: a proxy MUST reject or replace it; we reject); only ``HTTP/1.x``; a field count
  bound (``max_fields``).
* Framing (section 6.3), in this order:

  ===================================================  ====================================
  1xx                                                  interim: ``NO_BODY``, read on
  request was HEAD, or status 204 or 304               ``NO_BODY`` (fields kept as sent)
  Content-Length together with Transfer-Encoding       :class:`BadResponse` (smuggling
                                                       signature; h11 refuses it too)
  Transfer-Encoding exactly ``chunked``                ``CHUNKED``
  any other Transfer-Encoding                          :class:`BadResponse` (h11 too)
  Content-Length repeated, even with equal values,     :class:`BadResponse` (h11 collapses
  or a list (``5, 5``)                                 equal values; ambiguous: we refuse)
  Content-Length not 1-18 DIGITs                       :class:`BadResponse`
  Content-Length                                       ``LENGTH``
  neither                                              ``UNTIL_CLOSE`` (read to EOF)
  ===================================================  ====================================

* ``keep_alive``: HTTP/1.1, no ``close`` in Connection, and a body not delimited by the
  close (RFC 9112 section 9.3); the connection may carry another exchange only then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._rules import BARE_CR_LF, FIELD_LINES

__all__ = ["CHUNKED", "LENGTH", "NO_BODY", "UNTIL_CLOSE", "BadResponse", "ResponseHead",
           "parse_response_head"]

NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)

#: status-line (RFC 9112 section 4); h11 also takes a missing SP before an empty reason.
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n")
#: The request side's field-line grammar, on bytes (one findall; see _rules.parse_field_block).
_FIELD_LINES = re.compile(FIELD_LINES.pattern.encode("latin-1"))
_DIGITS = re.compile(rb"[0-9]{1,18}")
#: Lower-cased field names, by name as received: a small vocabulary, bounded.
_LOWER: dict[bytes, bytes] = {}
_LOWER_MAX = 512


class BadResponse(Exception):
    """The upstream's response head is not one a proxy may relay (answered with 502)."""


@dataclass(slots=True)
class ResponseHead:
    """A parsed response head: what the relay needs, the fields as h11 gives them."""

    status_code: int
    #: The reason phrase as sent (bytes, may be empty).
    reason: bytes
    #: b"1.1" or b"1.0" (as h11 gives it).
    http_version: bytes
    #: ``(raw name, lower-case name, value)`` in arrival order, trailing OWS stripped.
    items: list[tuple[bytes, bytes, bytes]]
    #: NO_BODY, LENGTH, CHUNKED or UNTIL_CLOSE.
    framing: int
    #: The body's length for LENGTH (else -1).
    length: int
    #: The connection may carry another exchange after this one (see the rules).
    keep_alive: bool
    #: Left to the relay (minihttp.proxy.upstream): the head it sent for this one, by
    #: what else it depends on. The parser never reads it.
    relayed: tuple[Any, bytes] | None = None


def _lower(name: bytes) -> bytes:
    low = _LOWER.get(name)
    if low is None:
        if len(_LOWER) >= _LOWER_MAX:
            _LOWER.clear()
        low = _LOWER[name] = name.lower()
    return low


def parse_response_head(buf: bytes | bytearray, *, head_request: bool = False,
                        max_head: int = 64 * 1024,
                        max_fields: int = 256) -> tuple[ResponseHead, int] | None:
    """``(head, bytes used)`` when ``buf`` starts with a whole response head, None when more
    bytes are needed. ``head_request``: the request was HEAD (no body, whatever the fields
    say). Raises :class:`BadResponse` (see the rules)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > max_head:
            raise BadResponse("response head too large")
        if BARE_CR_LF.search(buf, 0, len(buf) - 1) is not None:  # a CR last may be a CRLF's
            raise BadResponse("bare CR or LF in the response head")
        return None
    end += 4
    if end > max_head:
        raise BadResponse("response head too large")
    head = bytes(buf[:end])
    line = _STATUS_LINE.match(head)
    if line is None:
        first = head.split(b"\n", 1)[0]
        raise BadResponse(f"bad status line {first[:80]!r}")
    minor, code, reason = line.groups()
    status = int(code)
    if status < 100:
        raise BadResponse(f"bad status code {status}")
    block = head[line.end():-2]
    nlines = block.count(b"\n")
    if nlines > max_fields:
        raise BadResponse("too many header fields")
    found = _FIELD_LINES.findall(block)
    if len(found) != nlines:
        raise BadResponse("bad header field line (bare CR or LF, obs-fold, bad name)")
    trim = b" \r\n" in block or b"\t\r\n" in block
    items = [(n, _lower(n), v.rstrip(b" \t") if trim else v) for n, v in found]
    version = b"1." + minor
    keep = minor != b"0"
    te: list[bytes] | None = None
    cl: list[bytes] | None = None
    for _name, low, value in items:
        if low == b"content-length":
            cl = [*(cl or ()), value]
        elif low == b"transfer-encoding":
            te = [*(te or ()), value]
        elif low == b"connection" and keep and b"close" in [
                t.strip().lower() for t in value.split(b",")]:
            keep = False
    framing, length = _framing(status, head_request, te, cl)
    if framing == UNTIL_CLOSE:
        keep = False
    return ResponseHead(status, reason or b"", version, items, framing, length, keep), end


def _framing(status: int, head_request: bool, te: list[bytes] | None,
             cl: list[bytes] | None) -> tuple[int, int]:
    """The framing table of the rules (RFC 9112 section 6.3). The framing fields are
    checked whatever the status (as h11 does): a 304 with ``Content-Length: 5, 6`` is as
    ambiguous as a 200 with it."""
    if te is not None and cl is not None:
        raise BadResponse("Content-Length with Transfer-Encoding")
    if te is not None:
        codings = [c.strip().lower() for v in te for c in v.split(b",")]
        if codings != [b"chunked"]:
            raise BadResponse(f"unsupported Transfer-Encoding {b', '.join(te)[:80]!r}")
    if cl is not None and (len(cl) != 1 or _DIGITS.fullmatch(cl[0]) is None):
        raise BadResponse(f"bad or repeated Content-Length {b', '.join(cl)[:80]!r}")
    if status < 200 or head_request or status in (204, 304):
        return NO_BODY, -1
    if te is not None:
        return CHUNKED, -1
    if cl is not None:
        return LENGTH, int(cl[0])
    return UNTIL_CLOSE, -1
