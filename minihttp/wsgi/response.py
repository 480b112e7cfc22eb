"""What a WSGI application may answer: its status line and its header list, checked.

``start_response(status, headers)`` hands the gateway two values the application built; this
module turns them into what the handler sends, or raises ``ValueError`` / ``TypeError`` with a
message naming the mistake (the application's error: a 500 for the client, a traceback in the
log for its author).

Rules of this module (pure functions, no I/O):

* A status is ``"NNN reason"`` (PEP 3333: a native string, three digits, a space, a reason
  phrase that may be empty) with NNN a final status, 200-599 (RFC 9110 section 15: 1xx are
  the server's business). No CR, LF or NUL anywhere.
* Header names and values are native strings (``str``); names are never hop-by-hop
  (PEP 3333 "Other HTTP Features"; RFC 9110 section 7.6.1): ``Connection``, ``Keep-Alive``,
  ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer(s)``,
  ``Transfer-Encoding``, ``Upgrade``. Connection management and framing are the server's:
  an application that sets them would desynchronise keep-alive.
* Field syntax is checked here too, at ``start_response`` time (PEP 3333: "servers should
  check for errors in the headers at the time start_response is called, so that an error
  can be raised while the application is still running"): a token name, no CR, LF or NUL
  in a value (header injection, RFC 9110 section 5.5), latin-1 only
  (``http11.validate_field``, the check of ``send_header``). A :class:`Head` carries the
  fields as they go on the wire (``name: value`` CRLF, latin-1), so the gateway appends
  them to the head in one piece instead of one ``send_header`` call per field; only the
  Content-Length goes through ``send_header`` (the handler frames the body by it).
* Results are memoized: applications send the same few statuses, header items and whole
  header lists over and over, so the common response costs one list comparison (the last
  head found), a less common one a dict lookup (the whole ``(status, *headers)``), a new
  one a lookup per item. Only plain ``str`` statuses and ``(str, str)`` tuples are
  remembered (a str subclass could compare equal and differ); a whole list only if its
  fields are at most :data:`MAX_FIELDS` bytes, and then as a copy (the application may
  reuse and change its list for a later response). The dicts are bounded.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, NamedTuple

from ..http11 import validate_field

__all__ = ["HOP_BY_HOP", "MAX_FIELDS", "Head", "check_headers", "parse_status"]

#: Header names (lower case) an application must not send.
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade",
))

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_CACHE_MAX = 1024

#: status text -> (code, reason to send or None for the standard phrase).
_statuses: dict[str, tuple[int, str | None]] = {}

# Kinds of header names, memoized by the name as sent.
_OTHER, _LENGTH, _SERVER, _DATE, _HOP = range(5)
_KIND_OF = {"content-length": _LENGTH, "server": _SERVER, "date": _DATE}
_kinds: dict[str, int] = {}

#: Longest fields (bytes) of a header list remembered whole by :func:`check_headers`.
MAX_FIELDS = 4096


class Head(NamedTuple):
    """The checked ``start_response`` arguments: what the handler sends."""

    code: int
    #: Reason phrase to send, or None when it is the standard one (the handler's fast path).
    reason: str | None
    #: The application's header list (a copy of it, equal, when the head is remembered).
    headers: list[tuple[str, str]]
    #: The value of the application's Content-Length (OWS stripped), or None.
    length: str | None
    #: The application sent its own ``Server`` / ``Date`` (the server must not add a second).
    has_server: bool
    has_date: bool
    #: The application's fields before its Content-Length (all of them when it sent none),
    #: checked and encoded as they go on the wire: ``name: value`` CRLF each.
    before: bytes
    #: Its fields after its Content-Length (``b""`` when it sent none).
    after: bytes


def parse_status(status: Any) -> tuple[int, str | None]:
    """``"200 OK"`` -> ``(200, None)``; ``"200 Fine"`` -> ``(200, "Fine")``.

    Raises TypeError (not a str) or ValueError (malformed, out of range, CR/LF/NUL).
    """
    cached = _statuses.get(status) if type(status) is str else None
    if cached is not None:
        return cached
    if not isinstance(status, str):
        raise TypeError(f"status must be a str, not {type(status).__name__}")
    code_text, sep, reason = status.partition(" ")
    if (len(code_text) != 3 or not code_text.isdigit() or not code_text.isascii()
            or not sep):
        raise ValueError(f"status must be 'NNN reason', not {status!r}")
    code = int(code_text)
    if not 200 <= code <= 599:
        raise ValueError(f"status code {code} out of range 200-599 (the server sends 1xx)")
    if any(c in reason for c in "\r\n\0"):
        raise ValueError(f"CR, LF or NUL in the status {status!r}")
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"status {status!r} is not latin-1") from None
    result = (code, None if reason == _PHRASES.get(code) else reason)
    if len(_statuses) >= _CACHE_MAX:
        _statuses.clear()
    _statuses[status] = result
    return result


def _kind(name: Any) -> int:
    kind = _kinds.get(name) if type(name) is str else None
    if kind is None:
        if not isinstance(name, str):
            raise TypeError(f"header name must be a str, not {type(name).__name__}: {name!r}")
        low = name.lower()
        kind = _HOP if low in HOP_BY_HOP else _KIND_OF.get(low, _OTHER)
        if len(_kinds) >= _CACHE_MAX:
            _kinds.clear()
        _kinds[name] = kind
    return kind


#: ``(name, value)`` items already checked -> (their kind, their line as sent): an
#: application sends the same fields on most responses, so the common item costs one dict
#: lookup (measured: the per-item checks were ~1 us of a 12 us WSGI hello,
#: benchmarks/bench_wsgi.py --cpu).
_items: dict[Any, tuple[int, bytes]] = {}


def _check_item(item: Any) -> tuple[int, bytes]:
    """The kind and wire line of one header item, checked; remembered when it is a plain
    ``(str, str)``."""
    if type(item) is not tuple or len(item) != 2:
        raise TypeError(f"each response header must be a (name, value) tuple: {item!r}")
    name, value = item
    kind = _kind(name)
    if type(value) is not str:
        raise TypeError(f"value of header {name!r} must be a str, not {type(value).__name__}")
    if kind == _HOP:
        raise ValueError(f"hop-by-hop header {name!r} not allowed from a WSGI application "
                         "(PEP 3333): the server manages the connection")
    if kind == _LENGTH:
        digits = value.strip(" \t")
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"invalid Content-Length {value!r}")
    validate_field(name, value)
    # UnicodeEncodeError (a ValueError) beyond latin-1, as send_header would raise.
    got = (kind, f"{name}: {value}\r\n".encode("latin-1"))
    if type(name) is str:
        if len(_items) >= _CACHE_MAX:
            _items.clear()
        _items[item] = got
    return got


#: ``(status, *headers)`` -> its :class:`Head` (whose ``headers`` is a copy of the list).
_heads: dict[tuple[Any, ...], Head] = {}
#: The last head remembered or found in :data:`_heads`: ``(status, its header list, the
#: Head)``. Most applications answer most requests with the same head: comparing the
#: list with the last one (C, no hashing) is the cheapest check there is. Replaced whole
#: (one reference), so threads never see half of one.
_last: tuple[Any, list[Any], Head | None] = ("", [], None)


def check_headers(status: Any, headers: Any) -> Head:
    """Check ``start_response``'s arguments; the :class:`Head` to send.

    Raises TypeError (not a list of ``(str, str)`` tuples) or ValueError (bad status, a
    hop-by-hop header, a malformed or repeated Content-Length, a field that is not valid
    on the wire).

    measured (benchmarks/icount_wsgi.py, instructions per WSGI hello): the per-item checks
    and a new ``Head`` per call cost ~4.9k; the last head found again, ~1k.
    """
    last = _last
    if type(headers) is list and headers == last[1] and status == last[0]:
        head = last[2]
        if head is not None:
            return head
    return _find(status, headers)


def _find(status: Any, headers: Any) -> Head:
    """:func:`check_headers` past its first check: a known list, or every item checked."""
    global _last
    if type(headers) is not list:
        raise TypeError(f"response headers must be a list, not {type(headers).__name__}")
    key = (status, *headers)
    try:
        head = _heads.get(key)
    except TypeError:  # unhashable: a list for an item, say
        head = None
    if head is None:
        head, plain = _check(status, headers)
        if not plain or len(head.before) + len(head.after) > MAX_FIELDS:
            return head
        if len(_heads) >= _CACHE_MAX:
            _heads.clear()
        _heads[key] = head
    if type(status) is str:
        _last = (status, head.headers, head)
    return head


def _check(status: Any, headers: list[Any]) -> tuple[Head, bool]:
    """Every item of ``headers`` checked: the head, and whether it may be remembered
    (then its ``headers`` is a copy of the list)."""
    code_reason = _statuses.get(status) if type(status) is str else None
    if code_reason is None:
        code_reason = parse_status(status)
    length: str | None = None
    has_server = has_date = False
    plain = type(status) is str
    before: list[bytes] = []
    after: list[bytes] = []
    lines = before
    items_get = _items.get
    for item in headers:
        try:
            got = items_get(item)
        except TypeError:  # unhashable: not a tuple of strings
            got = None
        if got is None:
            got = _check_item(item)
        if type(item) is not tuple or type(item[0]) is not str or type(item[1]) is not str:
            plain = False  # valid (or equal to a valid item), but not ours to remember
        kind, line = got
        if kind:
            if kind == _LENGTH:
                if length is not None:
                    raise ValueError(f"repeated Content-Length {item[1]!r}")
                length = item[1].strip(" \t")
                lines = after
                continue
            if kind == _SERVER:
                has_server = True
            elif kind == _DATE:
                has_date = True
        lines.append(line)
    # tuple.__new__: a NamedTuple's own __new__ is a Python call (~0.3 us per response).
    head = tuple.__new__(Head, (code_reason[0], code_reason[1],
                                list(headers) if plain else headers, length, has_server,
                                has_date, b"".join(before), b"".join(after)))
    return head, plain
