"""HTTPS servers with the constructor of Python 3.14's ``http.server.HTTPSServer``.

``HTTPSServer(address, Handler, certfile="cert.pem", keyfile="key.pem")`` (and
``password``, ``alpn_protocols``) serves ``Handler`` over TLS, as the standard library does
from 3.14 on; here on every supported Python. Both classes are importable from
:mod:`minihttp.server` too, where ``http.server`` has them.

Rules of this module:

* The TLS handshake runs in ``finish_request``, on the connection's own thread with
  :class:`ThreadingHTTPSServer`, bounded by ``limits.head_timeout``; never in ``accept``.
  (The standard library wraps the listening socket, so its accept loop performs every
  handshake, and a client that connects and stays silent stops the server from accepting.)
* A handshake that fails or times out (a scanner, a plain-HTTP client, a dead peer) is
  logged at DEBUG on ``minihttp.error`` and closes that connection: it is not a server error;
  so is a TLS error later in the connection.
* The context is made by ``_create_context()`` (the standard library's hook, overridable)
  in ``server_activate``, so a missing or bad certificate or key raises from the
  constructor (``ssl.SSLError`` / ``OSError``), before anything is served. It is kept as
  ``ssl_context``, the attribute the command line's server and ``PooledHTTPServer`` use.
* Once the handshake is done the connection is an ``ssl.SSLSocket`` that the handler uses
  like any socket, and this class shuts it down and closes it when the handler returns.
"""

from __future__ import annotations

import socket
import ssl
import sys
from typing import Any

from .config import DEFAULT_LIMITS, Limits
from .logs import error_log
from .server import HTTPServer
from .socketserver import ThreadingMixIn

__all__ = ["HTTPSServer", "ThreadingHTTPSServer"]


class HTTPSServer(HTTPServer):
    """An HTTP server over TLS (``http.server.HTTPSServer`` of Python 3.14).

    ``certfile`` (PEM: the certificate, optionally followed by the key and the chain),
    ``keyfile`` and ``password`` go to :meth:`ssl.SSLContext.load_cert_chain`;
    ``alpn_protocols`` defaults to ``["http/1.1"]``.
    """

    #: Set by ``server_activate``: the context every connection is wrapped with.
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, server_address: Any, RequestHandlerClass: Any,
                 bind_and_activate: bool = True, *, certfile: Any, keyfile: Any = None,
                 password: Any = None, alpn_protocols: list[str] | None = None) -> None:
        self.ssl = ssl  # as the standard library's: _create_context overrides may use it
        self.certfile = certfile
        self.keyfile = keyfile
        self.password = password
        self.alpn_protocols = ["http/1.1"] if alpn_protocols is None else alpn_protocols
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def server_activate(self) -> None:
        """Listen, and make the TLS context (a bad certificate or key raises here)."""
        super().server_activate()
        self.ssl_context = self._create_context()

    def _create_context(self) -> ssl.SSLContext:
        """A server-side context with the certificate chain and ALPN protocols."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile, self.password)
        context.set_alpn_protocols(self.alpn_protocols)
        return context

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake (bounded by ``limits.head_timeout``), then handle the connection."""
        context = self.ssl_context
        if context is None:
            raise RuntimeError("HTTPSServer: server_activate() was not called")
        limits = self.limits if isinstance(self.limits, Limits) else DEFAULT_LIMITS
        previous = request.gettimeout()
        request.settimeout(limits.head_timeout)
        try:
            tls = context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError and TimeoutError are OSErrors
            error_log.debug("%s: TLS handshake failed: %r", client_address, exc)
            return
        try:
            tls.settimeout(previous)
            super().finish_request(tls, client_address)
        finally:
            # The plain socket was detached into ``tls``: closing it is up to us (the
            # caller's shutdown_request on ``request`` then finds nothing to close).
            try:
                tls.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the peer is gone
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A TLS error after the handshake (a bad record, no close_notify) is the client's
        doing: DEBUG, as a disconnect; anything else as the base class reports it."""
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            error_log.debug("%s: TLS error: %r", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)


class ThreadingHTTPSServer(ThreadingMixIn, HTTPSServer):
    """An HTTPS server with a (daemon) thread per connection; handshakes run there too."""

    daemon_threads = True
