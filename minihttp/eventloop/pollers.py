"""Readiness pollers of the event loop: epoll on Linux, a ``selectors`` fallback elsewhere.

Rules of this module:

* Pollers are one-shot: a parked connection produces at most one readiness event, after which
  it belongs to the thread it is given to until that thread re-arms it. With epoll the re-arm
  (``EPOLL_CTL_MOD`` with ``EPOLLONESHOT``) is thread-safe and costs one syscall, so a worker
  parks a connection without waking the loop thread at all. The selectors fallback queues
  re-arms for the loop thread and wakes it (a selector is not thread-safe).
* Write interest (``rearm_write``) is one-shot too and replaces the read interest until the
  event: it is for a TLS handshake whose send buffer was full (``Step.WANT_WRITE``, see
  :mod:`minihttp.eventloop.tls`), which only the loop thread drives; ``rearm`` goes back
  to reading.
* Level-triggered registrations (``add_level``, ``to_level``; epoll only,
  ``supports_level``) are for descriptors that never leave the loop thread: the listener,
  the wake-up socket, and connections served inline (parking them again costs nothing).
"""

from __future__ import annotations

import collections
import select
import selectors
import threading
from collections.abc import Callable

__all__ = ["EpollPoller", "Poller", "SelectorPoller", "make_poller"]


class Poller:
    """Readiness of parked connections (one-shot) plus a few level-triggered descriptors."""

    #: Connections may also be registered level-triggered (``add_level``, ``to_level``).
    supports_level = False

    def to_level(self, fd: int) -> None:
        """Switch a connection to level-triggered, armed. Loop thread only."""
        raise NotImplementedError

    def add_level(self, fd: int) -> None:
        raise NotImplementedError

    def remove_level(self, fd: int) -> None:
        raise NotImplementedError

    def add(self, fd: int) -> None:
        """Register a new connection, armed. I/O thread only."""
        raise NotImplementedError

    def rearm(self, fd: int) -> None:
        """Watch a connection for one more readiness event. Any thread."""
        raise NotImplementedError

    def rearm_write(self, fd: int) -> None:
        """Watch a registered connection for one writability event (instead of
        readability). Loop thread only."""
        raise NotImplementedError

    def forget(self, fd: int) -> None:
        """Stop watching a connection the I/O thread is about to close. I/O thread only."""

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


if hasattr(select, "epoll"):

    class EpollPoller(Poller):
        """Linux epoll: one-shot registrations re-armed from any thread (one syscall)."""

        _ARM = select.EPOLLIN | select.EPOLLONESHOT
        _ARM_WRITE = select.EPOLLOUT | select.EPOLLONESHOT
        supports_level = True

        def __init__(self, wake: Callable[[], None]) -> None:
            self._ep = select.epoll()

        def to_level(self, fd: int) -> None:
            self._ep.modify(fd, select.EPOLLIN)

        def add_level(self, fd: int) -> None:
            self._ep.register(fd, select.EPOLLIN)

        def remove_level(self, fd: int) -> None:
            try:
                self._ep.unregister(fd)
            except (OSError, ValueError):
                pass

        def add(self, fd: int) -> None:
            self._ep.register(fd, self._ARM)

        def rearm(self, fd: int) -> None:
            self._ep.modify(fd, self._ARM)

        def rearm_write(self, fd: int) -> None:
            self._ep.modify(fd, self._ARM_WRITE)

        def forget(self, fd: int) -> None:
            pass  # closing the descriptor removes it from the interest list

        def poll(self, timeout: float | None) -> list[tuple[int, int]]:
            return self._ep.poll(-1 if timeout is None else timeout)

        def close(self) -> None:
            self._ep.close()


class SelectorPoller(Poller):
    """Portable fallback on ``selectors``: re-arms are queued for the I/O thread and wake it.

    A selector is not thread-safe, so only the I/O thread registers; a connection is
    unregistered when its event is reported (one-shot by hand).
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake = wake
        self._pending: collections.deque[int] = collections.deque()
        self._level: set[int] = set()
        self._lock = threading.Lock()

    def add_level(self, fd: int) -> None:
        self._sel.register(fd, selectors.EVENT_READ)
        self._level.add(fd)

    def remove_level(self, fd: int) -> None:
        self._level.discard(fd)
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def add(self, fd: int) -> None:
        self._sel.register(fd, selectors.EVENT_READ)

    def rearm(self, fd: int) -> None:
        self._pending.append(fd)
        self._wake()

    def rearm_write(self, fd: int) -> None:
        try:
            self._sel.register(fd, selectors.EVENT_WRITE)
        except KeyError:  # registered for reading still: switch
            self._sel.modify(fd, selectors.EVENT_WRITE)

    def forget(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        pending = self._pending
        while pending:
            fd = pending.popleft()
            try:
                self._sel.register(fd, selectors.EVENT_READ)
            except (KeyError, ValueError, OSError):
                pass  # closed meanwhile, or already registered
        if pending:
            timeout = 0
        out: list[tuple[int, int]] = []
        for key, events in self._sel.select(timeout):
            fd = key.fd
            if fd not in self._level:
                self._sel.unregister(fd)
            out.append((fd, events))
        return out

    def close(self) -> None:
        self._sel.close()


def make_poller(wake: Callable[[], None], portable: bool = False) -> Poller:
    """epoll where it exists (unless ``portable``), else the selectors fallback."""
    if not portable and hasattr(select, "epoll"):
        return EpollPoller(wake)
    return SelectorPoller(wake)
