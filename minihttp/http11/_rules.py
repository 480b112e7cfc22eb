"""Grammar of HTTP/1.1 messages as precompiled regular expressions, shared by the parsers.

Every rule of RFC 9110 / RFC 9112 the parsers check at the byte level lives here, one
expression per ABNF rule, so the parsers themselves are short loops over tables. Head text
is matched as ``str`` decoded from latin-1 (one byte, one code point), which keeps the
bytes' values and lets the same expressions serve heads and trailers.

Strictness decisions (each one rejects with 400 unless noted):

* Line ends are CRLF only. A bare LF (RFC 9112 section 2.2 says a recipient *MAY* accept it)
  is rejected: accepting it is how front-end/back-end parsers come to disagree (smuggling).
  A bare CR anywhere is rejected (RFC 9112 section 2.2: MUST treat as invalid or replace).
* Field values may hold HTAB, SP, VCHAR and obs-text (0x80-0xFF); every other control byte
  (NUL, BEL, ESC, DEL, ...) is rejected (RFC 9110 section 5.5).
* Field names are tokens with no whitespace before the colon (RFC 9112 section 5.1), and
  obs-fold continuation lines are rejected (RFC 9112 section 5.2).
* A request target holds only the characters of the URI grammar (RFC 3986 section 2:
  unreserved, reserved, ``%``), never ``#``: a fragment is not sent (RFC 9110 section 4.2.5)
  and the characters RFC 3986 left out (``"`` ``<`` ``>`` ``\\`` ``^`` backtick ``{`` ``|``
  ``}``, controls, SP, raw non-ASCII) are what front ends disagree on (browsers turn ``\\``
  into ``/``, other clients send it as it is). RFC 9112 section 3.2: a server SHOULD answer 400.
"""

from __future__ import annotations

import re
import string
import sys

from ..errors import BadRequest, HeaderFieldsTooLarge

#: tchar (RFC 9110 section 5.6.2), as a character class body.
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"

TOKEN = re.compile(f"[{TCHAR}]+")

#: field-value = *field-vchar with OWS around it (RFC 9112 section 5, RFC 9110 section 5.5):
#: HTAB, SP, VCHAR and obs-text, so no CR, LF, NUL or other controls. The value must start
#: with a non-blank byte, so the OWS before it and the value can never trade bytes: the
#: expressions below are linear. (With ``[ \t]*[\t\x20-...]*`` a line of blanks ending in a
#: control byte backtracks quadratically, and with a lazy value cubically: a 4 KB field line
#: once cost a minute of CPU.) The value keeps trailing OWS; callers trim it when present.
_VALUE = r"(?:[\x21-\x7e\x80-\xff][\t\x20-\x7e\x80-\xff]*)?"

#: field-line = field-name ":" OWS field-value OWS (RFC 9112 section 5), one line without
#: its CRLF; only used to say which line of a rejected block is bad.
FIELD_LINE = re.compile(f"([{TCHAR}]+):[ \\t]*({_VALUE})")

#: The same, for ``findall`` over a block of CRLF-terminated lines. A match starts at a line
#: start and holds no CR or LF before its final CRLF, so it is exactly one whole line; the
#: value keeps trailing OWS, which :func:`parse_field_block` trims only when the block has any.
FIELD_LINES = re.compile(f"(?m)^([{TCHAR}]+):[ \\t]*({_VALUE})\\r\\n")

#: The characters a request target may hold (RFC 3986 section 2, RFC 9112 section 3.2):
#: unreserved, gen-delims but "#", sub-delims and "%", as a character class body. Out of
#: VCHAR it leaves out ``"#<>\^`{|}``. One class in the head regex, like VCHAR before it: the
#: regex engine tests a byte against a class by one bitmap lookup whatever its shape, so
#: the stricter rule costs nothing on the hot path (measured, alternated A/B against the
#: VCHAR class: benchmarks/cpu_hello.py 4.76-4.85 us vs 4.69-5.09 us a request; head_fields
#: on ``GET /path/to/page?query=1&b=2`` 1.19-1.23 us vs 1.29-1.33 us: no slower).
TARGET_CHARS = r"!$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~"

#: A request target made only of :data:`TARGET_CHARS`.
TARGET = re.compile(f"[{TARGET_CHARS}]+")


def _anycase(name: str) -> str:
    """A regex matching ``name`` in any letter case, by explicit classes (``[Hh][Oo]...``):
    cheaper than re.IGNORECASE, and no lower-cased copy of the head is needed."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in name)


#: The names of the fields the server itself acts on: Host (RFC 9112 section 3.2), the
#: framing fields (section 6), Expect (RFC 9110 section 10.1.1), Connection (section 9.3).
SPECIAL_NAMES = ("host", "content-length", "transfer-encoding", "expect", "connection")


def head_regex(possessive: bool, plain: bool = False) -> re.Pattern[str]:
    """HEAD (or with ``plain``, HEAD_PLAIN), possessive (Python 3.11+) or not (same language).

    Where the grammar leaves nothing to give back, a possessive quantifier keeps the regex
    engine from saving backtracking state per repetition: HEAD gets about a quarter faster.
    """
    p = "+" if possessive else ""
    if plain:
        # A name whose first letter starts no special name needs no lookahead: the regex
        # engine picks the branch by its first character (about 25 ns a line less).
        special = "|".join(_anycase(name) for name in SPECIAL_NAMES)
        firsts = "".join(sorted({c for name in SPECIAL_NAMES for c in (name[0], name[0].upper())}))
        others = "".join(c for c in string.ascii_letters if c not in firsts)
        name = (f"(?:[{TCHAR.replace('A-Za-z', '')}{others}]|(?!(?:{special}):)[{firsts}])"
                f"[{TCHAR}]*{p}")
    else:
        name = f"[{TCHAR}]+{p}"
    return re.compile(
        f"([{TCHAR}]+{p}) ([{TARGET_CHARS}]+{p}) HTTP/1\\.([0-9])\\r\\n"
        f"(?:[Hh][Oo][Ss][Tt]:[ \\t]*{p}"
        f"((?:[\\x21-\\x7e\\x80-\\xff][\\t\\x20-\\x7e\\x80-\\xff]*{p})?{p})\\r\\n)?{p}"
        f"(?:{name}:[\\t\\x20-\\x7e\\x80-\\xff]*{p}\\r\\n)*{p}\\r\\n"
    )


#: A whole request head in the common shape, after any leading empty lines: an HTTP/1.x
#: request line, field lines, the blank line. One ``fullmatch`` validates exactly what
#: REQUEST_LINE (major version 1) plus FIELD_LINES over every line accept, so a head that
#: fails it is rejected by the line-by-line checks, which also name the error. A first field
#: named Host (RFC 9110 section 7.2: a user agent SHOULD send it first) is captured on the
#: way. Groups: method, target, minor version digit, the first Host value or None (trailing
#: OWS kept). In the other lines OWS and value are one class (validation only). Linear: a
#: name cannot hold the colon, a value cannot hold the CR, a Host value starts non-blank.
HEAD = head_regex(sys.version_info >= (3, 11))

#: HEAD for the common GET: the same, except that no line after a leading Host field may be
#: a field the server acts on (SPECIAL_NAMES). A head it matches needs none of those checks;
#: one it refuses is matched by HEAD (the negative lookahead costs a few bytes' comparisons
#: per line, less than a second pass over the head to look for those fields).
HEAD_PLAIN = head_regex(sys.version_info >= (3, 11), plain=True)

#: The same fields with their values, in a head HEAD accepted (so each match is one whole
#: field line). Names are matched case-insensitively by explicit classes (cheaper than
#: re.IGNORECASE), and each has its own length, which tells them apart. Groups: name, value
#: (trailing OWS kept).
SPECIAL_FIELDS = re.compile(
    "\\n(" + "|".join(_anycase(name) for name in SPECIAL_NAMES) + "):[ \\t]*([^\\r]*)"
)

#: request-line = method SP request-target SP HTTP-version (RFC 9112 section 3), single SP
#: separators, method a token, version DIGIT "." DIGIT. The target is any run of bytes but
#: SP and controls here (VCHAR and obs-text), so that a target with a character outside
#: :data:`TARGET_CHARS` gets its own message from the target check, not "malformed line".
REQUEST_LINE = re.compile(f"([{TCHAR}]+) ([\\x21-\\x7e\\x80-\\xff]+) HTTP/([0-9])\\.([0-9])")

_REG_NAME = r"[A-Za-z0-9\-._~!$&'()*+,;=%]"
_IP_LITERAL = r"\[[0-9A-Za-z:.\-_~!$&'()*+,;=]+\]"

#: Host = uri-host [ ":" port ] (RFC 9110 section 7.2); may be empty (RFC 9112 section 3.2).
HOST = re.compile(f"(?:{_IP_LITERAL}|{_REG_NAME}*)(?::[0-9]*)?")

#: authority-form = uri-host ":" port, only for CONNECT (RFC 9112 section 3.2.3); the host and
#: port must both be there (RFC 9110 section 9.3.6).
AUTHORITY_FORM = re.compile(f"(?:{_IP_LITERAL}|{_REG_NAME}+):[0-9]+")

#: absolute-form (RFC 9112 section 3.2.2), restricted to hierarchical URIs with a non-empty
#: authority (RFC 9110 section 4.2.1: an http URI with an empty host is invalid): scheme
#: "://" authority, then nothing or a path-abempty / query starting with "/" or "?". The
#: authority is a host by the rules of Host (uri-host [":" port], RFC 9110 section 7.2) with
#: no userinfo (RFC 9110 section 4.2.4: a sender MUST NOT generate it; "@" is no reg-name
#: character). Matched against a target already made of TARGET_CHARS.
ABSOLUTE_FORM = re.compile(
    f"[A-Za-z][A-Za-z0-9+.\\-]*://(?:{_IP_LITERAL}|{_REG_NAME}+)(?::[0-9]*)?(?:[/?].*)?"
)

#: Content-Length = 1*DIGIT (RFC 9110 section 8.6); at most 18 digits so it fits any int64
#: and no client can make us convert a megabyte of digits.
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")

#: chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 section 7.1, 7.1.1), bytes. Size is
#: 1-16 hex digits (no sign, no 0x, no spaces); each extension is
#: BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ].
_BTCHAR = TCHAR.encode()
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*[" + _BTCHAR + rb"]+(?:[ \t]*=[ \t]*(?:["
    + _BTCHAR + rb"]+|" + _QUOTED + rb"))?)*)"
)

#: A CR not followed by LF (once the next byte is known), or an LF not preceded by CR.
BARE_CR_LF = re.compile(rb"\r(?=[^\n])|(?<!\r)\n")


def bad_field(line: str) -> BadRequest:
    """The 400 for a field line that did not match, with a precise message."""
    if line[:1] in (" ", "\t"):
        return BadRequest("obsolete line folding is not accepted (RFC 9112 section 5.2)")
    name, colon, _ = line.partition(":")
    if not colon:
        return BadRequest("header line without a colon")
    if name != name.rstrip(" \t"):
        return BadRequest("whitespace before the colon of a header field (RFC 9112 section 5.1)")
    if not TOKEN.fullmatch(name):
        return BadRequest("header field name is not a token")
    return BadRequest("control character in a header field value")


#: Parsed fields: ``(items, index)``, see :func:`parse_field_block`.
Fields = tuple[list[tuple[str, str]], dict[str, list[str]]]


def parse_field_block(block: str, max_count: int, into: Fields | None = None) -> Fields:
    """Parse CRLF-terminated field lines into ``(items, index)``.

    ``items`` is ``[(name, value), ...]`` in arrival order, ``index`` maps a lower-cased name
    to its values. With ``into``, fields are appended to an existing pair (trailers arrive a
    line at a time). Raises 431 past ``max_count`` fields in total (counted before any regex
    runs, so a flood of tiny fields costs nothing) and 400 on any invalid line.

    One ``findall`` does the work in C. Every match is one whole line ending at its own LF
    (it starts at a line start and holds no CR/LF before its CRLF), so the block is valid
    exactly when there are as many matches as LFs: a bare CR or LF, an obs-fold line or any
    other bad line leaves an LF unmatched.
    """
    nlines = block.count("\n")
    if into is not None:
        items, index = into
        if nlines + len(items) > max_count:
            raise HeaderFieldsTooLarge("too many header fields")
    elif nlines > max_count:
        raise HeaderFieldsTooLarge("too many header fields")
    found = FIELD_LINES.findall(block)
    if len(found) != nlines:
        for line in block.split("\r\n")[:-1]:
            if FIELD_LINE.fullmatch(line) is None:
                raise bad_field(line)
        raise BadRequest("bare CR or LF in a header field")
    if " \r\n" in block or "\t\r\n" in block:
        found = [(name, value.rstrip(" \t")) for name, value in found]  # trailing OWS
    if into is None:
        # Fast path: no repeated names, so a comprehension builds the index.
        index = {name.lower(): [value] for name, value in found}
        if len(index) == nlines:
            return found, index
        items, index = [], {}
    items.extend(found)
    for name, value in found:
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return items, index
