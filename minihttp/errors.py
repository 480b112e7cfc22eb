"""Errors that carry HTTP meaning.

Every protocol failure the server can detect is one of these classes, and each class knows
the status code to answer with and whether the connection must be closed afterwards. Code
that catches :class:`HTTPError` never has to map exceptions to status codes itself (the
approach of h11's ``error_status_hint`` and waitress's ``utilities.Error``).

Rules of this module:

* ``status`` is the response status; ``close`` says whether the connection can be reused.
  Any error in *framing* (RFC 9112 section 6.3, "the connection must be closed") closes.
* Messages are short, plain text, safe to put in a response body (no request bytes echoed).
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "ExpectationFailed",
    "Forbidden",
    "HTTPError",
    "HeaderFieldsTooLarge",
    "LengthRequired",
    "NotFound",
    "NotImplementedMethod",
    "PayloadTooLarge",
    "ProtocolError",
    "RequestTimeout",
    "URITooLong",
    "UnsupportedTransferCoding",
    "VersionNotSupported",
]


class HTTPError(Exception):
    """Base of every error that maps onto an HTTP status code."""

    status: int = 500
    close: bool = True
    reason: str = "Internal Server Error"

    def __init__(self, message: str | None = None, *, close: bool | None = None) -> None:
        super().__init__(message or self.reason)
        self.message = message or self.reason
        if close is not None:
            self.close = close


class NotFound(HTTPError):
    """404: nothing to serve here (also used for paths that try to escape the root)."""

    status = 404
    reason = "File not found"
    close = False


class Forbidden(HTTPError):
    """403: the resource exists but may not be read."""

    status = 403
    reason = "Forbidden"
    close = False


class ProtocolError(HTTPError):
    """The peer broke HTTP/1.1's rules; the message cannot be trusted (RFC 9112)."""

    status = 400
    reason = "Bad Request"


class BadRequest(ProtocolError):
    """400: malformed request line, header field or framing."""


class RequestTimeout(ProtocolError):
    """408: the request head (or body) did not arrive in time."""

    status = 408
    reason = "Request Timeout"


class LengthRequired(ProtocolError):
    """411: a body is needed but neither Content-Length nor chunked was given."""

    status = 411
    reason = "Length Required"


class PayloadTooLarge(ProtocolError):
    """413: the declared body is over the configured maximum (checked before reading it)."""

    status = 413
    reason = "Content Too Large"


class URITooLong(ProtocolError):
    """414: the request line is over the configured maximum."""

    status = 414
    reason = "URI Too Long"


class ExpectationFailed(ProtocolError):
    """417: an Expect value other than 100-continue (RFC 9110 section 10.1.1)."""

    status = 417
    reason = "Expectation Failed"


class HeaderFieldsTooLarge(ProtocolError):
    """431: too many header fields, or a head over the configured size."""

    status = 431
    reason = "Request Header Fields Too Large"


class NotImplementedMethod(ProtocolError):
    """501: the method is not supported by the handler."""

    status = 501
    reason = "Not Implemented"
    close = False


class UnsupportedTransferCoding(ProtocolError):
    """501: a transfer coding other than chunked (RFC 9112 section 6.1)."""

    status = 501
    reason = "Not Implemented"


class VersionNotSupported(ProtocolError):
    """505: an HTTP major version other than 1 (RFC 9110 section 15.6.6)."""

    status = 505
    reason = "HTTP Version Not Supported"
