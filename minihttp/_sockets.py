"""Socket-level vocabulary shared by the reader, the body readers, the writer and the proxy.

Kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO) instead of Python's ``settimeout``: with a
Python timeout every ``recv`` / ``send`` is preceded by a ``poll``, i.e. one more syscall and
one more release and re-acquisition of the GIL per call, which with a thread per connection
roughly halves throughput (measured with wrk -c16).
"""

from __future__ import annotations

import socket
import struct
import sys

__all__ = ["KERNEL_TIMEOUTS", "RECV_SIZE", "ClientDisconnected", "set_send_timeout", "timeval"]

#: Bytes asked of the socket per ``recv``.
RECV_SIZE = 64 * 1024

#: Kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO) on a blocking socket instead of Python's
#: ``settimeout``: with a Python timeout every ``recv`` / ``send`` is preceded by a ``poll``,
#: i.e. one more syscall and one more release and re-acquisition of the GIL per call, which
#: with a thread per connection roughly halves throughput (measured with wrk -c16).
KERNEL_TIMEOUTS = sys.platform.startswith("linux") and hasattr(socket, "SO_RCVTIMEO")


def timeval(timeout: float | None) -> bytes:
    if timeout is None:
        return struct.pack("ll", 0, 0)  # zero: wait forever
    sec = int(timeout)
    usec = max(int((timeout - sec) * 1_000_000), 0 if sec else 1)
    return struct.pack("ll", sec, usec)


def set_send_timeout(sock: socket.socket, timeout: float | None) -> bool:
    """Bound each blocking ``send`` with SO_SNDTIMEO; False if that is not possible here."""
    if not KERNEL_TIMEOUTS or type(sock) is not socket.socket or sock.gettimeout() is not None:
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(timeout))
    return True


class ClientDisconnected(ConnectionError):
    """The client closed the connection before the message was complete."""

