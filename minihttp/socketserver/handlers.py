"""Request handlers: one instance per request, ``setup()`` / ``handle()`` / ``finish()``.

Same API as the standard library's handlers. ``StreamRequestHandler`` gives ``rfile``
(buffered reads) and ``wfile``; with the default ``wbufsize = 0`` the writer is unbuffered
and every ``write()`` sends all of its bytes before returning (``sendall``; Python retries
a send interrupted by a signal, PEP 475), so nothing waits in a buffer for a flush.
Differences: ``disable_nagle_algorithm`` is ignored on non-TCP sockets (Unix domain) instead
of failing, and ``finish()`` closes both files even if flushing fails.
"""

from __future__ import annotations

import io
import socket
from typing import Any, BinaryIO, cast

__all__ = ["BaseRequestHandler", "DatagramRequestHandler", "SocketWriter",
           "StreamRequestHandler"]


class BaseRequestHandler:
    """Base of all handlers: the constructor runs ``setup``, ``handle``, then ``finish``.

    ``self.request``, ``self.client_address`` and ``self.server`` are set first.
    ``finish`` runs even when ``handle`` raises.
    """

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """Prepare for ``handle``. May be overridden."""

    def handle(self) -> None:
        """Service the request. Override this."""

    def finish(self) -> None:
        """Clean up after ``handle``. May be overridden."""


class SocketWriter(io.BufferedIOBase):
    """An unbuffered binary writer over a socket: ``write`` sends everything or raises."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        """Send all of ``b`` (bytes-like); return its length in bytes."""
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


_TCP_FAMILIES = frozenset(f for f in (socket.AF_INET, getattr(socket, "AF_INET6", None))
                          if f is not None)


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream sockets: ``self.connection``, ``self.rfile``, ``self.wfile``."""

    #: Read buffer size for ``rfile`` (-1: the default buffer size).
    rbufsize: int = -1
    #: Write buffer size for ``wfile``; 0 means unbuffered (:class:`SocketWriter`).
    wbufsize: int = 0
    #: Socket timeout in seconds for this connection (None: blocking, no timeout).
    timeout: float | None = None
    #: Set TCP_NODELAY so small writes go out at once.
    disable_nagle_algorithm: bool = False

    connection: socket.socket
    rfile: BinaryIO
    wfile: BinaryIO

    def setup(self) -> None:
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        # getattr: a test's fake socket may offer only makefile() (as http.server allows,
        # whose handlers leave Nagle alone by default; minihttp's turn it off).
        setsockopt = getattr(self.connection, "setsockopt", None)
        if (self.disable_nagle_algorithm and setsockopt is not None
                and getattr(self.connection, "family", None) in _TCP_FAMILIES):
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = cast(BinaryIO, self.connection.makefile("rb", self.rbufsize))
        if self.wbufsize == 0:
            self.wfile = cast(BinaryIO, SocketWriter(self.connection))
        else:
            self.wfile = cast(BinaryIO, self.connection.makefile("wb", self.wbufsize))

    def finish(self) -> None:
        try:
            if not self.wfile.closed:
                try:
                    self.wfile.flush()
                except OSError:
                    pass  # the client is gone; nothing more to deliver
            self.wfile.close()
        except OSError:
            pass  # close() flushes too
        finally:
            self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for datagrams: ``rfile`` reads the packet, ``wfile`` collects the reply."""

    packet: bytes
    socket: socket.socket
    rfile: io.BytesIO
    wfile: io.BytesIO

    def setup(self) -> None:
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
