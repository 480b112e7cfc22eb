"""A strict, streaming ``multipart/form-data`` parser (RFC 7578 over RFC 2046), sans I/O.

Uploads must never sit whole in memory, so the body is fed in pieces as it is read
(:meth:`MultipartParser.feed`) and comes out as events: a :class:`Part` when a part's head is
complete, ``bytes`` for its content as it arrives, :data:`PART_END` when it ends. The caller
decides where content goes (a temporary file); :meth:`MultipartParser.close` at the end of
the body says whether the body was complete.

Why our own: the standard library's ``cgi`` is gone (3.13), ``email`` parses whole messages
in memory, and the well-kept streaming parsers (``multipart``, ``python-multipart``) are
lenient where we want a clear 400 (bare LF line ends, a missing final boundary, parts
without ``name``) and would be a runtime dependency for one feature.

Rules of this module:

* Memory is bounded whatever the body: content is handed out as it arrives, holding back
  only a possible partial delimiter (under ``len(boundary) + 4`` bytes); a part's head is
  held until complete and refused past ``max_header_size``; the preamble is dropped as it
  comes and refused past ``max_preamble``.
* Line ends are CRLF (RFC 2046 section 5.1.1, RFC 7578 section 4.1): a delimiter is
  ``CRLF--boundary`` (the first one may open the body), followed by ``--`` (the end) or
  by optional space/tab and CRLF. A bare LF is never a line end in part heads or after a
  delimiter (400); in content it is content.
* The boundary comes from the Content-Type's ``boundary`` parameter, 1 to 70 characters of
  RFC 2046's ``bchars``, not ending in a space (:func:`boundary_from_content_type`).
* Each part has exactly one ``Content-Disposition: form-data`` with a ``name`` parameter
  (RFC 7578 section 4.2); ``filename*`` (RFC 8187, UTF-8 or ISO-8859-1) wins over
  ``filename``; part heads must be UTF-8 (browsers send raw UTF-8 file names).
* A body that ends before the final delimiter is an error (:meth:`MultipartParser.close`);
  everything after the final delimiter (the epilogue) is ignored.
* Every failure is :class:`MultipartError`, a 400 :class:`~minihttp.errors.BadRequest`
  (the connection is closed: the rest of the body cannot be trusted), or
  :class:`UnsupportedMediaType` (415) for a body that is not ``multipart/form-data``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from minihttp.errors import BadRequest, HTTPError

__all__ = [
    "PART_END",
    "MultipartError",
    "MultipartParser",
    "Part",
    "PartEnd",
    "UnsupportedMediaType",
    "boundary_from_content_type",
    "parse_parameters",
]


class MultipartError(BadRequest):
    """400: the multipart body (or its Content-Type) breaks RFC 2046 / RFC 7578."""


class UnsupportedMediaType(HTTPError):
    """415: the body is not ``multipart/form-data`` (RFC 9110 section 15.5.16)."""

    status = 415
    reason = "Unsupported Media Type"
    close = False


@dataclass(frozen=True, slots=True)
class Part:
    """The head of one part: its fields (lower-case names) and what they say."""

    headers: tuple[tuple[str, str], ...]
    name: str
    #: The file name as sent (None: not a file field; "" when no file was chosen).
    filename: str | None
    content_type: str | None


class PartEnd:
    """The event that ends a part's content."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PART_END"


#: The one :class:`PartEnd` event.
PART_END = PartEnd()

#: What :meth:`MultipartParser.feed` returns, in order.
Event = Part | bytes | PartEnd

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 2046 section 5.1.1: bchars := bcharsnospace / " "
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_OWS = " \t"
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_PADDING_MAX = 256  # transport padding after a delimiter (RFC 2046 section 5.1.1)

_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _CONTENT, _EPILOGUE = range(5)


def parse_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``type; name=value; ...`` (RFC 9110 section 5.6.6) as the lower-case type and a dict
    of lower-case parameter names to values (quoted strings unquoted).

    Within a quoted string only ``\\"`` and ``\\\\`` are escapes: browsers send file names
    raw, with ``"`` as ``%22`` (HTML's form encoding), so a lone backslash stays itself.
    Raises :class:`MultipartError` for anything else (missing ``=``, a repeated name,
    unterminated quotes).
    """
    m = _TOKEN.match(value.lstrip(_OWS))
    pos = len(value) - len(value.lstrip(_OWS))
    if m is None:
        raise MultipartError("malformed field value: no type")
    kind = m.group().lower()
    pos += m.end()
    if value[pos:pos + 1] == "/":  # a media type: type "/" subtype
        sub = _TOKEN.match(value, pos + 1)
        if sub is None:
            raise MultipartError("malformed media type")
        kind += "/" + sub.group().lower()
        pos = sub.end()
    params: dict[str, str] = {}
    end = len(value)
    while True:
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos == end:
            return kind, params
        if value[pos] != ";":
            raise MultipartError("malformed parameters")
        pos += 1
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos == end:
            return kind, params  # a trailing ";" is harmless
        key = _TOKEN.match(value, pos)
        if key is None or value[key.end():key.end() + 1] != "=":
            raise MultipartError("malformed parameter")
        name = key.group().lower()
        pos = key.end() + 1
        if value[pos:pos + 1] == '"':
            pos += 1
            chars: list[str] = []
            while True:
                if pos >= end:
                    raise MultipartError("unterminated quoted string")
                c = value[pos]
                if c == '"':
                    pos += 1
                    break
                if c == "\\" and value[pos + 1:pos + 2] in ('"', "\\"):
                    c = value[pos + 1]
                    pos += 1
                chars.append(c)
                pos += 1
            text = "".join(chars)
        else:
            start = pos
            while pos < end and value[pos] not in ' \t;"':
                pos += 1
            text = value[start:pos]
            if not text:
                raise MultipartError("empty parameter value")
        if name in params:
            raise MultipartError(f"parameter {name!r} repeated")
        params[name] = text


def boundary_from_content_type(value: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type (RFC 2046 section 5.1.1).

    Raises :class:`UnsupportedMediaType` when the type is another one (or missing) and
    :class:`MultipartError` when the boundary is missing or malformed.
    """
    if value is None:
        raise UnsupportedMediaType("expected a multipart/form-data body")
    if value.split(";", 1)[0].strip(_OWS).lower() != "multipart/form-data":
        raise UnsupportedMediaType("expected a multipart/form-data body")
    _kind, params = parse_parameters(value)
    boundary = params.get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise MultipartError("missing or malformed multipart boundary")
    return boundary.encode("ascii")


def _ext_value(value: str) -> str:
    """RFC 8187 ``charset'language'pct-encoded`` (the ``filename*`` form)."""
    charset, sep1, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    charset = charset.lower()
    if not (sep1 and sep2) or charset not in ("utf-8", "iso-8859-1"):
        raise MultipartError("malformed filename* parameter")
    try:
        return urllib.parse.unquote_to_bytes(encoded).decode(charset)
    except UnicodeDecodeError:
        raise MultipartError("filename* is not valid in its charset") from None


def _parse_head(block: bytes, max_fields: int) -> Part:
    lines = block.split(b"\r\n")
    if len(lines) > max_fields:
        raise MultipartError("too many fields in a part head")
    fields: list[tuple[str, str]] = []
    for line in lines:
        if not line or line[:1] in (b" ", b"\t"):
            raise MultipartError("malformed part head (folded or empty line)")
        raw_name, sep, raw_value = line.partition(b":")
        if not sep or not _TOKEN_BYTES.fullmatch(raw_name):
            raise MultipartError("malformed field in a part head")
        if _CONTROL.search(raw_value):
            raise MultipartError("control character in a part head")
        try:
            text = raw_value.strip(b" \t").decode("utf-8")
        except UnicodeDecodeError:
            raise MultipartError("part head is not UTF-8") from None
        fields.append((raw_name.decode("ascii").lower(), text))
    dispositions = [v for n, v in fields if n == "content-disposition"]
    if len(dispositions) != 1:
        raise MultipartError("each part needs exactly one Content-Disposition")
    kind, params = parse_parameters(dispositions[0])
    if kind != "form-data" or "name" not in params:
        raise MultipartError("Content-Disposition must be form-data with a name")
    filename = params.get("filename")
    if "filename*" in params:
        filename = _ext_value(params["filename*"])
    types = [v for n, v in fields if n == "content-type"]
    return Part(tuple(fields), params["name"], filename, types[0] if types else None)


class MultipartParser:
    """Feed the body in pieces; get :data:`Event` lists back (see the module's rules)."""

    def __init__(self, boundary: bytes, *, max_header_size: int = 16 * 1024,
                 max_header_fields: int = 16, max_parts: int = 1000,
                 max_preamble: int = 64 * 1024) -> None:
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body: seen as if a CRLF came before it.
        self._buf = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._max_header_size = max_header_size
        self._max_header_fields = max_header_fields
        self._max_parts = max_parts
        self._max_preamble = max_preamble
        self._preamble = 0
        #: Parts begun so far.
        self.parts = 0

    @property
    def done(self) -> bool:
        """The final delimiter has been seen."""
        return self._state == _EPILOGUE

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next piece of the body; the events it completes, in order."""
        if self._state == _EPILOGUE:
            return []  # RFC 2046: the epilogue is to be ignored
        self._buf += data
        events: list[Event] = []
        step = self._steps[self._state]
        while step(self, events):
            step = self._steps[self._state]
        return events

    def close(self) -> None:
        """The body has ended: raise :class:`MultipartError` unless it was complete."""
        if self._state != _EPILOGUE:
            raise MultipartError("multipart body ended before its final boundary")

    # -- one method per state: True when it moved on and the next state should run -------

    def _preamble_step(self, events: list[Event]) -> bool:
        buf, delimiter = self._buf, self._delimiter
        i = buf.find(delimiter)
        if i < 0:
            drop = len(buf) - (len(delimiter) - 1)
            if drop > 0:
                self._preamble += drop
                del buf[:drop]
            if self._preamble > self._max_preamble:
                raise MultipartError("no multipart boundary found")
            return False
        del buf[:i + len(delimiter)]
        self._state = _AFTER_DELIMITER
        return True

    def _after_delimiter_step(self, events: list[Event]) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf[:2] == b"--":
            buf.clear()
            self._state = _EPILOGUE
            return False
        i = buf.find(b"\r\n")
        padding = buf[:i] if i >= 0 else buf[:-1] if buf.endswith(b"\r") else buf
        if padding.strip(b" \t") or len(padding) > _PADDING_MAX:
            raise MultipartError("a boundary must be followed by CRLF or '--'")
        if i < 0:
            return False
        del buf[:i + 2]
        self.parts += 1
        if self.parts > self._max_parts:
            raise MultipartError("too many parts")
        self._state = _HEADERS
        return True

    def _headers_step(self, events: list[Event]) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf[:2] == b"\r\n":
            raise MultipartError("a part without Content-Disposition")
        i = buf.find(b"\r\n\r\n")
        if i < 0 or i > self._max_header_size:
            if len(buf) > self._max_header_size:
                raise MultipartError("part head too large")
            return False
        block = bytes(buf[:i])
        del buf[:i + 4]
        events.append(_parse_head(block, self._max_header_fields))
        self._state = _CONTENT
        return True

    def _content_step(self, events: list[Event]) -> bool:
        buf, delimiter = self._buf, self._delimiter
        i = buf.find(delimiter)
        if i >= 0:
            if i:
                events.append(bytes(buf[:i]))
            del buf[:i + len(delimiter)]
            events.append(PART_END)
            self._state = _AFTER_DELIMITER
            return True
        # Hold back only what could be the start of a delimiter split across pieces: it
        # begins with CR within the last len(delimiter) - 1 bytes.
        r = buf.find(b"\r", max(0, len(buf) - len(delimiter) + 1))
        n = len(buf) if r < 0 else r
        if n:
            events.append(bytes(buf[:n]))
            del buf[:n]
        return False

    def _epilogue_step(self, events: list[Event]) -> bool:
        return False  # pragma: no cover - feed returns before calling it

    _steps = (_preamble_step, _after_delimiter_step, _headers_step, _content_step,
              _epilogue_step)
