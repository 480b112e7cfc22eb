"""Per-connection state of the event-loop server, and who owns a connection when.

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

from typing import Any

__all__ = ["BUSY", "HEAD", "IDLE", "NEW", "WAIT", "Conn"]

#: Connection states (see the module rules). NEW: accepted, no byte yet (head_timeout);
#: IDLE: between keep-alive requests (keepalive_timeout); HEAD: part of a head buffered
#: (head_timeout from its first byte, RFC 9112 section 9.8 lets us close); BUSY: on a worker
#: (or being served on the loop); WAIT: a deferred request waits for another socket (the
#: states before BUSY are the parked ones).
NEW, IDLE, HEAD, BUSY, WAIT = range(5)


class Conn:
    """One client connection of the pooled server."""

    __slots__ = ("addr", "aux", "closed", "deferred", "expires", "fd", "handler", "level",
                 "nowait", "raw", "reader", "sock", "state", "timer_seq", "timer_when", "tls",
                 "woken")

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
        #: The handler's ``Deferred`` while its request waits (and until it is resumed).
        self.deferred: Any = None
