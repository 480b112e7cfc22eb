"""A wake-up channel for a selector loop: any thread can interrupt a ``select()`` at once.

The standard library's ``serve_forever`` only notices ``shutdown()`` when its poll interval
runs out (0.5 s by default). Here the loop also waits on the read end of a socketpair, and
:meth:`Waker.wake` writes one byte to the other end, so the wait ends immediately. The same
object lets a worker pool tell the accept loop "there is room again" (back-pressure release),
and any later selector loop in minihttp (e.g. the pooled HTTP server) can reuse it.

Rules of this module:

* ``wake()`` never blocks and never raises: a full pipe already means "a wake-up is pending".
* ``wake()`` after ``close()`` is a harmless no-op (shutdown may race with the loop's exit).
"""

from __future__ import annotations

import socket
import threading

__all__ = ["Waker"]


class Waker:
    """Both ends of a non-blocking socketpair; register :meth:`fileno` for reading."""

    __slots__ = ("_closed", "_lock", "_reader", "_writer")

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        # Serialises wake() against close() so a late wake() never writes to a closed
        # (and possibly reused) descriptor.
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        """The descriptor to watch for readability (selector interface)."""
        return self._reader.fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def wake(self) -> None:
        """Make the watching selector return now. Thread-safe; never blocks."""
        with self._lock:
            if self._closed:
                return
            try:
                self._writer.send(b"\0")
            except OSError:
                # BlockingIOError: the buffer is full, so a wake-up is already pending.
                pass

    def drain(self) -> None:
        """Consume pending wake-up bytes so the next ``select()`` blocks again."""
        try:
            while self._reader.recv(4096):
                pass
        except OSError:
            # BlockingIOError (nothing left) or a closed pair: either way, drained.
            pass

    def close(self) -> None:
        """Close both ends. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._writer.close()

    def __enter__(self) -> Waker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
