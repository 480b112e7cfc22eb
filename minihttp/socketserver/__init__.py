"""minihttp's own ``socketserver``: the standard library's API, with a prompt shutdown,
a bounded worker pool, and an accept loop that survives running out of descriptors.

Code written for the standard library's ``socketserver`` runs after changing the import::

    from minihttp.socketserver import ThreadingTCPServer, StreamRequestHandler

Modules: ``servers`` (the loop and the socket servers), ``mixins`` (thread / process per
request), ``pool`` (bounded worker pool + ``ThreadPoolMixIn``), ``handlers`` (request
handlers), ``_wakeup`` (the selector wake-up channel), ``_report`` (error logging).

``__all__`` lists the standard library's public names on the running Python (so
``ForkingUnixStreamServer`` / ``ForkingUnixDatagramServer`` only from 3.12, though the
classes exist on every version), plus this package's additions.
"""

from __future__ import annotations

import os
import socket
import sys

from .handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .mixins import ThreadingMixIn
from .servers import BaseServer, TCPServer, UDPServer
from .workers import ThreadPoolMixIn, WorkerPool

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadPoolMixIn",
    "ThreadPoolTCPServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "UDPServer",
    "WorkerPool",
]


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """A datagram server with a thread per datagram."""


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """A TCP server with a thread per connection."""


class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer):
    """A TCP server whose connections are handled by a bounded worker pool."""


if hasattr(os, "fork"):
    from .mixins import ForkingMixIn

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        """A datagram server with a process per datagram."""

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        """A TCP server with a process per connection."""

    __all__ += ["ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer"]

if hasattr(socket, "AF_UNIX"):
    from .servers import UnixDatagramServer, UnixStreamServer

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        """A Unix-domain stream server with a thread per connection."""

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        """A Unix-domain datagram server with a thread per datagram."""

    class ThreadPoolUnixStreamServer(ThreadPoolMixIn, UnixStreamServer):
        """A Unix-domain stream server whose connections go to a bounded worker pool."""

    __all__ += ["ThreadPoolUnixStreamServer", "ThreadingUnixDatagramServer",
                "ThreadingUnixStreamServer", "UnixDatagramServer", "UnixStreamServer"]

    if hasattr(os, "fork"):

        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            """A Unix-domain stream server with a process per connection."""

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            """A Unix-domain datagram server with a process per datagram."""

        if sys.version_info >= (3, 12):
            __all__ += ["ForkingUnixDatagramServer", "ForkingUnixStreamServer"]
