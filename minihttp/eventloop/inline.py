"""Inline serving: the loop's leader runs handlers itself, one request per ready connection
per round.

No thread hand-off at all: under the GIL every hand-off between threads costs a wake-up and
a GIL transfer, and with a thread per connection those dominate a small request (measured:
a bare epoll loop answers ~1.2x what a bare thread-per-connection loop does, and with 4.4 us
of Python per request ~2.7x). The price is that a handler that blocks stalls the loop, which
is what the watchdog of :mod:`minihttp.eventloop.leadership` is for.

Rules of this module:

* Each request is a *turn* (``begin_turn`` .. ``end_turn``): the watchdog may depose the
  leader only during a turn, and the leader learns whether it was deposed only when the
  turn ends, under the leadership lock, before it does anything else with the connection.
  After a deposition this thread is no longer the loop's: it finishes the connection as a
  worker would (:mod:`minihttp.eventloop.worker`'s ``park`` and ``hand_back``), and returns.
* What happens after the response is decided by
  :func:`~minihttp.eventloop.after.after_response`, as on workers.
* One request per connection per round, then the loop polls again: connections take turns,
  and a pipelined request waits behind the others' (fairness).
* A connection served here is parked level-triggered on epoll (no system call per request);
  one that went elsewhere is switched back when the loop parks it again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from minihttp.eventloop import worker
from minihttp.eventloop.after import (
    AGAIN,
    CLOSE,
    DEPOSED,
    FINISH,
    HAND_BACK,
    LOOP,
    PARK,
    SUSPEND,
    After,
    Where,
    after_response,
)
from minihttp.eventloop.conn import Conn

if TYPE_CHECKING:
    from minihttp.eventloop.loop import Loop
    from minihttp.eventloop.server import PooledHTTPServer

__all__ = ["park_inline", "serve_round"]


def serve_round(loop: Loop, server: PooledHTTPServer, epoch: int) -> bool:
    """Serve the requests now in the inline queue, one each; False if this thread lost the
    loop meanwhile (the new leader owns the loop's state then: return at once)."""
    queue = loop.inline_queue
    leadership = server._leadership
    begin_turn = leadership.begin_turn
    end_turn = leadership.end_turn
    prefetch = server.prefetch_body
    for _ in range(len(queue)):
        if not queue or loop.stop:
            return True
        conn = queue.popleft()
        handler = conn.handler
        begin_turn(conn)
        try:
            if conn.deferred is None:
                deferred = handler.handle_one_request()
            else:  # woken from WAIT
                conn.deferred = None
                deferred = handler.resume_request(conn.woken)
            where = end_turn(epoch)
            reader = conn.reader
            then = after_response(
                where, deferred is not None, handler.close_connection or loop.closing,
                (reader.has_request() and not reader.body_missing(prefetch))
                if reader.buf else False)
            if then is SUSPEND or then is FINISH:
                then, where = _deferred(loop, server, conn, deferred, then, where, epoch)
        except Exception:
            where = end_turn(epoch)
            server.handle_error(conn.sock, conn.addr)
            server._close(conn)
            if where is DEPOSED:
                return False
            continue
        except BaseException:
            end_turn(epoch)
            server._close(conn)
            raise
        if then is PARK:
            if where is LOOP:
                park_inline(loop, conn)
            else:
                worker.park(server, conn)
        elif then is AGAIN:
            queue.append(conn)  # its turn again next round
        elif then is CLOSE:
            server._close(conn)
        elif then is HAND_BACK:
            worker.hand_back(loop, conn)
        # SUSPEND: the loop waits for it (WAIT)
        if where is DEPOSED:
            return False
    return True


def _deferred(loop: Loop, server: PooledHTTPServer, conn: Conn, deferred: Any, then: After,
              where: Where, epoch: int) -> tuple[After, Where]:
    """A deferred response: the loop waits for it (``SUSPEND``), or this thread does and
    the decision is made again once the response is complete."""
    handler = conn.handler
    leadership = server._leadership
    if then is SUSPEND:
        if loop.waits.suspend(loop, conn, deferred):
            return SUSPEND, where
        # The loop cannot wait for that socket: the handler waits, in a turn of its own
        # that the watchdog may depose like any other.
        leadership.begin_turn(conn)
        handler.finish_deferred()
        where = leadership.end_turn(epoch)
    else:  # deposed meanwhile: the loop waits for it, unless stopping (then: wait here)
        if server.hand_over_wait(conn, deferred):
            return SUSPEND, where
        handler.finish_deferred()
    reader = conn.reader
    then = after_response(
        where, False, handler.close_connection or loop.closing,
        (reader.has_request() and not reader.body_missing(server.prefetch_body))
        if reader.buf else False)
    return then, where


def park_inline(loop: Loop, conn: Conn) -> None:
    """The leader parks a connection it served: no system call when it is level-triggered
    already; a partial head is timed here (the loop owns the timers)."""
    if conn.park():
        loop.schedule(conn, time.monotonic())
    if not conn.level_triggered:
        poller = loop.poller
        try:
            if poller is None:
                loop.server._close(conn)
            elif poller.supports_level:
                conn.to_level(poller)
            else:
                poller.rearm(conn.fd)
        except (OSError, ValueError):
            loop.server._close(conn)
