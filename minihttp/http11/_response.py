"""The response side: status line and fields out, body framing helpers (RFC 9112). No I/O.

Rules of this module:

* :func:`response_head` is on the hot path: one f-string per field, one join, one encode,
  plus a constant-time-per-byte check that no CR, LF or NUL was smuggled into a name, value
  or reason (header injection, RFC 9110 section 5.5) - it counts line ends instead of
  running a regex per field.
* :func:`validate_field` is the full check (token name, safe value) for ``send_header``.
* :func:`reason_phrase` makes any text a valid reason-phrase; it never raises.
* ``encode_chunk(b"")`` is ``b""``: an empty chunk would be the last-chunk and end the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._rules import TCHAR

__all__ = [
    "LAST_CHUNK",
    "body_allowed",
    "encode_chunk",
    "reason_phrase",
    "response_head",
    "validate_field",
]

#: last-chunk with an empty trailer section (RFC 9112 section 7.1).
LAST_CHUNK = b"0\r\n\r\n"

_NAME = re.compile(f"[{TCHAR}]+")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")


def response_head(
    version: str, status: int, reason: str, headers: Iterable[tuple[str, str]]
) -> bytes:
    """``version SP status SP reason CRLF *(name: value CRLF) CRLF`` as latin-1 bytes.

    Raises ``ValueError`` if any part holds CR, LF or NUL, ``UnicodeEncodeError`` (also a
    ``ValueError``) if it is not latin-1 (as ``http.server`` encodes its heads).
    """
    fields = [f"{name}: {value}\r\n" for name, value in headers]
    text = f"{version} {status} {reason}\r\n{''.join(fields)}\r\n"
    lines = len(fields) + 2
    if text.count("\n") != lines or text.count("\r") != lines or "\x00" in text:
        raise ValueError("CR, LF or NUL in a response status line or header field")
    return text.encode("latin-1")


def validate_field(name: str, value: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a token and ``value`` has no CR, LF or NUL."""
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"invalid header field name {name!r}")
    if _UNSAFE_VALUE.search(value) is not None:
        raise ValueError(f"CR, LF or NUL in the value of header field {name!r}")


#: What a reason-phrase may not hold (RFC 9112 section 4: HTAB, SP, VCHAR, obs-text only).
_NOT_REASON = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")


def reason_phrase(text: str) -> str:
    """``text`` as a valid reason-phrase: each run of control characters (CR, LF, NUL, ...)
    becomes one space, and a character beyond latin-1 a ``?`` (heads are latin-1).

    For messages that may come from request data (``send_error(404, f"No {name}")``): a CR
    or LF there would end the status line and let the rest be read as header fields.
    """
    if _NOT_REASON.search(text) is not None:
        text = _NOT_REASON.sub(" ", text)
    if not text.isascii():
        text = text.encode("latin-1", "replace").decode("latin-1")
    return text


def body_allowed(method: str, status: int) -> bool:
    """Whether a response may carry content (RFC 9110 sections 6.4.1, 9.3.6; RFC 9112 6.3).

    Never for HEAD, 1xx, 204 and 304, nor for a 2xx answer to CONNECT (the connection
    becomes a tunnel).
    """
    if method == "HEAD" or status < 200 or status == 204 or status == 304:
        return False
    return not (method == "CONNECT" and status < 300)


def encode_chunk(data: bytes | bytearray | memoryview) -> bytes:
    """One chunk (RFC 9112 section 7.1) holding ``data``; ``b""`` for empty data."""
    size = len(data)
    if not size:
        return b""
    return b"".join((b"%x\r\n" % size, data, b"\r\n"))
