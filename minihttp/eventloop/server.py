"""PooledHTTPServer: a bounded worker pool, with idle and slow connections parked in a poller.

``ThreadingHTTPServer`` gives every connection a thread: 10,000 idle keep-alive clients are
10,000 threads, and a few hundred clients sending their heads one byte at a time hold every
one of them. Here:

* One loop thread (at first the ``serve_forever`` thread) watches the listening socket, a
  wake-up socket, and every connection that is idle between requests or whose request head
  is still arriving. Such connections hold no thread. Their bytes are read without blocking
  and fed to the handler's reader (``handler.reader.feed``) until a whole head is buffered
  (or EOF, or an error to report).
* A small request body (plain Content-Length up to ``prefetch_body`` and ``max_body``; not
  chunked, no ``Expect``) is waited for the same way before the request is served, so a
  client sending its body slowly holds no thread either; ``head_timeout`` covers head and
  such a body together (408 past it). Larger bodies stream to the handler as it reads.
* Inline serving (``inline``, the default): the loop thread then calls
  ``handle_one_request()`` itself, one request per ready connection per round, and parks the
  connection again (level-triggered on epoll: no system call). No thread hand-off at all:
  under the GIL every hand-off between threads costs a wake-up and a GIL transfer, and with a
  thread per connection those dominate a small request (measured: a bare epoll loop answers
  ~1.2x what a bare thread-per-connection loop does, and with 4.4 us of Python per request
  ~2.7x).
  A handler may block (a slow client, a database, ``time.sleep``) and would stall every
  other connection, so a watchdog thread looks every ``inline_budget`` seconds: when the
  same handler is still running it *deposes* the loop thread (a new ``epoch``) and gives
  the loop to a spare thread (a deposed ``serve_forever`` thread waiting to lead again) or
  to a worker of a bounded :class:`~minihttp.socketserver.WorkerPool`. The slow handler
  finishes where it is, as a worker would, and hands its connection back. So other clients
  wait at most about two budgets behind a blocking handler, and as many handlers can block
  at once as there are workers (``max_workers``).
* ``inline = False``: a complete head goes to a worker, which calls ``handle_one_request()``.
  After a response the worker serves a pipelined request already buffered at once. Then,
  while another worker is free and no request waits, it waits for the client's next request
  itself (a blocking ``recv`` bounded by SO_RCVTIMEO slices of ``linger``, up to
  ``linger_max``): thread-per-connection behaviour. Under pressure it only tries one
  non-blocking ``recv`` and otherwise parks the connection again: with epoll that is one
  thread-safe ``EPOLL_CTL_MOD`` and no wake-up of the loop thread (see
  :mod:`minihttp.eventloop.conn`).
  TLS connections always take this path (handshake and ``pending()`` bytes on a worker).
* Deadlines (RFC 9112 section 9.8 lets a server close connections it no longer wants):
  ``Limits.head_timeout`` covers the whole head from its first byte (and the wait for the
  first request); past it a started head gets ``408`` and the connection closes (slowloris).
  ``Limits.keepalive_timeout`` closes an idle connection silently. They sit in a heap.
* ``max_connections``: past it the server *stops accepting*; new connections wait in the
  kernel's listen backlog (``request_queue_size``) until one closes. Nothing is accepted just
  to be refused, so a burst costs no descriptors; the price is that a waiting client gets no
  answer at all until there is room. The default is what the descriptor limit allows.
* ``shutdown()`` stops accepting, closes parked connections, lets in-flight requests end
  (their connections close after the response) for up to ``shutdown_grace`` seconds, then
  shuts the sockets of stragglers so their handlers' I/O fails. ``server_close()`` joins the
  workers: no thread and no descriptor is left behind.
* TLS (``ssl_context`` set): the handshake runs on a worker with ``head_timeout`` (a blocking
  handshake on the I/O thread would let one slow client stall every other one); after that a
  TLS connection is parked like any other, and decrypted bytes the poller cannot see
  (``SSLSocket.pending()``) are read before parking. The CLI's own TLS wrapping in
  ``finish_request`` is not used by this server (``finish_request`` is called only when the
  loop is not running, e.g. by ``handle_request()``).

Handlers are created with ``BaseHTTPRequestHandler.attach`` (``setup()`` only); a
``functools.partial`` of a handler class (``directory=`` of the static handler) is honoured.
Code written for ``http.server`` handlers runs unchanged.
"""

from __future__ import annotations

import collections
import errno
import functools
import resource
import socket
import ssl
import threading
import time
from typing import Any

from minihttp.eventloop.conn import BUSY, HEAD, IDLE, WAIT, Conn
from minihttp.eventloop.deadlines import Deadlines
from minihttp.eventloop.pollers import Poller, make_poller
from minihttp.logs import error_log
from minihttp.server import HTTPServer
from minihttp.socketserver import WorkerPool
from minihttp.socketserver._wakeup import Waker
from minihttp.socketserver.workers import default_max_workers

__all__ = ["PooledHTTPServer", "default_max_connections"]

#: accept() failures meaning "out of resources": back off instead of spinning.
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
_RECV = 64 * 1024
_INF = float("inf")
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: Requests a worker serves in a row on one connection before letting others go first.
MAX_IN_PLACE = 64


def default_max_connections() -> int:
    """The soft descriptor limit minus a reserve for files, the listener and the workers."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1000
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(16, soft - 64)


class PooledHTTPServer(HTTPServer):
    """HTTP server on a bounded worker pool; idle and slow connections hold no thread."""

    #: Most worker threads (started lazily).
    max_workers: int = max(32, default_max_workers())
    #: Most complete requests waiting for a worker inside the pool; more wait in the server.
    max_queue: int | None = None
    #: Most open connections; past it, accepting pauses (kernel backlog). None: from rlimit.
    max_connections: int | None = None
    #: Seconds ``shutdown()`` lets in-flight requests finish before their sockets are shut.
    shutdown_grace: float = 5.0
    #: Workers are daemon threads.
    daemon_threads: bool = False
    #: Deep backlog: connections beyond ``max_connections`` wait there.
    request_queue_size: int = 1024
    #: Seconds the accept loop pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM.
    accept_backoff: float = 0.1
    #: After a response, try one non-blocking ``recv`` before parking the connection.
    speculative_read: bool = True
    #: While another worker is free and no request waits, a worker waits for the next
    #: request of its keep-alive client in blocking slices of this many seconds, checking
    #: for pressure between them (0: never wait, park at once).
    linger: float = 0.01
    #: Most seconds in all a worker keeps an idle connection before parking it.
    linger_max: float = 1.0
    #: Use the portable selectors poller even where epoll exists (tests).
    portable_poller: bool = False
    #: TLS: set to an ``ssl.SSLContext`` to serve HTTPS (handshake on a worker).
    ssl_context: ssl.SSLContext | None = None
    #: Serve requests on the loop thread itself: no thread hand-off per request. A handler
    #: that holds the loop longer than ``inline_budget`` seconds (up to twice that) loses
    #: it to a worker, which goes on with the loop (see :meth:`_watch`). False: every
    #: request goes to a worker (the thread-per-connection-like ``linger`` path).
    inline: bool = True
    #: Seconds a handler may hold the loop thread before another thread takes the loop.
    inline_budget: float = 0.002
    #: A request body of at most this many bytes (plain Content-Length) is waited for by the
    #: loop, like the head, before the handler runs: a slow sender then holds no thread.
    #: Larger or chunked bodies stream to the handler as it reads them. 0: never wait.
    prefetch_body: int = 64 * 1024

    _pool: WorkerPool | None = None

    def __init__(self, server_address: Any, RequestHandlerClass: Any,
                 bind_and_activate: bool = True) -> None:
        self._lock = threading.Lock()
        self._conns: dict[int, Conn] = {}
        self._ready: collections.deque[Conn] = collections.deque()  # workers -> I/O thread
        self._retime: collections.deque[Conn] = collections.deque()  # partial heads parked
        self._backlog: collections.deque[Conn] = collections.deque()  # waiting for the pool
        self._poller: Poller | None = None
        self._waker: Waker | None = None
        self._stop = False
        self._closing = False
        self._paused_until = 0.0
        self._listening = False
        self._serving_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self._factory_cache: tuple[Any, Any] | None = None
        self._poll_interval = 0.5
        self._timers = Deadlines()
        # Inline serving (see _run_inline/_watch): requests ready on the loop thread, the
        # leader's epoch, and what the watchdog looks at.
        self._runnable: collections.deque[Conn] = collections.deque()
        self._inline_lock = threading.Lock()
        self._epoch = 0
        self._seq = 0
        self._running = 0
        self._watch_idle = False
        self._watch_stop = True
        self._watch_wake = threading.Event()
        self._spare_cond = threading.Condition(self._inline_lock)
        self._spare_ready = False  # the serve_forever thread waits to lead again
        self._spare_epoch = 0
        self._running_conn: Conn | None = None
        self._leader = 0  # thread ident of the loop's current leader
        #: Deferred requests (state WAIT) by the descriptor they wait for.
        self._waits: dict[int, Conn] = {}
        #: While draining: when the grace ends (deferred requests on workers wait no longer).
        self._grace_end: float | None = None
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)
        if self.max_connections is None:
            self.max_connections = default_max_connections()

    # -- the pool --------------------------------------------------------------------------

    @property
    def pool(self) -> WorkerPool:
        """The worker pool (created on first use, by whichever thread needs it first: the
        loop, the watchdog or a worker, hence the lock)."""
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = WorkerPool(
                        self.max_workers, self.max_queue or self.max_workers,
                        name="minihttp-pool", daemon=self.daemon_threads,
                        on_space=self.wake_loop)
        return pool

    @property
    def connection_count(self) -> int:
        """Connections open right now (parked or on a worker)."""
        return len(self._conns)

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()``; then drain gracefully (see the module docstring).

        With ``inline`` the loop may move to a worker thread while this one finishes a slow
        handler; this call still returns only when serving has ended.
        """
        self._done.clear()
        self._stop = self._closing = False
        self._grace_end = None
        waker = Waker()
        poller = make_poller(waker.wake, self.portable_poller)
        with self._lock:
            self._waker, self._poller = waker, poller
        self._serving_thread = threading.current_thread()
        self._listening = False
        self._poll_interval = poll_interval
        self._timers = Deadlines()
        with self._inline_lock:
            self._epoch += 1
            epoch = self._epoch
        watch = None
        try:
            poller.add_level(waker.fileno())
            for conn in list(self._conns.values()):  # served before, by handle_request()
                if conn.state != BUSY:
                    self._close(conn)
            if self.inline:
                self._watch_stop = False
                self._watch_wake.clear()
                watch = threading.Thread(target=self._watch, name="minihttp-watch",
                                         daemon=True)
                watch.start()
        except BaseException:
            self._finish_serving(poller, waker)
            raise
        try:
            self._lead(epoch)
            self._follow()
        except BaseException:
            # Interrupted (Ctrl-C) while another thread runs the loop: stop it, then go.
            self._stop = True
            self.wake_loop()
            self._done.wait(self.shutdown_grace + 1.0)
            raise
        finally:
            if watch is not None:
                self._watch_stop = True
                self._watch_wake.set()
                watch.join()

    def _follow(self) -> None:
        """A deposed ``serve_forever`` thread: the next leader the watchdog picks, until done."""
        cond = self._spare_cond
        while True:
            with cond:
                self._spare_ready = True
                while not self._spare_epoch and not self._done.is_set():
                    cond.wait()
                self._spare_ready = False
                epoch, self._spare_epoch = self._spare_epoch, 0
            if not epoch:
                return
            self._lead(epoch)

    def _lead(self, epoch: int) -> None:
        """Run the loop while this thread leads it (``epoch`` current); clean up at the end.

        Returns early, leaving everything in place, when the watchdog gave the loop to another
        thread because a handler run here held it too long (see :meth:`_watch`).
        """
        poller, waker = self._poller, self._waker
        assert poller is not None and waker is not None
        timers = self._timers
        poll_interval = self._poll_interval
        lfd = self.socket.fileno()
        wfd = waker.fileno()
        conns = self._conns
        runnable = self._runnable
        waits = self._waits
        with self._inline_lock:
            # A new leader started by _depose waits here until the deposition is complete.
            if self._epoch != epoch:
                return
            self._leader = threading.get_ident()
        try:
            while not self._stop:
                if self._epoch != epoch:
                    return  # deposed: the new leader owns the loop's state now
                now = time.monotonic()
                want = (now >= self._paused_until and self.accepting()
                        and len(conns) < (self.max_connections or 1))
                if want != self._listening:
                    (poller.add_level if want else poller.remove_level)(lfd)
                    self._listening = want
                wait = poll_interval
                first = timers.next_time()
                if first is not None:
                    wait = min(wait, max(first - now, 0.0))
                if now < self._paused_until:
                    wait = min(wait, self._paused_until - now)
                if self._ready or self._retime or runnable:
                    wait = 0.0
                for fd, _ev in poller.poll(wait):
                    if fd == lfd:
                        self._accept(poller, timers)
                    elif fd == wfd:
                        waker.drain()
                    else:
                        ready_conn = conns.get(fd)
                        if ready_conn is not None and ready_conn.state < BUSY:
                            self._on_readable(ready_conn, poller, timers)
                        elif fd in waits:
                            self._wake(waits[fd], True)
                        elif ready_conn is not None and ready_conn.level and \
                                ready_conn.state == WAIT:
                            self._to_oneshot(ready_conn)  # it sent more: stop the events
                self._take_handbacks(timers)
                self._dispatch_backlog()
                now = time.monotonic()
                for conn in timers.pop_due(now):
                    self._on_deadline(conn, now, poller, timers)
                self.service_actions()
                if runnable and not self._run_inline(epoch):
                    return
            self._drain(poller, waker, lfd)
        except BaseException:
            if self._epoch == epoch:
                self._finish_serving(poller, waker)
            raise
        self._finish_serving(poller, waker)

    def _finish_serving(self, poller: Poller, waker: Waker) -> None:
        """The last leader's cleanup: release the poller and wake ``serve_forever``."""
        self._closing = True
        with self._lock:
            self._waker = self._poller = None
        self._serving_thread = None
        self._listening = False
        self._watch_stop = True
        self._watch_wake.set()
        self._running_conn = None
        poller.close()
        waker.close()
        self._stop = False
        with self._spare_cond:
            self._done.set()
            self._spare_cond.notify_all()

    # -- serving on the loop thread (inline) -----------------------------------------------

    def _run_inline(self, epoch: int) -> bool:
        """Serve the requests waiting in ``_runnable``, one each; False if deposed meanwhile.

        One request per connection per round, then the loop polls again: connections take
        turns, and a pipelined request waits behind the others' (fairness).
        """
        runnable = self._runnable
        for _ in range(len(runnable)):
            if not runnable or self._stop:
                return True
            conn = runnable.popleft()
            handler = conn.handler
            self._running_conn = conn
            self._seq += 1
            self._running = self._seq
            if self._watch_idle:
                self._watch_wake.set()
            try:
                if conn.deferred is None:
                    deferred = handler.handle_one_request()
                else:
                    conn.deferred = None
                    deferred = handler.resume_request(conn.woken)
                # The turn ends (under the lock) before anything else: from here on no
                # deposition can happen, so what this thread does next follows from one
                # answer (a deposition that failed was never visible).
                deposed = self._handler_done(epoch)
                if deferred is not None:
                    if not deposed:
                        if self._suspend(conn, deferred):
                            continue  # the loop waits for it
                        # The loop cannot wait for it: the handler waits, as a turn of its
                        # own that the watchdog may depose like any other.
                        self._begin_turn(conn)
                        handler.finish_deferred()
                        deposed = self._handler_done(epoch)
                    else:
                        handler.finish_deferred()  # not on the loop: wait here
            except Exception:
                deposed = self._handler_done(epoch)
                self.handle_error(conn.sock, conn.addr)
                self._close(conn)
                if deposed:
                    return False
                continue
            except BaseException:
                self._handler_done(epoch)
                self._close(conn)
                raise
            if handler.close_connection or self._closing:
                self._close(conn)
            elif (conn.reader.buf and conn.reader.has_request()
                  and not conn.reader.body_missing(self.prefetch_body)):
                if deposed:
                    self._hand_back(conn)
                else:
                    runnable.append(conn)
            elif deposed:
                self._park(conn)
            else:
                self._park_inline(conn)
            if deposed:
                return False
        return True

    def defer_readable(self, handler: Any) -> bool:
        """Whether ``handler`` may defer its request (see
        ``BaseHTTPRequestHandler.defer_until_readable``): only a handler running inline on
        the thread leading the loop, with an epoll poller, while the server is not closing.
        The wait itself is set up when the handler returns (:meth:`_suspend`)."""
        conn = self._running_conn
        # ``_running`` is zeroed when the watchdog deposes the leader, so a handler that just
        # lost the loop is refused even before the new leader runs (and sets ``_leader``).
        return (conn is not None and conn.handler is handler and self._running != 0
                and not self._closing and self._leader == threading.get_ident()
                and self._poller is not None and self._poller.supports_level)

    def _suspend(self, conn: Conn, deferred: Any) -> bool:
        """Register what a deferred request waits for; False when that cannot be done.

        The descriptor is armed one-shot: EPOLL_CTL_MOD when it is registered already (a
        pooled upstream socket waited for before), ADD the first time. It stays registered
        while unused (disarmed, it reports nothing) and leaves the interest list when it is
        closed.
        """
        sock, timeout = deferred.sock, deferred.timeout
        poller = self._poller
        try:
            fd = sock.fileno()
            if fd < 0 or poller is None or fd in self._conns:
                return False
            try:
                poller.rearm(fd)
            except FileNotFoundError:
                poller.add(fd)
        except (OSError, ValueError, AttributeError):
            return False
        conn.aux = fd
        conn.woken = False
        conn.deferred = deferred
        self._waits[fd] = conn
        now = time.monotonic() if timeout is not None else 0.0
        conn.expires = _INF if timeout is None else now + timeout
        conn.state = WAIT
        # The connection's live timer (it always has one, at most the shortest server
        # timeout ahead) looks again when it falls due; a new entry only when the wait ends
        # before that (no heap push per request for the usual long timeout).
        if conn.expires < conn.timer_when:
            self._schedule(conn, self._timers, now)
        return True

    def _wake(self, conn: Conn, ready: bool) -> None:
        """A deferred request's socket is readable (or its wait timed out): resume it."""
        self._waits.pop(conn.aux, None)
        conn.aux = -1
        conn.woken = ready
        conn.state = BUSY
        self._runnable.append(conn)

    def _park_inline(self, conn: Conn) -> None:
        """The loop thread parks a connection it served: no system call when it is
        level-triggered already; a partial head is timed here (the loop owns the timers)."""
        if self._start_wait(conn):
            self._schedule(conn, self._timers, time.monotonic())
        if not conn.level:
            poller = self._poller
            try:
                if poller is None:
                    self._close(conn)
                elif poller.supports_level:
                    poller.to_level(conn.fd)
                    conn.level = True
                else:
                    poller.rearm(conn.fd)
            except (OSError, ValueError):
                self._close(conn)

    @staticmethod
    def _start_wait(conn: Conn) -> bool:
        """Set a connection's state and deadline for parking: True when part of the next
        head is buffered (HEAD, head_timeout), False when idle (keepalive_timeout)."""
        limits = conn.reader.limits
        head = bool(conn.reader.buf)
        timeout = limits.head_timeout if head else limits.keepalive_timeout
        conn.expires = _INF if timeout is None else time.monotonic() + timeout
        # The state last: once it is not BUSY the loop may expire the connection, and it
        # must then see the new deadline (see minihttp.eventloop.conn's ownership rule).
        conn.state = HEAD if head else IDLE
        return head

    def _begin_turn(self, conn: Conn) -> None:
        """A handler starts running on the loop thread: what the watchdog looks at."""
        self._running_conn = conn
        self._seq += 1
        self._running = self._seq
        if self._watch_idle:
            self._watch_wake.set()

    def _handler_done(self, epoch: int) -> bool:
        """An inline handler returned: clear ``_running`` if this thread still leads; True if
        it was deposed meanwhile (then ``_running`` is the new leader's, left alone)."""
        with self._inline_lock:
            if self._epoch != epoch:
                return True
            self._running = 0
            return False

    def _watch(self) -> None:
        """Watchdog: give the loop to another thread when a handler holds it too long.

        Inline serving saves the two thread hand-offs per request that a worker pool costs
        under the GIL, but while a handler runs on the loop thread no other connection is
        served. So this thread looks every ``inline_budget`` seconds: if the same handler is
        still running (it blocks on a slow client, a database, ``time.sleep``...), it deposes
        that thread (a new ``epoch``) and submits a new leader to the worker pool, which goes
        on with the loop; the slow handler finishes on its thread as a worker would. While
        the loop serves nothing the watchdog sleeps until a handler starts (no idle ticks).
        """
        wake = self._watch_wake
        tick = max(self.inline_budget, 0.0005)
        seen_running = 0
        seen_seq = -1
        while not self._watch_stop:
            running = self._running
            if not running and self._seq == seen_seq:
                wake.clear()
                self._watch_idle = True
                if not self._running and not self._watch_stop:
                    wake.wait()
                # Cleared, or the tick below would return at once and the handler that
                # woke us would be deposed microseconds after it started.
                wake.clear()
                self._watch_idle = False
                seen_running, seen_seq = 0, self._seq
                continue
            seen_seq = self._seq
            if running and running == seen_running:
                self._depose(running)
                seen_running = 0
            else:
                seen_running = running
            wake.wait(tick)
            wake.clear()

    def leave_loop(self, handler: Any) -> bool:
        """For a handler about to block for long (a CONNECT tunnel): hand the loop to
        another thread now, not after ``inline_budget``.

        True when ``handler`` no longer holds the loop (or never did); False when no thread
        is free to take it (every worker is busy): the handler should then refuse (503)
        rather than hold the loop, which would stall every other client.
        """
        running = self._running
        conn = self._running_conn
        if (not running or conn is None or conn.handler is not handler
                or self._leader != threading.get_ident()):
            return True
        return self._depose(running, voluntary=True)

    def _depose(self, running: int, voluntary: bool = False) -> bool:
        """Hand the loop to another thread if handler ``running`` still holds it; whether
        it was handed over. The epoch changes only once a successor is sure (never bumped
        and rolled back: the old leader reads it under this lock when its handler returns,
        and the successor starts leading only after this lock is released)."""
        with self._inline_lock:
            if self._running != running:
                return False  # that handler ended (also when stopping: the new leader drains)
            conn = self._running_conn
            new_epoch = self._epoch + 1
            if self._spare_ready:  # the serve_forever thread is free: it leads again
                self._spare_ready = False
                self._spare_epoch = new_epoch
                self._spare_cond.notify()
                to = "the spare thread"
            else:
                try:
                    # Now or not at all: a queued leader would leave the loop unserved until
                    # some worker finished; kept, it goes on when its handler returns.
                    submitted = self.pool.try_run_now(self._lead, new_epoch)
                except RuntimeError:
                    submitted = False
                if not submitted:
                    return False  # no room for a new leader: try again next tick
                to = "a pool worker"
            if conn is not None and conn.level:
                self._to_oneshot(conn)  # it stays with the deposed thread
            self._epoch = new_epoch
            self._running = 0
        # Worth knowing when tuning: a handler that often blocks costs a thread wake-up each.
        if voluntary:
            error_log.debug("a handler for %s left the loop; loop handed to %s",
                            conn.addr if conn is not None else "-", to)
        else:
            error_log.debug("a handler for %s held the loop over %.1f ms; loop handed to %s",
                            conn.addr if conn is not None else "-", self.inline_budget * 1e3,
                            to)
        return True

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (``shutdown_grace``), and wait.

        Called from a handler it only asks the loop to stop (waiting would deadlock when the
        handler's own request is one of those being waited for).
        """
        self._stop = True
        self.wake_loop()
        current = threading.current_thread()
        if current is self._serving_thread or current.name.startswith("minihttp-pool"):
            return
        self._done.wait()

    def wake_loop(self) -> None:
        """Make the I/O thread look at its queues now. Thread-safe, never blocks."""
        waker = self._waker
        if waker is not None:
            waker.wake()

    def _drain(self, poller: Poller, waker: Waker, lfd: int) -> None:
        """Graceful stop: close parked connections, wait for busy ones up to the grace."""
        self._closing = True
        if self._listening:
            poller.remove_level(lfd)
            self._listening = False
        deadline = time.monotonic() + self.shutdown_grace
        # Deferred requests stop waiting a little before the stragglers are cut, so that
        # their timed-out answer (a proxy's 504) can still go out.
        self._grace_end = deadline - min(0.1, self.shutdown_grace / 4)
        for conn in list(self._waits.values()):  # deferred: workers wait for them
            self._wake(conn, True)
        while self._runnable:  # complete requests: answered by workers, then closed
            self._dispatch(self._runnable.popleft())
        for conn in list(self._conns.values()):
            if conn.state != BUSY:
                poller.forget(conn.fd)
                self._close(conn)
        wfd = waker.fileno()
        while self._conns or self._backlog:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ev in poller.poll(min(left, 0.05)):
                if fd == wfd:
                    waker.drain()
            self._take_handbacks(None)
            self._dispatch_backlog()
        for conn in list(self._backlog):
            self._close(conn)
        self._backlog.clear()
        self.cut_stragglers()

    def cut_stragglers(self) -> None:
        """Past ``shutdown_grace``: make the blocking I/O of handlers still running fail,
        so their threads end (the client sockets are shut). A subclass holding other
        sockets for its handlers (a proxy's upstreams and tunnels) cuts those too."""
        for conn in list(self._conns.values()):
            try:
                socket.socket.shutdown(conn.raw, socket.SHUT_RDWR)
            except OSError:
                pass

    def server_close(self) -> None:
        """Close the listener and every connection; join the workers."""
        self._closing = True
        super().server_close()
        for conn in list(self._conns.values()):
            if conn.state != BUSY:
                self._close(conn)
        for conn in list(self._backlog):
            self._close(conn)
        self._backlog.clear()
        pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True, timeout=self.shutdown_grace + 5.0)
            self._pool = None

    # -- the I/O thread --------------------------------------------------------------------

    def _accept(self, poller: Poller, timers: Deadlines) -> None:
        try:
            sock, addr = self.get_request()
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                error_log.warning("accept() failed (%s); pausing accepts for %.2f s",
                                  exc, self.accept_backoff)
                self._paused_until = time.monotonic() + self.accept_backoff
            return
        try:
            if not self.verify_request(sock, addr):
                self.shutdown_request(sock)
                return
            self._add(sock, addr, poller, timers)
        except Exception:
            self.handle_error(sock, addr)
            try:
                self.shutdown_request(sock)
            except Exception:
                pass

    def _add(self, sock: Any, addr: Any, poller: Poller, timers: Deadlines) -> None:
        conn = Conn(sock, addr, sock.fileno())
        self._conns[conn.fd] = conn
        if self.ssl_context is not None:
            # Registered (so workers can re-arm it) but owned by a worker for the
            # handshake: the one-shot event it may produce meanwhile is ignored.
            conn.tls = True
            conn.state = BUSY
            poller.add(conn.fd)
            self._dispatch(conn)
            return
        try:
            self._attach(conn)
        except BaseException:
            with self._lock:
                self._conns.pop(conn.fd, None)
                conn.closed = True
            raise
        head_timeout = conn.reader.limits.head_timeout
        conn.expires = _INF if head_timeout is None else time.monotonic() + head_timeout
        self._schedule(conn, timers, time.monotonic())
        if self.inline and poller.supports_level:
            poller.add_level(conn.fd)
            conn.level = True
        else:
            poller.add(conn.fd)

    def _attach(self, conn: Conn) -> None:
        """Create the connection's handler (``setup()`` only) and note how to read it."""
        factory = self.RequestHandlerClass
        cached = self._factory_cache
        if cached is None or cached[0] is not factory:
            cached = self._factory_cache = (factory, _attacher(factory))
        handler = cached[1](conn.sock, conn.addr, self)
        reader = handler.reader
        if reader is None:
            raise TypeError(f"{factory!r} did not set up a socket reader (a minihttp "
                            "BaseHTTPRequestHandler is needed on a PooledHTTPServer)")
        conn.handler, conn.reader = handler, reader
        conn.nowait = (not conn.tls and _DONTWAIT != 0
                       and conn.sock.gettimeout() is None)

    def _on_readable(self, conn: Conn, poller: Poller, timers: Deadlines) -> None:
        """Bytes (or EOF) for a parked connection: feed them; dispatch a complete head."""
        reader = conn.reader
        try:
            data = self._recv_parked(conn)
        except OSError:
            data = b""
        if data is None:
            if not conn.level:
                self._rearm(conn, poller)
            return
        if not data:
            if not reader.buf:
                poller.forget(conn.fd)
                self._close(conn)
                return
            reader.feed(b"")
        else:
            reader.feed(data)
        # A GET (first byte "G") is not checked for a body to wait for: it has none in
        # practice, and the check would cost the usual request ~0.4 us for nothing.
        if reader.has_request() and not (data and data[0] != 0x47
                                         and reader.body_missing(self.prefetch_body)):
            conn.state = BUSY
            self._dispatch(conn)
            return
        if conn.state != HEAD:
            # The head has started: its deadline runs from this first byte.
            conn.state = HEAD
            head_timeout = reader.limits.head_timeout
            if head_timeout is not None:
                conn.expires = time.monotonic() + head_timeout
                self._schedule(conn, timers, time.monotonic())
        if not conn.level:
            self._rearm(conn, poller)

    def _recv_parked(self, conn: Conn) -> bytes | None:
        """Read what is there without blocking: bytes, ``b''`` at EOF, None if nothing."""
        sock = conn.sock
        if not conn.tls:
            try:
                data: bytes = sock.recv(_RECV, _DONTWAIT) if _DONTWAIT else sock.recv(_RECV)
                return data
            except BlockingIOError:
                return None
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

    def _to_oneshot(self, conn: Conn) -> None:
        """Before a level-triggered connection leaves the loop thread (see _conn's rules)."""
        poller = self._poller
        conn.level = False
        if poller is not None:
            try:
                poller.rearm(conn.fd)  # one-shot, armed
            except (OSError, ValueError):
                pass  # closed meanwhile: its owner finds out on its next I/O

    def _rearm(self, conn: Conn, poller: Poller) -> None:
        try:
            poller.rearm(conn.fd)
        except OSError:
            self._close(conn)

    def _schedule(self, conn: Conn, timers: Deadlines, now: float) -> None:
        """Time the connection: at its deadline, but no later than ``now`` + the shortest
        timeout, because a worker may later set a deadline that short without telling the
        I/O thread (see :mod:`minihttp.eventloop.conn`)."""
        limits = conn.reader.limits if conn.reader is not None else self.limits
        step = min((t for t in (limits.head_timeout, limits.keepalive_timeout)
                    if t is not None), default=_INF)
        when = now + step if conn.state == BUSY else min(conn.expires, now + step)
        timers.schedule(conn, when)

    def _on_deadline(self, conn: Conn, now: float, poller: Poller,
                     timers: Deadlines) -> None:
        """A connection's timer fell due: expire it, or look again later."""
        state = conn.state
        if state == BUSY or conn.expires > now:
            self._schedule(conn, timers, now)
            return
        if state == WAIT:
            self._wake(conn, False)
            return
        poller.forget(conn.fd)
        if state == HEAD and (conn.reader.buf.strip() or conn.reader.has_request()):
            self._send_timeout(conn)
        self._close(conn)

    def _send_timeout(self, conn: Conn) -> None:
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

    def _take_handbacks(self, timers: Deadlines | None) -> None:
        """Connections handed back by workers: ready to serve, or parked mid-head."""
        ready = self._ready
        while ready:
            self._dispatch(ready.popleft())
        retime = self._retime
        while retime:
            conn = retime.popleft()
            if timers is not None and conn.state == HEAD and not conn.closed:
                self._schedule(conn, timers, time.monotonic())
            elif timers is None and conn.state != BUSY:
                self._close(conn)

    def _dispatch(self, conn: Conn) -> None:
        if self.inline and not conn.tls and not self._closing:
            self._runnable.append(conn)
            return
        if conn.level:
            self._to_oneshot(conn)
        if self._backlog or not self.pool.try_submit(self._serve, conn):
            self._backlog.append(conn)

    def _dispatch_backlog(self) -> None:
        backlog = self._backlog
        while backlog:
            if not self.pool.try_submit(self._serve, backlog[0]):
                return
            backlog.popleft()

    # -- the workers -----------------------------------------------------------------------

    def _serve(self, conn: Conn) -> None:
        """Run on a worker: serve requests while they are there, then park or close."""
        try:
            if conn.handler is None:
                if not self._handshake(conn):
                    return
                fresh = True
            else:
                fresh = False
            handler = conn.handler
            reader = conn.reader
            served = 0
            while True:
                if not fresh:
                    if conn.deferred is None:
                        if handler.handle_one_request() is not None:
                            handler.finish_deferred()  # (only the loop's leader may defer)
                    else:  # a deferred request, given at shutdown: it waits up to the grace
                        conn.deferred = None
                        handler.finish_deferred(self._grace_end if self._closing else None)
                    served += 1
                    if handler.close_connection or self._closing:
                        self._close(conn)
                        return
                    if reader.buf and reader.has_request():
                        if served < MAX_IN_PLACE or not self._pressed():
                            continue
                        self._hand_back(conn)
                        return
                fresh = False
                if self._read_nowait(conn) and reader.has_request():
                    if served < MAX_IN_PLACE or not self._pressed():
                        continue
                    self._hand_back(conn)
                    return
                self._park(conn)
                return
        except Exception:
            self.handle_error(conn.sock, conn.addr)
            self._close(conn)
        except BaseException:
            self._close(conn)
            raise

    def _handshake(self, conn: Conn) -> bool:
        """TLS server handshake, bounded by head_timeout; False if the connection closed."""
        context = self.ssl_context
        assert context is not None
        timeout = self.limits.head_timeout
        raw = conn.raw
        try:
            raw.settimeout(timeout)
            tls = context.wrap_socket(raw, server_side=True)
            tls.settimeout(None)
        except (OSError, ValueError) as exc:
            error_log.debug("TLS handshake with %s failed: %s", conn.addr, exc)
            self._close(conn)
            return False
        conn.sock = tls
        self._attach(conn)
        return True

    def _read_nowait(self, conn: Conn) -> bool:
        """Feed the reader what the client already sent; True if anything (or EOF) came."""
        sock = conn.sock
        if conn.tls:
            n = sock.pending()
            if not n:
                return False
            data = sock.recv(n)
        elif conn.nowait and self.speculative_read:
            lingered = self._linger(conn)
            if lingered is None:
                return False
            data = lingered
        else:
            return False
        conn.reader.feed(data)
        return True

    def _pressed(self) -> bool:
        """True when a request waits for a worker: time for this one to let others go."""
        return bool(self._backlog or self._ready or self.pool.pending)

    def _linger(self, conn: Conn) -> bytes | None:
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
        pool = self.pool
        reader = conn.reader
        linger = self.linger
        if (not linger or not reader.kernel_timeouts or self._backlog
                or pool.busy >= pool.max_workers):
            try:
                data: bytes = sock.recv(_RECV, _DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                return b""
            return data
        reader.set_wait_timeout(linger)
        deadline = -1.0
        while True:
            try:
                data = sock.recv(_RECV)
                return data
            except BlockingIOError:
                pass  # SO_RCVTIMEO expired
            except OSError:
                return b""
            if self._closing or self._pressed() or pool.busy >= pool.max_workers:
                return None
            now = time.monotonic()
            if deadline < 0:
                most = self.linger_max
                keepalive = reader.limits.keepalive_timeout
                if keepalive is not None:
                    most = min(most, keepalive)
                deadline = now + most - linger
            if now >= deadline:
                return None

    def _park(self, conn: Conn) -> None:
        """Give the connection back to the poller (no thread waits on it)."""
        if self._closing:
            self._close(conn)
            return
        poller = self._poller
        if poller is None:
            self._close(conn)
            return
        if self._start_wait(conn):
            self._retime.append(conn)  # the loop re-times it (workers never touch the heap)
            self.wake_loop()
        try:
            poller.rearm(conn.fd)
        except (OSError, ValueError):
            if not self._closing:
                self._close(conn)

    def _hand_back(self, conn: Conn) -> None:
        """A request is buffered but this worker has served enough in a row: requeue."""
        self._ready.append(conn)
        self.wake_loop()

    # -- closing ---------------------------------------------------------------------------

    def _close(self, conn: Conn) -> None:
        """Finish the handler and close the socket, once, from whichever thread owns it."""
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            self._conns.pop(conn.fd, None)
            left = len(self._conns)
        handler = conn.handler
        try:
            if handler is not None:
                handler.finish()
        except Exception:
            error_log.debug("finish() failed for %s", conn.addr, exc_info=True)
        finally:
            try:
                self.shutdown_request(conn.sock)
            except Exception:
                pass
            if conn.raw is not conn.sock:
                try:
                    self.close_request(conn.raw)
                except Exception:
                    pass
        max_conns = self.max_connections or 1
        if (left == max_conns - 1 and not self._listening) or (self._closing and not left):
            self.wake_loop()

    # -- outside serve_forever (handle_request) --------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Without the loop (``handle_request()``): serve the connection on a worker."""
        self.pool.submit(self._process_blocking, request, client_address)

    def _process_blocking(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def _noop(self: Any) -> None:
    pass


_attach_classes: dict[type, type] = {}


def _attacher(factory: Any) -> Any:
    """A callable ``(sock, addr, server) -> handler`` that runs ``setup()`` only.

    A class: its ``attach``. A ``functools.partial`` of a class (the static handler's
    ``directory=``): the class's own ``__init__`` runs with the partial's arguments on a
    subclass whose ``handle``/``finish`` do nothing, and the object is then given back its
    real class (same layout), so the handler is exactly what ``http.server`` would build.
    """
    if isinstance(factory, type) and hasattr(factory, "attach"):
        return factory.attach
    if isinstance(factory, functools.partial) and isinstance(factory.func, type):
        cls = factory.func
        sub = _attach_classes.get(cls)
        if sub is None:
            sub = _attach_classes[cls] = type(cls.__name__, (cls,),
                                              {"handle": _noop, "finish": _noop})
        args, keywords = factory.args, factory.keywords

        def attach(sock: Any, addr: Any, server: Any) -> Any:
            handler = sub(*args, sock, addr, server, **keywords)
            handler.__class__ = cls
            return handler

        return attach
    raise TypeError(f"PooledHTTPServer cannot attach handlers made by {factory!r}")
