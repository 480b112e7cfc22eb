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
* The other socket is armed one-shot under its own descriptor: ``EPOLL_CTL_MOD`` when it is
  registered already (a pooled upstream socket waited for before), ``ADD`` the first time.
  It stays registered while unused (disarmed, it reports nothing) and leaves the interest
  list when it is closed. A descriptor that is one of the server's own connections is
  refused (its events would be taken for the client's).
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

    __slots__ = ("by_fd", "inline_queue")

    def __init__(self, inline_queue: collections.deque[Conn]) -> None:
        #: Where a request goes when its wait is over: the loop's inline queue.
        self.inline_queue = inline_queue
        self.by_fd: dict[int, Conn] = {}

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
                try:
                    (poller.rearm_write if writable else poller.rearm)(fd)
                except FileNotFoundError:
                    poller.add(fd)
                    if writable:
                        poller.rearm_write(fd)
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

    def wake_all(self) -> None:
        """Shutdown: every waiting request goes on now (a worker finishes it, waiting at
        most until the grace ends)."""
        for conn in list(self.by_fd.values()):
            self.wake(conn, True)
