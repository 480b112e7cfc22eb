"""How the server layer reports a failed request: through logging, never bare stderr.

The standard library prints a traceback to stderr for every exception in a handler,
including the ordinary case of a client that went away mid-response. Here:

* a *disconnect* (the peer closed or reset the connection, or a socket timeout fired) is
  an everyday event, logged at DEBUG on ``minihttp.error`` with no traceback;
* anything else is a bug in a handler, logged at ERROR with the traceback (``exc_info``).

The HTTP layer uses :func:`is_disconnect` to make the same distinction.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["DISCONNECT_ERRORS", "error_log", "is_disconnect", "report_request_error"]

#: The one logger of the server layer; applications configure it like any other.
error_log = logging.getLogger("minihttp.error")

#: Exceptions that mean "the client is gone", not "the handler is broken".
#: ``TimeoutError`` is ``socket.timeout`` on Python >= 3.10.
DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    TimeoutError,
)


def is_disconnect(exc: BaseException | None) -> bool:
    """True when ``exc`` only says the peer disconnected or timed out."""
    return isinstance(exc, DISCONNECT_ERRORS)


def report_request_error(client_address: object) -> None:
    """Log the exception being handled (call from an ``except`` block)."""
    exc = sys.exc_info()[1]
    if is_disconnect(exc):
        error_log.debug("client %s disconnected: %r", client_address, exc)
    else:
        error_log.error("Exception occurred during processing of request from %s",
                        client_address, exc_info=True)
