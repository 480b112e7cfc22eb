"""The event loop of the pooled server: accept, readiness, deadlines (408), hand-backs from
workers, and the drain at shutdown.

One thread at a time runs :meth:`Loop.run`: the leader (see
:mod:`minihttp.eventloop.leadership`). It watches the listening socket, a wake-up socket and
every parked connection (idle between requests, or with a head or small body still arriving)
and the sockets deferred requests wait for. Bytes of a parked connection are read without
blocking and fed to its handler's reader until a whole request is there; the request then
goes to the inline queue (served by the leader itself, :mod:`minihttp.eventloop.inline`)
or to a worker (:mod:`minihttp.eventloop.worker`). A TLS connection's handshake runs here
too, one non-blocking step per readiness event (:meth:`Loop.on_handshake`), so a client
that never sends its ClientHello, or drips it, holds no thread.

Rules of this module:

* The loop's state lives on the :class:`Loop` object, not in the running thread, so a new
  leader continues exactly where a deposed one stopped. The server owns the loop; the loop
  refers back to it weakly (no reference cycle). Only the leader touches it, except
  ``handbacks`` (any thread appends, then wakes the loop), ``stop`` and ``closing`` (flags:
  written by other threads, each followed by a wake-up) and ``poller`` (workers re-arm it;
  epoll is thread-safe, the selectors fallback queues re-arms for the loop).
* The queues, each one idea: ``inline_queue``: whole requests the leader serves this
  round, one per connection per round (fairness); ``handbacks``: what workers give back,
  ``(conn, True)`` a request to serve, ``(conn, False)`` a connection parked mid-head to be
  re-timed (workers never touch the heap), ``(conn, deferred)`` a request deferred off the
  loop whose wait the loop takes over (``PooledHTTPServer.hand_over_wait``); ``backlog``:
  whole requests waiting for a free worker (the pool's queue is full).
* Settings are read when ``serve_forever`` starts (``inline``, ``portable_poller``).
* Accepting pauses (the listener leaves the poller) while ``max_connections`` are open, for
  ``accept_backoff`` after EMFILE/ENFILE/ENOBUFS/ENOMEM, and while the server's
  ``accepting()`` says no: new connections then wait in the kernel's listen backlog.
"""

from __future__ import annotations

import collections
import errno
import socket
import ssl
import time
import weakref
from typing import TYPE_CHECKING, Any

from minihttp.eventloop import worker
from minihttp.eventloop.conn import BUSY, HANDSHAKE, HEAD, WAIT, Conn
from minihttp.eventloop.deadlines import Deadlines
from minihttp.eventloop.deferral import Waits
from minihttp.eventloop.inline import serve_round
from minihttp.eventloop.pollers import Poller, make_poller
from minihttp.eventloop.tls import Handshake, Step
from minihttp.logs import error_log
from minihttp.socketserver._wakeup import Waker
from minihttp.socketserver.workers import WorkerPool

if TYPE_CHECKING:
    from minihttp.eventloop.server import PooledHTTPServer

__all__ = ["ACCEPT_BATCH", "Loop"]

#: accept() failures meaning "out of resources": back off instead of spinning.
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
_RECV = 64 * 1024
_INF = float("inf")
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: Most connections taken from the listen queue per readiness event (see :meth:`Loop.accept`).
ACCEPT_BATCH = 128


class Loop:
    """The event loop's state and its rounds (run by whichever thread leads)."""

    def __init__(self, server: PooledHTTPServer) -> None:
        # Weak: the server owns the loop (no reference cycle, so a server dropped without
        # server_close() is freed, and its listening socket closed, at once, as before).
        self._server = weakref.ref(server)
        #: The server's connections by descriptor (the loop adds; any owner closes).
        self.conns: dict[int, Conn] = server._conns
        self.poller: Poller | None = None
        self.waker: Waker | None = None
        self.timers = Deadlines()
        self.inline = True
        #: ``shutdown()`` was called: drain and end.
        self.stop = False
        #: Draining or ended: parked connections close, busy ones close after their response.
        self.closing = False
        self.listening = False
        self.paused_until = 0.0
        self.poll_interval = 0.5
        #: While draining: when the grace ends (deferred requests on workers wait no longer).
        self.grace_end: float | None = None
        self.inline_queue: collections.deque[Conn] = collections.deque()
        #: (connection, True: serve its buffered request | False: re-time it | a Deferred:
        #: wait for it, see PooledHTTPServer.hand_over_wait).
        self.handbacks: collections.deque[tuple[Conn, Any]] = collections.deque()
        self.backlog: collections.deque[Conn] = collections.deque()
        self.waits = Waits(self.inline_queue)

    @property
    def server(self) -> PooledHTTPServer:
        """The server this loop serves."""
        server = self._server()
        if server is None:
            raise ReferenceError("the server of this loop is gone")
        return server

    def pool(self) -> WorkerPool:
        """The server's worker pool (created on first use)."""
        return self.server.pool

    # -- serving begins and ends -------------------------------------------------------------

    def open(self, poll_interval: float) -> None:
        """``serve_forever`` starts: a new poller and waker, fresh timers."""
        server = self.server
        self.stop = self.closing = False
        self.grace_end = None
        self.inline = server.inline
        waker = Waker()
        poller = make_poller(waker.wake, server.portable_poller)
        with server._lock:
            self.waker, self.poller = waker, poller
        self.listening = False
        self.poll_interval = poll_interval
        self.timers = Deadlines()

    def finish(self) -> None:
        """The last leader's cleanup: release the poller and the waker; serving has ended."""
        poller, waker = self.poller, self.waker
        self.closing = True
        with self.server._lock:
            self.waker = self.poller = None
        self.listening = False
        if poller is not None:
            poller.close()
        if waker is not None:
            waker.close()
        self.stop = False
        self.server._serving_ended()

    def wake(self) -> None:
        """Make the loop look at its queues and flags now. Thread-safe, never blocks."""
        waker = self.waker
        if waker is not None:
            waker.wake()

    def release(self, conn: Conn) -> None:
        """A connection leaves the loop thread for good (its handler lost the loop)."""
        if conn.level_triggered:
            conn.to_oneshot(self.poller)

    # -- the rounds --------------------------------------------------------------------------

    def run(self, epoch: int) -> None:
        """Run the loop as the leader of ``epoch``, then drain and clean up at the end.

        Returns early, leaving everything in place, when this thread lost the loop because a
        handler run here held it too long (see :mod:`minihttp.eventloop.leadership`).
        """
        server = self.server
        leadership = server._leadership
        if not leadership.take(epoch):
            return
        poller, waker = self.poller, self.waker
        assert poller is not None and waker is not None
        timers = self.timers
        poll_interval = self.poll_interval
        lfd = server.socket.fileno()
        wfd = waker.fileno()
        conns = self.conns
        inline_queue = self.inline_queue
        handbacks = self.handbacks
        backlog = self.backlog
        waiting = self.waits.by_fd
        wake = self.waits.wake
        watched = self.waits.watched
        unwatch = self.waits.unwatch
        on_readable = self.on_readable
        monotonic = time.monotonic
        try:
            while not self.stop:
                now = monotonic()
                want = (now >= self.paused_until and server.accepting()
                        and len(conns) < (server.max_connections or 1))
                if want != self.listening:
                    (poller.add_level if want else poller.remove_level)(lfd)
                    self.listening = want
                wait = poll_interval
                first = timers.next_time()
                if first is not None:
                    wait = min(wait, max(first - now, 0.0))
                if now < self.paused_until:
                    wait = min(wait, self.paused_until - now)
                if handbacks or inline_queue:
                    wait = 0.0
                for fd, _ev in poller.poll(wait):
                    if fd == lfd:
                        self.accept()
                    elif fd == wfd:
                        waker.drain()
                    else:
                        conn = conns.get(fd)
                        if conn is not None and conn.state < BUSY:
                            on_readable(conn)
                        elif conn is not None and conn.state == HANDSHAKE:
                            self.on_handshake(conn)
                        elif fd in waiting:
                            wake(waiting[fd], True)
                        elif conn is not None:
                            if conn.level_triggered and conn.state == WAIT:
                                conn.to_oneshot(poller)  # it sent more: stop the events
                        elif fd in watched:  # nobody waits for it: no more events
                            unwatch(poller, fd)
                # measured: called only when there is something to take (two calls fewer
                # per round; cpu_hello --pooled, see the commit).
                if handbacks:
                    self.take_handbacks()
                if backlog:
                    self.dispatch_backlog()
                now = monotonic()
                for conn in timers.pop_due(now):
                    self.on_deadline(conn, now)
                server.service_actions()
                if inline_queue and not serve_round(self, server, epoch):
                    return
            self.drain()
        except BaseException:
            if leadership.leads(epoch):
                self.finish()
            raise
        self.finish()

    # -- accepting -----------------------------------------------------------------------------

    def accept(self) -> None:
        """The listener is readable: accept what waits in the listen queue, up to
        ``ACCEPT_BATCH`` connections, and start watching each.

        One connection per readiness event starves new clients under load: every round also
        serves one request of each ready connection, so with 500 busy connections a round
        takes ~10 ms and the 1,000th client of a burst waited seconds for its accept
        (measured: wrk -c1000, 750 accepts took 3.2 s, 157 timeouts, p99 706 ms; batched:
        all 1,000 in 0.10-0.23 s, no timeouts). The listener is made non-blocking (as
        pre-forked workers have it) so the batch ends at EAGAIN; accepted sockets stay
        blocking. The connection cap is checked after each accept.
        """
        server = self.server
        lsock = server.socket
        if lsock.gettimeout() != 0.0:
            lsock.setblocking(False)
        most = server.max_connections or 1
        conns = self.conns
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = server.get_request()
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    error_log.warning("accept() failed (%s); pausing accepts for %.2f s",
                                      exc, server.accept_backoff)
                    self.paused_until = time.monotonic() + server.accept_backoff
                return  # EAGAIN: the queue is empty (or another process took it)
            try:
                if not server.verify_request(sock, addr):
                    server.shutdown_request(sock)
                    continue
                self.add(sock, addr)
            except Exception:
                server.handle_error(sock, addr)
                try:
                    server.shutdown_request(sock)
                except Exception:
                    pass
            if len(conns) >= most:
                return  # the loop stops listening before the next poll

    def add(self, sock: Any, addr: Any) -> None:
        """A new connection: a handler for it, its first deadline, into the poller."""
        server = self.server
        poller = self.poller
        assert poller is not None
        conn = Conn(sock, addr, sock.fileno())
        self.conns[conn.fd] = conn
        if server.ssl_context is not None:
            # The loop drives the handshake (on_handshake), one-shot, within head_timeout.
            head_timeout = server.limits.head_timeout
            now = time.monotonic()
            conn.handshaking(Handshake(server.ssl_context, sock, addr),
                             _INF if head_timeout is None else now + head_timeout)
            self.schedule(conn, now)
            conn.register(poller, False)
            return
        try:
            server._attach(conn)
        except BaseException:
            with server._lock:
                self.conns.pop(conn.fd, None)
                conn.closed = True
            raise
        head_timeout = conn.reader.limits.head_timeout
        conn.expires = _INF if head_timeout is None else time.monotonic() + head_timeout
        self.schedule(conn, time.monotonic())
        conn.register(poller, self.inline and poller.supports_level)

    # -- readiness -----------------------------------------------------------------------------

    def on_readable(self, conn: Conn) -> None:
        """Bytes (or EOF) for a parked connection: feed them; serve a whole request."""
        reader = conn.reader
        # measured: the plain socket's read without a call of its own (one call fewer per
        # request; cpu_hello --pooled, see the commit).
        if not conn.tls:
            try:
                data: bytes | None = (conn.sock.recv(_RECV, _DONTWAIT) if _DONTWAIT
                                      else conn.sock.recv(_RECV))
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
        else:
            try:
                data = _recv_tls(conn.sock)
            except OSError:
                data = b""
        if data is None:
            if not conn.level_triggered:
                self.rearm(conn)
            return
        if not data:
            if not reader.buf:
                self.forget(conn)
                self.server._close(conn)
                return
            reader.feed(b"")
        else:
            reader.feed(data)
        # A GET (first byte "G") is not checked for a body to wait for: it has none in
        # practice, and the check would cost the usual request ~0.4 us for nothing.
        if reader.has_request() and not (data and data[0] != 0x47
                                         and reader.body_missing(self.server.prefetch_body)):
            conn.take()
            self.dispatch(conn)
            return
        if conn.state != HEAD:
            now = time.monotonic()
            if conn.head_started(now):
                self.schedule(conn, now)
        if not conn.level_triggered:
            self.rearm(conn)

    def on_handshake(self, conn: Conn) -> None:
        """The socket of a TLS connection in its handshake is ready: one more step.

        The deadline set at accept stays: when the handshake is done the connection waits
        for its first request as NEW, within the same ``head_timeout``.
        """
        hs = conn.hs
        result = hs.step()
        conn.sock = hs.sock  # the SSLSocket holds the descriptor once the first byte came
        if result is Step.WANT_READ:
            self.rearm(conn)
            return
        if result is Step.WANT_WRITE:
            poller = self.poller
            try:
                if poller is None:
                    raise OSError("the loop has ended")
                poller.rearm_write(conn.fd)
            except (OSError, ValueError):
                self.forget(conn)
                self.server._close(conn)
            return
        if result is Step.FAILED:  # logged by the handshake, at DEBUG
            self.forget(conn)
            self.server._close(conn)
            return
        server = self.server
        try:
            server._attach(conn)
        except Exception:
            server.handle_error(conn.sock, conn.addr)
            self.forget(conn)
            server._close(conn)
            return
        conn.handshaken()
        if hs.pending():  # decrypted already: the poller would never report it
            self.on_readable(conn)
        else:
            self.rearm(conn)

    def rearm(self, conn: Conn) -> None:
        """Watch a one-shot connection for its next bytes (close it if that fails)."""
        poller = self.poller
        try:
            if poller is None:
                raise OSError("the loop has ended")
            poller.rearm(conn.fd)
        except OSError:
            self.server._close(conn)

    def forget(self, conn: Conn) -> None:
        """Stop watching a connection the loop is about to close."""
        if self.poller is not None:
            self.poller.forget(conn.fd)

    # -- handing requests to whoever serves them ---------------------------------------------

    def dispatch(self, conn: Conn) -> None:
        """A whole request is ready: serve it inline or on a worker."""
        if self.inline and not conn.tls and not self.closing:
            self.inline_queue.append(conn)
            return
        if conn.level_triggered:
            conn.to_oneshot(self.poller)
        server = self.server
        if self.backlog or not server.pool.try_submit(worker.serve, server, conn):
            self.backlog.append(conn)

    def finish_on_worker(self, conn: Conn, deferred: Any) -> None:
        """A deferred request the loop will not wait for (stopping, or the wait cannot be
        set up): a worker waits for it and finishes it (worker.serve, within the grace)."""
        conn.deferred = deferred
        if conn.level_triggered:
            conn.to_oneshot(self.poller)
        server = self.server
        if self.backlog or not server.pool.try_submit(worker.serve, server, conn):
            self.backlog.append(conn)

    def dispatch_backlog(self) -> None:
        """Give waiting requests to workers while the pool has room."""
        backlog = self.backlog
        server = self.server
        while backlog:
            if not server.pool.try_submit(worker.serve, server, backlog[0]):
                return
            backlog.popleft()

    def take_handbacks(self, draining: bool = False) -> None:
        """What workers gave back: requests to serve, connections parked mid-head to time
        (while draining: closed instead, unless busy again), deferred requests to wait for
        (while draining, or when the loop cannot wait for that socket: a worker waits)."""
        handbacks = self.handbacks
        while handbacks:
            conn, serve = handbacks.popleft()
            if serve is True:
                self.dispatch(conn)
            elif serve is not False:  # a deferred request served off the loop
                if draining or self.closing or not self.waits.suspend(self, conn, serve):
                    self.finish_on_worker(conn, serve)
            elif draining:
                if conn.state != BUSY:
                    self.server._close(conn)
            elif conn.state == HEAD and not conn.closed:
                self.schedule(conn, time.monotonic())

    # -- deadlines -----------------------------------------------------------------------------

    def schedule(self, conn: Conn, now: float) -> None:
        """Time the connection: at its deadline, but no later than ``now`` + the shortest
        timeout, because a worker may later set a deadline that short without telling the
        loop (see :mod:`minihttp.eventloop.conn`)."""
        limits = conn.reader.limits if conn.reader is not None else self.server.limits
        step = min((t for t in (limits.head_timeout, limits.keepalive_timeout)
                    if t is not None), default=_INF)
        when = now + step if conn.state == BUSY else min(conn.expires, now + step)
        self.timers.schedule(conn, when)

    def on_deadline(self, conn: Conn, now: float) -> None:
        """A connection's timer fell due: expire it, or look again later."""
        state = conn.state
        if state == BUSY or conn.expires > now:
            self.schedule(conn, now)
            return
        if state == WAIT:
            self.waits.wake(conn, False)
            return
        self.forget(conn)
        if state == HEAD and (conn.reader.buf.strip() or conn.reader.has_request()):
            _send_408(conn)
        elif state == HANDSHAKE:  # no request began: no 408, just close
            error_log.debug("TLS handshake with %s not done within head_timeout", conn.addr)
        self.server._close(conn)

    # -- the drain -----------------------------------------------------------------------------

    def drain(self) -> None:
        """Graceful stop: close parked connections, wait for busy ones up to the grace, then
        cut the stragglers."""
        server = self.server
        poller, waker = self.poller, self.waker
        assert poller is not None and waker is not None
        self.closing = True
        if self.listening:
            poller.remove_level(server.socket.fileno())
            self.listening = False
        deadline = time.monotonic() + server.shutdown_grace
        # Deferred requests stop waiting a little before the stragglers are cut, so that
        # their timed-out answer (a proxy's 504) can still go out.
        self.grace_end = deadline - min(0.1, server.shutdown_grace / 4)
        self.waits.wake_all()  # deferred: workers finish them
        while self.inline_queue:  # complete requests: answered by workers, then closed
            self.dispatch(self.inline_queue.popleft())
        for conn in list(self.conns.values()):
            if conn.state != BUSY:
                poller.forget(conn.fd)
                server._close(conn)
        wfd = waker.fileno()
        while self.conns or self.backlog:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ev in poller.poll(min(left, 0.05)):
                if fd == wfd:
                    waker.drain()
            self.take_handbacks(draining=True)
            self.dispatch_backlog()
        for conn in list(self.backlog):
            server._close(conn)
        self.backlog.clear()
        server.cut_stragglers()


def _recv_tls(sock: Any) -> bytes | None:
    """Read what a parked TLS connection has without blocking: bytes (with the decrypted
    bytes the poller cannot see, ``pending()``), ``b''`` at EOF, None if nothing."""
    previous = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        chunks = []
        try:
            chunks.append(sock.recv(_RECV))
            while chunks[-1] and sock.pending():
                chunks.append(sock.recv(sock.pending()))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if not chunks:
                return None
        except ssl.SSLError:
            return b""
        return b"".join(chunks)
    finally:
        sock.settimeout(previous)


def _send_408(conn: Conn) -> None:
    """408 for a head that missed its deadline (RFC 9110 section 15.5.9), never blocking."""
    handler = conn.handler
    what = "request body" if conn.reader.has_request() else "request head"
    body = f"Request Timeout: the {what} was not received in time.\n".encode()
    head = (f"{getattr(handler, 'protocol_version', 'HTTP/1.0')} 408 Request Timeout\r\n"
            f"Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    try:
        if conn.tls:
            conn.sock.settimeout(0.0)
            conn.sock.send(head + body)
        else:
            conn.sock.send(head + body, _DONTWAIT)
    except (OSError, ValueError):
        pass  # the client is gone or not reading: closing is all that is left
    try:
        error_log.info("%s - - code 408, %s not received in time",
                       conn.addr[0] if conn.addr else "-", what)
    except Exception:
        pass
