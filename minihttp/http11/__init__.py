"""Sans-I/O HTTP/1.1 (RFC 9112): bytes in, request heads and body pieces out; heads out.

No sockets, no threads, no logging: the server feeds bytes and writes what it gets back.
Errors are :mod:`minihttp.errors` classes that know their status and whether to close.
See docs/internals.md for the contract.

The package is split by idea: ``_rules`` (the grammar as regexes), ``_head`` (finding and
parsing a request head), ``_chunked`` (chunked body decoding), ``_response`` (response
heads and framing helpers), ``_response_head`` (parsing a response head and its framing:
the proxy's upstream side).
"""

from __future__ import annotations

from ._chunked import ChunkedDecoder
from ._head import Request, find_head_end, parse_head
from ._response import (
    LAST_CHUNK,
    body_allowed,
    encode_chunk,
    reason_phrase,
    response_head,
    validate_field,
)
from ._response_head import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BadResponse,
    ResponseHead,
    parse_response_head,
)

__all__ = [
    "CHUNKED",
    "LAST_CHUNK",
    "LENGTH",
    "NO_BODY",
    "UNTIL_CLOSE",
    "BadResponse",
    "ChunkedDecoder",
    "Request",
    "ResponseHead",
    "body_allowed",
    "encode_chunk",
    "find_head_end",
    "parse_head",
    "parse_response_head",
    "reason_phrase",
    "response_head",
    "validate_field",
]
