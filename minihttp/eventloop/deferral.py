"""Deferred requests on the event loop: the ``WAIT`` state.

A handler whose answer waits on another socket (a proxy's upstream) may defer the rest of
its response (``BaseHTTPRequestHandler.defer_until_readable``): its ``handle_one_request``
returns a :class:`~minihttp.server.Deferred` instead of finishing. When the loop's leader
served it, the loop waits for that socket instead of a thread: the request holds no thread,
and the loop serves others meanwhile. When the socket is readable, or the wait's timeout
passes, the request goes back to the loop's inline queue and is resumed there
(``resume_request(ready)``).

Rules of this module:

* Loop thread only: :class:`Waits` is touched by the leader between turns (suspend) and by
  the loop's rounds (readiness, deadlines, the drain), never by workers.
* The other socket is *watched*: registered level-triggered under its own descriptor the
  first time (``add_level``; ``to_level`` if epoll has it already), and left registered
  and armed afterwards, so a pooled upstream socket waited for again costs no system call
  (measured: one ``epoll_ctl`` and ~1.5 us per proxied request saved, cpu_proxy.py
  --pooled). :attr:`Waits.watched` maps each watched descriptor to the socket object it
  was registered for; a closed socket leaves epoll's interest list by itself, and a new
  socket on the same descriptor number is a different object, so it is registered again.
  An event for a watched descriptor nobody waits for (an idle upstream closed, bytes
  nobody asked for, a worker using the socket on its own thread) takes it out of epoll
  (``unwatch``, one ``EPOLL_CTL_DEL``): it never spins the loop. A socket given to
  ``defer_until_readable`` must not be duplicated (``dup``): epoll would keep a closed
  duplicate's registration. A descriptor that is one of the server's own connections is
  refused (its events would be taken for the client's). A poller without level-triggered
  registrations (the selectors fallback) arms it one-shot instead (``rearm``, ``add`` the
  first time).
* The connection's live heap entry (it always has one, at most the shortest server timeout
  ahead) looks again when it falls due; a new entry is pushed only when the wait ends
  before that (no heap push per request for the usual long timeout).
* Deferral needs level-triggered epoll (``defer_readable`` says no elsewhere): the client
  is level-triggered meanwhile and must be switched to one-shot if it sends more.
* A wait for the client's own connection (writable: ``Deferred.writable``,
  ``defer_until_writable``; or readable: a request body streamed as it arrives) re-arms the
  client's descriptor one-shot (EPOLLOUT or EPOLLIN) and is filed under it: the loop finds
  it in ``by_fd`` (a WAIT connection is never read), and the connection is one-shot from
  then on (parked later, it is re-armed for reading). Another socket may be waited for
  writable too (a proxy's upstream taking a request body): armed one-shot EPOLLOUT.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

from minihttp.eventloop.conn import Conn

if TYPE_CHECKING:
    from minihttp.eventloop.loop import Loop

__all__ = ["Waits"]

_INF = float("inf")


class Waits:
    """Deferred requests (state WAIT) by the descriptor each waits for."""

    __slots__ = ("by_fd", "inline_queue", "watched")

    def __init__(self, inline_queue: collections.deque[Conn]) -> None:
        #: Where a request goes when its wait is over: the loop's inline queue.
        self.inline_queue = inline_queue
        self.by_fd: dict[int, Conn] = {}
        #: Descriptors registered level-triggered for deferred reads -> the socket each was
        #: registered for (a strong reference: an id could be reused by a new object).
        self.watched: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.by_fd)

    def suspend(self, loop: Loop, conn: Conn, deferred: Any) -> bool:
        """Make ``conn`` wait for ``deferred.sock`` (WAIT) on ``loop``; False when that
        cannot be done (the caller then waits itself)."""
        poller = loop.poller
        timeout = deferred.timeout
        try:
            fd = deferred.sock.fileno()
            writable = getattr(deferred, "writable", False)
            if fd < 0 or poller is None:
                return False
            if fd == conn.fd:
                # The client's own descriptor (writable: a slow reader; readable: a request
                # body arriving slowly): its registration becomes one-shot (so no longer
                # level-triggered: parking it afterwards re-arms it for reading).
                (poller.rearm_write if writable else poller.rearm)(fd)
                conn.level_triggered = False
            else:
                if fd in loop.conns:
                    return False
                if writable:
                    # One-shot EPOLLOUT replaces a level-triggered read registration, if any:
                    # forget it, so a later read wait registers it again (to_level).
                    self.watched.pop(fd, None)
                    try:
                        poller.rearm_write(fd)
                    except FileNotFoundError:
                        poller.add(fd)
                        poller.rearm_write(fd)
                elif poller.supports_level:
                    sock = deferred.sock
                    watched = self.watched
                    if watched.get(fd) is not sock:  # else registered and armed already
                        try:
                            poller.add_level(fd)
                        except FileExistsError:  # registered by earlier code: make it so
                            poller.to_level(fd)
                        watched[fd] = sock
                else:
                    try:
                        poller.rearm(fd)
                    except FileNotFoundError:
                        poller.add(fd)
        except (OSError, ValueError, AttributeError):
            return False
        self.by_fd[fd] = conn
        now = time.monotonic() if timeout is not None else 0.0
        conn.suspend(fd, _INF if timeout is None else now + timeout, deferred)
        if conn.expires < conn.timer_when:
            loop.schedule(conn, now)
        return True

    def wake(self, conn: Conn, ready: bool) -> None:
        """The socket is readable (``ready``), or the wait timed out: resume the request on
        the loop (its inline queue)."""
        self.by_fd.pop(conn.resume(ready), None)
        self.inline_queue.append(conn)

    def unwatch(self, poller: Any, fd: int) -> None:
        """A watched descriptor is readable and nobody waits for it: out of epoll (so it
        cannot report again and again) until a request waits for it again."""
        self.watched.pop(fd, None)
        poller.remove_level(fd)

    def wake_all(self) -> None:
        """Shutdown: every waiting request goes on now (a worker finishes it, waiting at
        most until the grace ends)."""
        for conn in list(self.by_fd.values()):
            self.wake(conn, True)
