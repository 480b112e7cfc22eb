"""One client connection of the event-loop server: its state, who owns it when, and the
transitions between states (each a method here, next to the rules that govern it).

Rules of this module:

* A connection is owned by exactly one thread at a time, named by its ``state``: ``BUSY``
  means a thread serving it owns it (a worker, or the loop thread serving inline); every
  other state means the loop thread does. Ownership moves with a single attribute store
  (``state``), always the *last* store of a transition and made *before* the connection is
  handed over (a worker re-arms the poller only after :meth:`Conn.park`; the loop submits
  only after :meth:`Conn.take`), so a reader of ``state`` never sees a stale owner, nor a
  deadline older than the state.
* Transitions (who calls them)::

      (accept) -----handshaking()---> HANDSHAKE  loop: a TLS connection's handshake begins
      HANDSHAKE ----handshaken()----> NEW    loop: the handshake is done (same deadline)
      NEW/IDLE/HEAD --take()--------> BUSY   loop: a whole request to serve
      NEW/IDLE -----head_started()--> HEAD   loop: the first bytes of a head arrived
      BUSY ---------park()----------> IDLE or HEAD   its owner gives it back to the poller
      BUSY ---------suspend()-------> WAIT   loop: a deferred request waits for another socket
      WAIT ---------resume()--------> BUSY   loop: that socket is readable, or the wait timed out

  ``NEW`` is the state a plain connection is born in (a TLS one: after its handshake).
* Deadlines live in a heap touched only by the loop thread (see
  :mod:`minihttp.eventloop.deadlines`). Workers never push: they only write ``expires``
  (in :meth:`Conn.park`), which is never earlier than the connection's live entry except
  for a partial head, and for that one case they hand the connection to the loop to be
  re-timed.
* Poller registration: one-shot by default (a parked connection produces at most one
  readiness event, after which it belongs to the thread it is given to until that thread
  re-arms it; with epoll the re-arm is thread-safe and costs one syscall, so a worker parks
  a connection without waking the loop thread). Except with inline serving on epoll: a
  connection that never leaves the loop thread is registered level-triggered
  (``level_triggered``), so parking it after a request costs nothing; its events while it
  waits its turn (``BUSY`` in the inline queue) are ignored and come back at the next poll
  if bytes are still unread. Before such a connection goes to any other thread (a worker,
  or a handler that lost the loop) it is switched to one-shot (:meth:`Conn.to_oneshot`),
  and back to level-triggered (:meth:`Conn.to_level`) when the loop parks it again.
* ``WAIT``: the loop owns it; the other socket is registered one-shot under its own
  descriptor (``aux``); the client's own events are ignored meanwhile (a level-triggered
  client that sends more is switched to one-shot, so it cannot spin).
* ``HANDSHAKE``: a TLS connection whose handshake is not done. The loop owns it and drives
  the handshake (``hs``, a :class:`minihttp.eventloop.tls.Handshake`) one non-blocking step
  per readiness event (one-shot EPOLLIN, or EPOLLOUT after ``WANT_WRITE``). Its deadline is
  set at accept (``head_timeout``) and kept when it becomes ``NEW``, so it covers the
  handshake and the wait for the first request byte. No worker is involved until a request
  is whole. Its value is above ``BUSY``, so the hot path's ``state < BUSY`` (parked) test
  does not include it.
"""

from __future__ import annotations

import time
from typing import Any

from minihttp.eventloop.pollers import Poller

__all__ = ["BUSY", "HANDSHAKE", "HEAD", "IDLE", "NEW", "WAIT", "Conn"]

#: Connection states (see the module rules). NEW: accepted, no byte yet (head_timeout);
#: IDLE: between keep-alive requests (keepalive_timeout); HEAD: part of a head buffered
#: (head_timeout from its first byte, RFC 9112 section 9.8 lets us close); BUSY: being
#: served (on a worker, or on the loop thread); WAIT: a deferred request waits for another
#: socket; HANDSHAKE: a TLS handshake in progress, driven by the loop (``Conn.hs``). The
#: states before BUSY are the parked ones (``state < BUSY``).
NEW, IDLE, HEAD, BUSY, WAIT, HANDSHAKE = range(6)

_INF = float("inf")


class Conn:
    """One client connection of the pooled server."""

    __slots__ = ("addr", "aux", "closed", "deferred", "detached", "expires", "fd", "handler",
                 "hs",
                 "level_triggered", "nowait", "raw", "reader", "sock", "state", "timer_seq",
                 "timer_when", "tls", "woken")

    def __init__(self, sock: Any, addr: Any, fd: int) -> None:
        self.sock = sock
        self.raw = sock  # the accepted socket (differs from ``sock`` once TLS wraps it)
        self.addr = addr
        self.fd = fd
        self.handler: Any = None
        self.reader: Any = None
        self.state = NEW
        #: Monotonic time when the current wait ends (inf: no limit).
        self.expires = _INF
        self.timer_seq = -1
        #: When the live heap entry falls due (inf: none).
        self.timer_when = _INF
        self.closed = False
        #: Handed to someone else (``PooledHTTPServer.detach``): closing it must not shut
        #: the TCP connection (a duplicate descriptor carries on), only forget it.
        self.detached = False
        #: TLS pending or done: reads go through the SSL object (pending() bytes).
        self.tls = False
        #: A worker may try ``recv(MSG_DONTWAIT)`` (plain blocking socket, no Python timeout).
        self.nowait = False
        #: How the poller reports it: level-triggered (inline on epoll, loop thread only:
        #: parking it costs no system call) or one-shot (see the rules).
        self.level_triggered = False
        #: WAIT: the descriptor waited for. After the wait: whether it became readable
        #: (``woken``; False: the wait timed out), and the handler's ``Deferred`` to resume
        #: (``deferred``, None once resumed).
        self.aux = -1
        self.woken = False
        self.deferred: Any = None
        #: HANDSHAKE: the TLS handshake in progress (a ``minihttp.eventloop.tls.Handshake``).
        self.hs: Any = None

    # -- transitions (see the rules) ---------------------------------------------------------

    def handshaking(self, hs: Any, expires: float) -> None:
        """(accept) -> HANDSHAKE: the loop drives this TLS connection's handshake ``hs``
        until ``expires`` (head_timeout from accept, kept by :meth:`handshaken`)."""
        self.tls = True
        self.hs = hs
        self.expires = expires
        self.state = HANDSHAKE

    def handshaken(self) -> None:
        """HANDSHAKE -> NEW: the handshake is done; the connection (its socket now the
        SSLSocket) waits for its first request within the deadline set at accept."""
        self.sock = self.hs.sock
        self.hs = None
        self.state = NEW

    def take(self) -> None:
        """Parked -> BUSY: the loop gives the connection to whoever serves it next."""
        self.state = BUSY

    def head_started(self, now: float) -> bool:
        """NEW or IDLE -> HEAD: the first bytes of a head arrived, and the head deadline runs
        from now (loop thread). True when there is a deadline to put in the heap."""
        self.state = HEAD
        head_timeout = self.reader.limits.head_timeout
        if head_timeout is None:
            return False
        self.expires = now + head_timeout
        return True

    def park(self) -> bool:
        """BUSY -> HEAD when part of the next head is buffered (head_timeout), else IDLE
        (keepalive_timeout): its owner is about to give it back to the poller. True for
        HEAD (its deadline may be earlier than the live heap entry: the loop must re-time
        it)."""
        reader = self.reader
        limits = reader.limits
        head = bool(reader.buf)
        timeout = limits.head_timeout if head else limits.keepalive_timeout
        self.expires = _INF if timeout is None else time.monotonic() + timeout
        # The state last: once it is not BUSY the loop may expire the connection, and it
        # must then see the new deadline.
        self.state = HEAD if head else IDLE
        return head

    def suspend(self, fd: int, expires: float, deferred: Any) -> None:
        """BUSY -> WAIT: a deferred request waits for descriptor ``fd`` until ``expires``."""
        self.aux = fd
        self.woken = False
        self.deferred = deferred
        self.expires = expires
        self.state = WAIT

    def resume(self, ready: bool) -> int:
        """WAIT -> BUSY: the wait is over (``ready``: its socket became readable; False: it
        timed out, or the server is stopping). Returns the descriptor it waited for."""
        fd = self.aux
        self.aux = -1
        self.woken = ready
        self.state = BUSY
        return fd

    # -- poller registration -----------------------------------------------------------------

    def register(self, poller: Poller, level: bool) -> None:
        """A new connection joins the poller (loop thread), armed: level-triggered when it
        is to be served inline on epoll, else one-shot."""
        if level:
            poller.add_level(self.fd)
            self.level_triggered = True
        else:
            poller.add(self.fd)

    def to_oneshot(self, poller: Poller | None) -> None:
        """Before a level-triggered connection leaves the loop thread: one-shot, armed."""
        self.level_triggered = False
        if poller is not None:
            try:
                poller.rearm(self.fd)
            except (OSError, ValueError):
                pass  # closed meanwhile: its owner finds out on its next I/O

    def to_level(self, poller: Poller) -> None:
        """The loop parks a connection it served (epoll): level-triggered from now on.
        OSError/ValueError (closed meanwhile) propagate: the caller closes it."""
        poller.to_level(self.fd)
        self.level_triggered = True
