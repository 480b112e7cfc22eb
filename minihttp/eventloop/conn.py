"""Per-connection state of the pooled server, its deadline heap, and the readiness pollers.

Rules of this module:

* A connection is owned by exactly one thread at a time, named by its ``state``: ``BUSY``
  means a worker owns it; every other state means the I/O thread does. Ownership moves with
  a single attribute store (``state``) made *before* the connection is handed over (a
  worker re-arms the poller only after it set ``state``; the I/O thread submits only after it
  set ``BUSY``), so a reader of ``state`` never sees a stale owner.
* Deadlines live in a heap touched only by the I/O thread, with at most one live entry per
  connection (``timer_seq`` names it; older entries are stale and skipped). Workers never
  push: they only write ``expires``, which is never earlier than the connection's live entry
  except for a partial head, and for that one case they hand the connection to the I/O thread
  to be re-timed. So expiry costs O(log n) per connection per timeout period, not a scan.
* Pollers are one-shot: a parked connection produces at most one readiness event, after which
  it belongs to the worker it is given to until the worker re-arms it. With epoll the re-arm
  (``EPOLL_CTL_MOD`` with ``EPOLLONESHOT``) is thread-safe and costs one syscall, so a worker
  parks a connection without waking the I/O thread at all.
* Except with inline serving on epoll: a connection that never leaves the loop thread is
  registered level-triggered (``Conn.level``), so parking it after a request costs nothing;
  its events while it waits its turn (``BUSY`` in the run queue) are ignored and come back at
  the next poll if bytes are still unread. Before such a connection goes to any other thread
  (a worker, or a handler that lost the loop) it is switched to one-shot (``rearm``: the same
  ``EPOLL_CTL_MOD``), and back to level-triggered (``to_level``) when the loop parks it again.
* ``WAIT``: a request deferred by its handler (``defer_until_readable``) waits for another
  socket (a proxy's upstream). The loop thread owns it: the other socket is registered
  one-shot under its own descriptor (``aux``) and, when it fires or ``expires`` passes, the
  request is resumed on the loop. The client's own events are ignored meanwhile (a
  level-triggered client that sends more is switched to one-shot, so it cannot spin).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import select
import selectors
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "BUSY", "HEAD", "IDLE", "NEW", "WAIT", "Conn", "Deadlines", "EpollPoller", "Poller",
    "SelectorPoller", "make_poller",
]

#: Connection states (see the module rules). NEW: accepted, no byte yet (head_timeout);
#: IDLE: between keep-alive requests (keepalive_timeout); HEAD: part of a head buffered
#: (head_timeout from its first byte, RFC 9112 section 9.8 lets us close); BUSY: on a worker
#: (or being served on the loop); WAIT: a deferred request waits for another socket (the
#: states before BUSY are the parked ones).
NEW, IDLE, HEAD, BUSY, WAIT = range(5)


class Conn:
    """One client connection of the pooled server."""

    __slots__ = ("addr", "aux", "closed", "expires", "fd", "handler", "level", "nowait",
                 "raw", "reader", "sock", "state", "timer_seq", "timer_when", "tls", "woken")

    def __init__(self, sock: Any, addr: Any, fd: int) -> None:
        self.sock = sock
        self.raw = sock  # the accepted socket (differs from ``sock`` once TLS wraps it)
        self.addr = addr
        self.fd = fd
        self.handler: Any = None
        self.reader: Any = None
        self.state = NEW
        #: Monotonic time when the current wait ends (inf: no limit).
        self.expires = float("inf")
        self.timer_seq = -1
        #: When the live heap entry falls due (inf: none).
        self.timer_when = float("inf")
        self.closed = False
        #: TLS pending or done: reads go through the SSL object (pending() bytes).
        self.tls = False
        #: A worker may try ``recv(MSG_DONTWAIT)`` (plain blocking socket, no Python timeout).
        self.nowait = False
        #: Registered level-triggered (inline serving on epoll): parking it again costs no
        #: system call. False: one-shot, re-armed after each hand-over (see the rules).
        self.level = False
        #: WAIT: the descriptor waited for; ``woken``: whether it became readable (False:
        #: the wait timed out).
        self.aux = -1
        self.woken = False


class Deadlines:
    """A heap of ``(when, seq, conn)``; only the I/O thread uses it."""

    __slots__ = ("_counter", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Conn]] = []
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, conn: Conn, when: float) -> None:
        """Make ``when`` the connection's live entry (an earlier live one is superseded)."""
        if when == float("inf"):
            conn.timer_seq = -1
            conn.timer_when = when
            return
        seq = next(self._counter)
        conn.timer_seq = seq
        conn.timer_when = when
        heapq.heappush(self._heap, (when, seq, conn))

    def next_time(self) -> float | None:
        """When the earliest entry falls due (it may be stale), or None."""
        heap = self._heap
        while heap and (heap[0][2].closed or heap[0][1] != heap[0][2].timer_seq):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Conn]:
        """Remove and return the connections whose live entry is due at ``now``."""
        heap = self._heap
        out: list[Conn] = []
        while heap and heap[0][0] <= now:
            _when, seq, conn = heapq.heappop(heap)
            if seq == conn.timer_seq and not conn.closed:
                conn.timer_seq = -1
                conn.timer_when = float("inf")
                out.append(conn)
        return out


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
