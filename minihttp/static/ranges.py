"""Byte ranges (RFC 9110 section 14): parse ``Range``, decide 200/206/416, lay out the body.

No I/O here. :func:`parse_range` turns a ``Range`` field value and the representation's
length into a :class:`RangeDecision`; :func:`multipart_layout` turns several ranges into the
exact sequence of bytes and file segments of a ``multipart/byteranges`` body, so the response's
Content-Length is known before a byte is sent (RFC 9110 section 14.6).

Rules of this module:

* Anything we do not understand is ignored, never an error: another unit than ``bytes``, bad
  syntax, ``last-pos < first-pos`` (RFC 9110 section 14.2: "a server MAY ignore the Range
  header field"). Ignoring means the full 200 response.
* A range-set that parses but has no satisfiable range gives 416 with
  ``Content-Range: bytes */length`` (RFC 9110 sections 14.1.1, 15.5.17).
* Abuse is bounded (RFC 9110 section 14.2 allows ignoring or coalescing "more than two
  overlapping ranges or a set of many small ranges that are not listed in ascending order"):
  more than :data:`MAX_RANGES` ranges are ignored (200); overlapping, adjacent or unordered
  ranges are sorted and coalesced, so a response never repeats a byte.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "FULL",
    "MAX_RANGES",
    "UNSATISFIABLE",
    "Part",
    "RangeDecision",
    "content_range",
    "multipart_layout",
    "parse_range",
]

#: Most range-specs honoured in one request; over it the Range field is ignored.
MAX_RANGES = 16

# RFC 9110 section 14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" length.
# Digits only (no sign, no spaces inside); optional whitespace around each list element.
_SPEC = re.compile(r"[ \t]*(?:(\d+)-(\d*)|-(\d+))[ \t]*\Z")
# 1*DIGIT can be absurdly long; 19 digits already exceed any file size we can serve.
_MAX_DIGITS = 19


@dataclass(frozen=True, slots=True)
class RangeDecision:
    """What to do with a request's Range field.

    ``status`` is 200 (ignore Range, send everything), 206 (send ``ranges``) or 416.
    ``ranges`` holds inclusive ``(first, last)`` byte positions, ascending, non-overlapping.
    """

    status: int
    ranges: tuple[tuple[int, int], ...] = ()


FULL = RangeDecision(200)
UNSATISFIABLE = RangeDecision(416)


def parse_range(value: str | None, length: int) -> RangeDecision:
    """Decide how to answer ``Range: value`` for a representation of ``length`` bytes."""
    if value is None:
        return FULL
    unit, sep, rest = value.partition("=")
    if not sep or unit.strip(" \t").lower() != "bytes":
        return FULL  # RFC 9110 section 14.2: ignore a range unit we do not understand
    # RFC 9110 section 5.6.1: a recipient accepts and ignores empty list elements.
    elements = [e for e in rest.split(",") if e.strip(" \t")]
    if not elements or len(elements) > MAX_RANGES:
        return FULL
    wanted: list[tuple[int, int]] = []
    for element in elements:
        m = _SPEC.match(element)
        if m is None:
            return FULL  # invalid syntax: ignore the whole field
        first_s, last_s, suffix_s = m.groups()
        if max(len(first_s or ""), len(last_s or ""), len(suffix_s or "")) > _MAX_DIGITS:
            return FULL
        if suffix_s is not None:
            suffix = int(suffix_s)
            # A zero suffix is unsatisfiable (RFC 9110 section 14.1.1); so is any suffix of
            # an empty representation, which has no last byte to count back from.
            if suffix > 0 and length > 0:
                wanted.append((max(0, length - suffix), length - 1))
            continue
        first = int(first_s)
        last = int(last_s) if last_s else None
        if last is not None and last < first:
            return FULL  # RFC 9110 section 14.1.1: an invalid range-spec
        if first < length:  # satisfiable: clamp last-pos to the end (section 14.1.2)
            wanted.append((first, length - 1 if last is None else min(last, length - 1)))
    if not wanted:
        return UNSATISFIABLE
    return RangeDecision(206, _coalesce(wanted))


def _coalesce(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort and merge ranges that overlap or touch, unless they are already clean.

    Ranges in ascending, gap-separated order are kept as asked; anything else is merged
    (RFC 9110 section 14.2 lets a server coalesce) so no byte is sent twice.
    """
    clean = all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))
    if clean:
        return tuple(ranges)
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def content_range(first: int, last: int, length: int) -> str:
    """The Content-Range value of one part (RFC 9110 section 14.4)."""
    return f"bytes {first}-{last}/{length}"


#: One piece of a body: literal bytes, or ``(offset, count)`` bytes of the file.
Part: TypeAlias = bytes | tuple[int, int]


def multipart_layout(
    ranges: tuple[tuple[int, int], ...], length: int, content_type: str, boundary: str
) -> tuple[list[Part], int]:
    """Lay out a ``multipart/byteranges`` body (RFC 9110 section 14.6).

    Returns the pieces in order and the total body length, computed up front so the response
    carries an exact Content-Length. The boundary must not occur in the file's bytes; callers
    use a long random token, which RFC 2046 section 5.1.1 deems enough.
    """
    pieces: list[Part] = []
    total = 0
    for index, (first, last) in enumerate(ranges):
        head = (
            ("" if index == 0 else "\r\n")
            + f"--{boundary}\r\n"
            + f"Content-Type: {content_type}\r\n"
            + f"Content-Range: {content_range(first, last, length)}\r\n\r\n"
        ).encode("latin-1")
        pieces.append(head)
        pieces.append((first, last - first + 1))
        total += len(head) + last - first + 1
    tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
    pieces.append(tail)
    total += len(tail)
    return pieces, total
