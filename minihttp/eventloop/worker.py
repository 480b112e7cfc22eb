"""Serving on a worker thread: requests in a row, linger, park, hand back.

Workers serve what the loop does not serve inline: every request when ``inline = False``,
TLS requests (with their ``pending()`` bytes; the handshake itself runs on the loop, see
:meth:`minihttp.eventloop.loop.Loop.on_handshake`), and what is left at shutdown. After a
response the worker serves a pipelined request already buffered at once. Then, while
another worker is free and no request waits, it waits for the client's next request itself
(a blocking ``recv`` bounded by SO_RCVTIMEO slices of ``linger``, up to ``linger_max``):
thread-per-connection behaviour. Under pressure it only tries one non-blocking ``recv`` and
otherwise parks the connection again: with epoll that is one thread-safe ``EPOLL_CTL_MOD``
and no wake-up of the loop thread.

Rules of this module:

* A worker owns the connection it was given (state ``BUSY``) until it parks it
  (:meth:`~minihttp.eventloop.conn.Conn.park`, then the re-arm), hands it back to the loop
  (``handbacks``, then a wake-up) or closes it. It never touches the loop's heap: a
  connection parked with part of a head buffered goes to the loop to be re-timed.
* What happens after each response is decided by
  :func:`~minihttp.eventloop.after.after_response`, as on the loop.
* :func:`park` and :func:`hand_back` are also how a handler that lost the loop gives its
  connection back (it is not a worker, but it is no longer the loop's either).
* A deferred request goes to the loop with its wait (``PooledHTTPServer.hand_over_wait``):
  from then on the loop owns the connection, and this thread touches neither it nor its
  handler again (the request resumes on the loop). Only while the server stops does the
  thread wait itself (``finish_deferred``).
* A worker is only ever given a connection with a whole request and a handler (TLS ones
  after their handshake, which the loop drives): it never does a handshake.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from minihttp.eventloop.after import AGAIN, CLOSE, FINISH, HAND_BACK, READ, WORKER, after_response
from minihttp.eventloop.conn import Conn

if TYPE_CHECKING:
    from minihttp.eventloop.loop import Loop
    from minihttp.eventloop.server import PooledHTTPServer

__all__ = ["MAX_IN_PLACE", "hand_back", "park", "serve"]

_RECV = 64 * 1024
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: Requests a worker serves in a row on one connection before letting others go first.
MAX_IN_PLACE = 64


def serve(server: PooledHTTPServer, conn: Conn) -> None:
    """Run on a worker: serve requests while they are there, then park, hand back or close."""
    loop = server._loop
    try:
        serve_now = True
        handler = conn.handler
        reader = conn.reader
        served = 0
        deferred = None
        close = buffered = looked = False
        while True:
            if serve_now:
                if conn.deferred is None:
                    deferred = handler.handle_one_request()
                else:  # a deferred request, given at shutdown: it waits up to the grace
                    conn.deferred = None
                    handler.finish_deferred(loop.grace_end if loop.closing else None)
                served += 1
                close = handler.close_connection or loop.closing
                buffered = reader.has_request() if reader.buf else False
                looked = False
            then = after_response(WORKER, deferred is not None, close, buffered,
                                  served < MAX_IN_PLACE or not buffered or not _pressed(server),
                                  looked)
            serve_now = then is AGAIN
            if serve_now:
                continue
            if then is READ:
                buffered = _read_nowait(server, conn) and reader.has_request()
                looked = True
                continue
            if then is FINISH:
                if server.hand_over_wait(conn, deferred):
                    return  # the loop waits for it, then resumes it (the loop owns conn)
                handler.finish_deferred()  # stopping: wait here
                deferred = None
                close = handler.close_connection or loop.closing
                buffered = reader.has_request() if reader.buf else False
                continue
            break
        if then is CLOSE:
            server._close(conn)
        elif then is HAND_BACK:
            hand_back(loop, conn)
        else:
            park(server, conn)
    except Exception:
        server.handle_error(conn.sock, conn.addr)
        server._close(conn)
    except BaseException:
        server._close(conn)
        raise


def _read_nowait(server: PooledHTTPServer, conn: Conn) -> bool:
    """Feed the reader what the client already sent; True if anything (or EOF) came."""
    sock = conn.sock
    if conn.tls:
        n = sock.pending()
        if not n:
            return False
        data: bytes = sock.recv(n)
    elif conn.nowait and server.speculative_read:
        lingered = _linger(server, conn)
        if lingered is None:
            return False
        data = lingered
    else:
        return False
    conn.reader.feed(data)
    return True


def _pressed(server: PooledHTTPServer) -> bool:
    """True when a request waits for a worker: time for this one to let others go."""
    loop = server._loop
    return bool(loop.backlog or loop.handbacks or server.pool.pending)


def _linger(server: PooledHTTPServer, conn: Conn) -> bytes | None:
    """Wait on the worker for the client's next request while threads are plentiful.

    Parking costs two thread hand-offs per request (worker -> poller -> worker), each
    expensive under the GIL; a worker that simply waits costs none, like
    thread-per-connection. So while another worker is free and no request waits, the
    worker does a blocking ``recv`` bounded by SO_RCVTIMEO (``linger`` seconds; a kernel
    timeout, so one syscall and one GIL release per request, as with a thread per
    connection), re-checks for pressure or shutdown after each expiry, and parks after
    ``linger_max`` (never past the keep-alive timeout). Under pressure it only looks
    whether the next request is there. Bytes, ``b''`` at EOF, or None (park).
    """
    sock = conn.sock
    pool = server.pool
    loop = server._loop
    reader = conn.reader
    wait = server.linger
    if (not wait or not reader.kernel_timeouts or loop.backlog
            or pool.busy >= pool.max_workers):
        try:
            data: bytes = sock.recv(_RECV, _DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            return b""
        return data
    reader.set_wait_timeout(wait)
    deadline = -1.0
    while True:
        try:
            data = sock.recv(_RECV)
            return data
        except BlockingIOError:
            pass  # SO_RCVTIMEO expired
        except OSError:
            return b""
        if loop.closing or _pressed(server) or pool.busy >= pool.max_workers:
            return None
        now = time.monotonic()
        if deadline < 0:
            most = server.linger_max
            keepalive = reader.limits.keepalive_timeout
            if keepalive is not None:
                most = min(most, keepalive)
            deadline = now + most - wait
        if now >= deadline:
            return None


def park(server: PooledHTTPServer, conn: Conn) -> None:
    """Give the connection back to the poller (no thread waits on it)."""
    loop = server._loop
    if loop.closing:
        server._close(conn)
        return
    poller = loop.poller
    if poller is None:
        server._close(conn)
        return
    if conn.park():
        loop.handbacks.append((conn, False))  # the loop re-times it
        loop.wake()
    try:
        poller.rearm(conn.fd)
    except (OSError, ValueError):
        if not loop.closing:
            server._close(conn)


def hand_back(loop: Loop, conn: Conn) -> None:
    """A request is buffered but this thread will not serve it: the loop does."""
    loop.handbacks.append((conn, True))
    loop.wake()
