"""Finding and parsing a request head (RFC 9112 sections 2-6, 9.3). No I/O.

Rules of this module:

* :func:`find_head_end` is called on a growing buffer; :func:`parse_head` on the complete
  head it delimited. Errors that a *prefix* of the head already proves (bare CR/LF, a request
  line over ``max_request_line``, a head over ``max_head``) are raised by whichever call
  first sees them, and always as the error revealed at the earliest byte (see
  :func:`_prefix_error`), so feeding a head whole, byte by byte or in any split gives the
  same outcome. A bare CR or LF anywhere in a head is always reported as such (400).
* Everything else is checked on the complete head in a fixed order: request line (400/505),
  target form (400), field count (431), field lines (400), Host (400), framing:
  Transfer-Encoding / Content-Length (400/501/413), Expect (417).
* Empty lines (CRLF) before the request line are skipped (RFC 9112 section 2.2); they count
  towards ``max_head``, which bounds them.
* Versions: ``HTTP/1.x`` is accepted for any digit x; x > 1 is handled as HTTP/1.1 (RFC 9110
  section 6.2: Host required, persistent by default) and ``version`` keeps the text as sent,
  as ``http.server`` does. Another major digit (``HTTP/2.0``, ``HTTP/0.9``) is 505; a line
  without a version (HTTP/0.9's ``GET /``) is 400.
* Targets (RFC 9112 section 3.2): origin-form (``/...``) for any method; absolute-form only
  as ``scheme://authority`` then nothing, ``/...`` or ``?...``, its authority a valid host by
  the rules of Host (reg-name, IPv4 or IP-literal, optional port) without userinfo;
  authority-form (``host:port``) only and always for CONNECT; ``*`` only for OPTIONS. Any
  other shape is 400. Characters: the URI grammar's only (``_rules.TARGET_CHARS``), so a
  fragment (``#``), ``"<>\\^`{|}``, controls and raw non-ASCII are 400 in every form.
* Framing decisions (RFC 9112 section 6), all strict against request smuggling:

  ==============================================  ==========================================
  Content-Length and Transfer-Encoding together   400, close (section 6.1 allows rejecting)
  Transfer-Encoding in an HTTP/1.0 request        400, close (section 6.1: faulty framing)
  Transfer-Encoding not exactly ``chunked``       501 for a coding we do not implement
                                                  (gzip, ...); 400 for ``chunked`` twice, not
                                                  last, empty members or parameters
  Content-Length repeated (even equal values)     400 (section 6.3 rule 5 allows collapsing
  or a list (``5, 5``)                            identical values; we do not)
  Content-Length not 1-18 DIGITs                  400
  Content-Length over ``max_body``                413 before any of the body is read
  ==============================================  ==========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import DEFAULT_LIMITS, Limits
from ..errors import (
    BadRequest,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    HTTPError,
    PayloadTooLarge,
    UnsupportedTransferCoding,
    URITooLong,
    VersionNotSupported,
)
from ..headers import Headers, _from_block, _new
from ._rules import (
    ABSOLUTE_FORM,
    AUTHORITY_FORM,
    BARE_CR_LF,
    HEAD,
    HEAD_PLAIN,
    HOST,
    REQUEST_LINE,
    SPECIAL_FIELDS,
    TARGET,
    TOKEN,
    parse_field_block,
)

__all__ = ["Request", "find_head_end", "parse_head"]

_CR = 0x0D
#: Minor version digit -> (version text as sent, version_info); HEAD admits only HTTP/1.x.
_VERSIONS = {d: ("HTTP/1." + d, (1, int(d))) for d in "0123456789"}
#: Host values already checked against the grammar: a server sees few distinct ones, and a
#: dict lookup is cheaper than the regex. A pure function's cache, bounded by clearing.
_valid_hosts: dict[str, bool] = {}
_VALID_HOSTS_MAX = 256


@dataclass(slots=True)
class Request:
    """A parsed request head: what the server needs to dispatch and to frame the body.

    ``version`` is the protocol text as sent (``"HTTP/1.1"``), ``version_info`` its numbers.
    ``raw_requestline`` keeps the request line's bytes with their CRLF (``http.server``'s
    ``raw_requestline``). ``content_length`` is ``None`` without a Content-Length field;
    ``chunked`` means the body is read through :class:`~minihttp.http11.ChunkedDecoder`;
    neither means no body (RFC 9112 section 6.3 rule 7). ``keep_alive`` is the request
    side of RFC 9112 section 9.3; ``expect_continue`` asks for a 100 before the body.
    """

    method: str
    target: str
    version: str
    version_info: tuple[int, int]
    headers: Headers
    raw_requestline: bytes
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expect_continue: bool


def _skip_empty_lines(buf: bytes | bytearray, i: int) -> int:
    """Index past the CRLFs a client may send before a request line (RFC 9112 section 2.2)."""
    while buf.startswith(b"\r\n", i):
        i += 2
    return i


def _prefix_error(
    buf: bytes | bytearray, start: int, stop: int, end: int, limits: Limits
) -> HTTPError | None:
    """The error that ``buf[start:stop]`` already proves, or ``None``.

    ``end`` is the index past the head's blank line, or -1 if not in ``buf[:stop]``. Each
    candidate error has the position of the byte that reveals it; the earliest wins (ties:
    400, then 414, then 431). Because a longer prefix never hides an error a shorter one
    revealed, every way of splitting the input yields the same error.
    """
    found: list[tuple[int, int, HTTPError]] = []
    limit = end if end >= 0 else stop
    bare = _first_bare(buf, start, limit)
    if bare >= 0:
        reveal = bare + 2 if buf[bare] == _CR else bare + 1
        found.append((reveal, 0, BadRequest("bare CR or LF; lines must end with CRLF")))
    i = _skip_empty_lines(buf, start)
    cap = limits.max_request_line
    line_end = buf.find(b"\r\n", i, stop)
    content = (line_end if line_end >= 0 else stop) - i
    if line_end < 0 and content > 0 and buf[stop - 1] == _CR:
        content -= 1
    if content > cap:
        reveal = i + cap + 2 if buf[i + cap] == _CR else i + cap + 1
        found.append((reveal, 1, URITooLong("request line too long")))
    if (end if end >= 0 else stop) - start > limits.max_head:
        reveal = start + limits.max_head + 1
        found.append((reveal, 2, HeaderFieldsTooLarge("request head too large")))
    if not found:
        return None
    return min(found, key=lambda t: (t[0], t[1]))[2]


def find_head_end(buf: bytes | bytearray, start: int = 0, limits: Limits = DEFAULT_LIMITS) -> int:
    """Index just past the blank line ending the head that starts at ``start``, or -1.

    Raises ``URITooLong`` / ``HeaderFieldsTooLarge`` / ``BadRequest`` as soon as the bytes
    so far prove the head can never be valid, so a slow or hostile client cannot make the
    server buffer more than ``max_head`` bytes.
    """
    i = _skip_empty_lines(buf, start)
    end = buf.find(b"\r\n\r\n", i)
    if end >= 0:
        end += 4
        if end - start > limits.max_head or buf.find(b"\r\n", i) - i > limits.max_request_line:
            err = _prefix_error(buf, start, end, end, limits)
            if err is not None:
                raise err
        return end
    stop = len(buf)
    line_end = buf.find(b"\r\n", i)
    if (
        stop - start > limits.max_head
        or (line_end if line_end >= 0 else stop) - i > limits.max_request_line
    ):
        err = _prefix_error(buf, start, stop, -1, limits)
        if err is not None:
            raise err
    # Bare CR/LF: only the tail is scanned, so that a head trickling in byte by byte costs
    # O(n) per call for the one `find` above, not several full scans. An LF-only client's
    # last line end is always in the tail; anything earlier is caught by parse_head or, with
    # a length error, by _prefix_error's full scan. Reporting 400 here is consistent with any
    # split: with no length error in the prefix, its earliest error is a bare CR/LF too.
    if _tail_has_bare(buf, max(start, stop - _TAIL), start, stop):
        raise BadRequest("bare CR or LF; lines must end with CRLF")
    return -1


#: How many trailing bytes of a partial head find_head_end checks for bare CR/LF.
_TAIL = 2048


def _tail_has_bare(buf: bytes | bytearray, ws: int, start: int, stop: int) -> bool:
    """Whether ``buf[ws:stop]`` holds a bare CR (next byte known) or bare LF. C-speed counts."""
    if ws > start and buf[ws] == 0x0A and buf[ws - 1] == _CR:
        ws += 1  # the window cut a CRLF in two
    crlf = buf.count(b"\r\n", ws, stop)
    pending_cr = 1 if stop > ws and buf[stop - 1] == _CR else 0
    return buf.count(b"\n", ws, stop) != crlf or buf.count(b"\r", ws, stop) != crlf + pending_cr


def _first_bare(buf: bytes | bytearray, start: int, stop: int) -> int:
    """Index of the first bare CR (with its next byte known) or bare LF in the range, or -1."""
    if start < stop and buf[start] == 0x0A:
        return start  # an LF opening the head is bare whatever came before it
    m = BARE_CR_LF.search(buf, start, stop)
    return -1 if m is None else m.start()


#: What :func:`head_fields` returns: :class:`Request`'s fields, in its order, then the
#: request line as text (``http.server``'s ``requestline``).
HeadFields = tuple[
    str, str, str, tuple[int, int], Headers, bytes, "int | None", bool, bool, bool, str
]


def parse_head(head: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> Request:
    """Parse a complete request head (request line, fields, final CRLFCRLF)."""
    return Request(*head_fields(head, limits)[:10])


def head_fields(head: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> HeadFields:
    """:func:`parse_head` as a plain tuple (:data:`HeadFields`): the server's path.

    The server copies the fields onto the handler at once, so building a ``Request`` first
    would only add an object per request.

    One regex validates the request line and every field line of a well-formed head, picks up
    a leading Host field and makes sure no other field the server acts on is there (most
    GETs: none, and they are done here). No
    per-field objects are made: the handler's :class:`Headers` splits the field block only if
    it is read. Anything else goes the long way (:func:`_parse`), which gives the same result.
    """
    if head.__class__ is not bytes:
        head = bytes(head)
    text = head.decode("latin-1")
    m = HEAD_PLAIN.fullmatch(text)
    n = len(text)
    if m is None or n > limits.max_request_line:
        # Leading CRLF, a field the server acts on after the first line, limits to check,
        # or an invalid head.
        return _parse(head, text, limits)
    method, target, minor, host = m.groups()
    if host is None or n > 4 * limits.max_header_count:
        return _finish(head, text, m, 0, limits)
    # Host first and no other field the server acts on, too short for too many fields (a
    # field line takes at least 4 bytes, "a:" CRLF), within every size limit: what is left
    # of _finish's checks is the target's form, then Host, in that order.
    # Origin-form (any method but CONNECT) and absolute-form (a proxy's every request) need
    # nothing else of _check_target_form, which raises the precise error for any other.
    if method == "CONNECT" or (target[0] != "/" and not _absolute_form(target)):
        _check_target_form(method, target)
    if host not in _valid_hosts:
        _check_host(host)
    line_end = m.end(3)
    version, version_info = _VERSIONS[minor]
    headers = _new(Headers)  # _from_block, inlined: this runs once per request
    headers._block = text[line_end + 2 : -2]
    headers._items = headers._idx = None
    return (method, target, version, version_info, headers,
            head[: line_end + 2], None, False, minor != "0", False, text[:line_end])


def _parse(head: bytes, text: str, limits: Limits) -> HeadFields:
    """The checks of a complete head, in the order the module docstring gives."""
    n = len(head)
    i = _skip_empty_lines(head, 0) if head[:1] == b"\r" else 0
    if n > limits.max_request_line:  # else no line (and no head) can be over a limit
        line_end = head.find(b"\r\n", i)
        if n > limits.max_head or (line_end if line_end >= 0 else n) - i > limits.max_request_line:
            end = head.find(b"\r\n\r\n", i)
            err = _prefix_error(head, 0, n, end + 4 if end >= 0 else -1, limits)
            if err is not None:
                raise err
    try:
        m = HEAD.fullmatch(text, i)
        if m is None:
            _diagnose(text, i, limits)
            raise BadRequest("malformed request head")  # not reached: _diagnose raises
        return _finish(head, text, m, i, limits)
    except HTTPError:
        # A bare CR/LF is seen by find_head_end before the head is complete, so it must win
        # over any later finding here too, or whole and split input would disagree; it is
        # also the most useful diagnosis when it breaks a line's syntax.
        if BARE_CR_LF.search(head) is not None:
            raise BadRequest("bare CR or LF; lines must end with CRLF") from None
        raise


def _finish(head: bytes, text: str, m: re.Match[str], i: int, limits: Limits) -> HeadFields:
    """Everything after the line syntax, for a head that :data:`HEAD` matched from ``i``."""
    method, target, minor, _ = m.groups()
    if target[0] != "/" or method == "CONNECT":
        _check_target_form(method, target)  # origin-form for any method but CONNECT is fine
    n = len(text)
    line_end = m.end(3)
    # A field line takes at least 4 bytes ("a:" CRLF): short heads need no count.
    max_count = limits.max_header_count
    if n - line_end > 4 * max_count and text.count("\n", line_end + 2) > max_count + 1:
        raise HeaderFieldsTooLarge("too many header fields")
    headers = _from_block(text[line_end + 2 : n - 2])
    raw = head[i : line_end + 2]
    version, version_info = _VERSIONS[minor]
    # Values of each special field, keyed by the length of its name (see SPECIAL_FIELDS).
    fields: dict[int, list[str]] = {}
    for name, value in SPECIAL_FIELDS.findall(text, line_end):
        key = len(name)
        if key in fields:
            fields[key].append(value.rstrip(" \t"))
        else:
            fields[key] = [value.rstrip(" \t")]

    # Host (RFC 9112 section 3.2): exactly one in HTTP/1.1, at most one otherwise.
    hosts = fields.get(_HOST)
    if hosts is None:
        if minor != "0":
            raise BadRequest("missing Host header field")
    elif len(hosts) != 1:
        raise BadRequest("more than one Host header field")
    else:
        _check_host(hosts[0])

    # Framing (RFC 9112 section 6).
    content_length: int | None = None
    chunked = False
    te = fields.get(_TRANSFER_ENCODING)
    cl = fields.get(_CONTENT_LENGTH)
    if te is not None:
        if minor == "0":
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        if cl is not None:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        _check_transfer_coding(te)
        chunked = True
    elif cl is not None:
        if len(cl) != 1:
            raise BadRequest("more than one Content-Length header field")
        digits = cl[0]
        if not (digits.isdigit() and digits.isascii() and len(digits) <= 18):  # CONTENT_LENGTH
            raise BadRequest("invalid Content-Length")
        content_length = int(digits)
        if content_length > limits.max_body:
            raise PayloadTooLarge("request body too large")

    # Expect (RFC 9110 section 10.1.1): only 100-continue, and ignored in HTTP/1.0.
    expect_continue = False
    expect = fields.get(_EXPECT)
    if expect is not None:
        for value in expect:
            for member in value.split(","):
                member = member.strip(" \t").lower()
                if member == "100-continue":
                    expect_continue = True
                elif member:  # empty list elements are ignored (RFC 9110 section 5.6.1)
                    raise ExpectationFailed("unsupported expectation")
        expect_continue = expect_continue and minor != "0"

    # Persistence (RFC 9112 section 9.3).
    conn = fields.get(_CONNECTION)
    if conn is None:
        keep_alive = minor != "0"
    else:
        option = _CONNECTION_OPTIONS.get(conn[0]) if len(conn) == 1 else None
        if option is not None:  # one common value, as most clients send
            keep_alive = option == "keep-alive" or (option != "close" and minor != "0")
        else:
            options = {t.strip(" \t").lower() for v in conn for t in v.split(",")}
            keep_alive = "close" not in options and (minor != "0" or "keep-alive" in options)
    return (method, target, version, version_info, headers, raw, content_length, chunked,
            keep_alive, expect_continue, text[i:line_end])


#: Connection values most clients send, lower-cased (anything else: the general parse).
_CONNECTION_OPTIONS = {v: v.lower() for v in ("keep-alive", "Keep-Alive", "close", "Close",
                                              "upgrade", "Upgrade")}

#: SPECIAL_FIELDS names by length.
_HOST, _EXPECT, _CONNECTION, _CONTENT_LENGTH, _TRANSFER_ENCODING = 4, 6, 10, 14, 17


def _check_host(value: str) -> None:
    """400 unless ``value`` is ``uri-host [":" port]`` (RFC 9110 section 7.2) + trailing OWS.

    Remembers valid values as given (callers look them up before calling).
    """
    if value not in _valid_hosts:
        if HOST.fullmatch(value.rstrip(" \t")) is None:
            raise BadRequest("invalid Host header field")
        if len(_valid_hosts) >= _VALID_HOSTS_MAX:
            _valid_hosts.clear()
        _valid_hosts[value] = True


def _diagnose(text: str, i: int, limits: Limits) -> None:
    """Raise the error of a head that :data:`HEAD` refused, checking line by line."""
    n = len(text)
    line_end = text.find("\r\n", i)
    if line_end < 0 or line_end > n - 4 or not text.endswith("\r\n\r\n"):
        raise BadRequest("incomplete request head")
    # Request line (RFC 9112 section 3). The regex admits no CR/LF/controls anywhere in it.
    m = REQUEST_LINE.fullmatch(text, i, line_end)
    if m is None:
        raise BadRequest("malformed request line")
    method, target, major, _ = m.groups()
    if major != "1":
        # RFC 9110 section 15.6.6; HTTP/0.9's versionless line is a 400 above.
        raise VersionNotSupported("only HTTP/1.x is supported")
    if TARGET.fullmatch(target) is None:
        raise _bad_target_chars(target)
    if target[0] != "/" or method == "CONNECT":
        _check_target_form(method, target)
    # Fields (RFC 9112 section 5): raises 431 on too many, 400 on the first bad line.
    parse_field_block(text[line_end + 2 : n - 2], limits.max_header_count)


def _bad_target_chars(target: str) -> BadRequest:
    """The 400 for a target with a character outside the URI grammar (RFC 3986 section 2)."""
    if "#" in target:
        # RFC 9110 section 4.2.5: the fragment is for the user agent, never sent.
        return BadRequest("fragment ('#') in the request target (RFC 9110 section 4.2.5)")
    return BadRequest("character not allowed in a request target (RFC 3986 section 2)")


def _check_target_form(method: str, target: str) -> None:
    """RFC 9112 section 3.2: which request-target form each method may use.

    ``target`` is made of :data:`~._rules.TARGET_CHARS` already (the head regex or
    :func:`_diagnose` saw to that).
    """
    if method == "CONNECT":
        if AUTHORITY_FORM.fullmatch(target) is None:
            if "@" in target:
                raise BadRequest("userinfo in the request target (RFC 9110 section 4.2.4)")
            raise BadRequest("CONNECT needs an authority-form target (host:port)")
    elif target[0] == "/":
        return  # origin-form
    elif target == "*":
        if method != "OPTIONS":
            raise BadRequest("asterisk-form is only for OPTIONS")
    elif not _absolute_form(target):
        scheme, sep, rest = target.partition("://")
        authority = rest.partition("/")[0].partition("?")[0]
        if sep and "@" in authority:
            # RFC 9110 section 4.2.4: a sender MUST NOT generate userinfo in an http(s) URI.
            raise BadRequest("userinfo in the request target (RFC 9110 section 4.2.4)")
        if sep and authority and ABSOLUTE_FORM.match(scheme + "://x") is not None:
            raise BadRequest("invalid authority (host[:port]) in an absolute-form request target")
        raise BadRequest("invalid request target")


#: Authorities (``host[:port]``) of ``http://`` targets already matched by
#: :data:`~._rules.ABSOLUTE_FORM`: a proxy sees the same few destinations request after
#: request, and a dict lookup is cheaper than the regex over the whole target. A pure
#: function's cache, like :data:`_valid_hosts`, bounded by clearing.
_valid_authorities: dict[str, bool] = {}
_VALID_AUTHORITIES_MAX = 256


def _absolute_form(target: str) -> bool:
    """Whether ``target`` (made of :data:`~._rules.TARGET_CHARS`) is absolute-form by
    :data:`~._rules.ABSOLUTE_FORM`.

    For ``http://authority`` then nothing or ``/...`` the answer is the authority's alone:
    the regex's authority holds no ``/`` or ``?``, and its ``[/?].*`` takes any rest
    starting with ``/`` (a target holds no line break). So the authority is matched once,
    as ``http://authority`` by the same regex, and remembered; any other shape (another
    scheme or letter case, ``?`` right after the authority) is matched whole.
    """
    if target.startswith("http://"):
        end = target.find("/", 7)
        authority = target[7:] if end < 0 else target[7:end]
        if "?" not in authority:
            if authority in _valid_authorities:
                return True
            if ABSOLUTE_FORM.fullmatch("http://" + authority) is None:
                return False
            if len(_valid_authorities) >= _VALID_AUTHORITIES_MAX:
                _valid_authorities.clear()
            _valid_authorities[authority] = True
            return True
    return ABSOLUTE_FORM.fullmatch(target) is not None


def _check_transfer_coding(values: list[str]) -> None:
    """Accept only ``Transfer-Encoding: chunked`` (RFC 9112 sections 6.1, 6.3 rule 4, 7)."""
    codings = [c.strip(" \t").lower() for v in values for c in v.split(",")]
    if codings == ["chunked"]:
        return
    if any(TOKEN.fullmatch(c) is None for c in codings):
        raise BadRequest("malformed Transfer-Encoding")
    if codings.count("chunked") > 1 or ("chunked" in codings and codings[-1] != "chunked"):
        # chunked twice, or not the final coding: the body length cannot be determined.
        raise BadRequest("chunked must be the final and only transfer coding")
    raise UnsupportedTransferCoding("only the chunked transfer coding is supported")
