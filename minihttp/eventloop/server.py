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
  TLS requests always take this path once the handshake is done (``pending()`` bytes are
  read on the worker).
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
* TLS (``ssl_context`` set): the handshake runs on the loop, one non-blocking step per
  readiness event (:class:`~minihttp.eventloop.tls.Handshake`, state ``HANDSHAKE``), so a
  connection that never sends its ClientHello, or drips it, holds no thread (a blocking
  handshake on a worker let a few idle sockets per worker stall HTTPS for ``head_timeout``,
  issue 12). ``head_timeout`` from accept covers the handshake and the wait for the first
  request byte; a plain-HTTP request to the HTTPS port gets a short 400. After that a TLS
  connection is parked like any other, and decrypted bytes the poller cannot see
  (``SSLSocket.pending()``) are read before parking. The CLI's own TLS wrapping in
  ``finish_request`` is not used by this server (``finish_request`` is called only when the
  loop is not running, e.g. by ``handle_request()``).

How the work is divided (each module's docstring states its rules):

* :mod:`~minihttp.eventloop.loop`: the loop (accept, TLS handshakes, readiness, deadlines
  and 408, hand-backs from workers, the drain at shutdown);
* :mod:`~minihttp.eventloop.leadership`: which thread leads the loop, the watchdog,
  depositions, the spare thread, ``leave_loop`` (one object, one lock);
* :mod:`~minihttp.eventloop.inline`: serving on the loop thread;
* :mod:`~minihttp.eventloop.deferral`: deferred requests waiting for another socket (WAIT);
* :mod:`~minihttp.eventloop.worker`: serving on a worker (linger, park, hand back);
* :mod:`~minihttp.eventloop.after`: what happens after a response, for all of them;
* :mod:`~minihttp.eventloop.conn`: a connection's states and transitions, and who owns it;
  :mod:`~minihttp.eventloop.deadlines` and :mod:`~minihttp.eventloop.pollers` below.

This module keeps the server class: its settings, its public methods, the connection table
and handler creation.

Rules of this module:

* The server owns one :class:`~minihttp.eventloop.loop.Loop` (``_loop``) and one
  :class:`~minihttp.eventloop.leadership.Leadership` (``_leadership``) for its whole life;
  the loop refers back to it weakly, so nothing here is kept alive by a reference cycle.
* What the package's other modules may use of the server, besides its public API and the
  ``socketserver`` hooks (``get_request``, ``verify_request``, ``handle_error``, ...):
  ``_loop``, ``_leadership``, ``_conns`` (open connections by descriptor: the loop adds,
  removals under ``_lock``), ``_close(conn)`` (once, from whichever thread owns the
  connection), ``_attach(conn)`` (a handler for it), ``_serving_ended()`` (the loop's last
  act), ``pool``. Nothing else, and nothing of the handler but its public methods and
  what they return.

Handlers are created with ``BaseHTTPRequestHandler.attach`` (``setup()`` only); a
``functools.partial`` of a handler class (``directory=`` of the static handler) is honoured.
Code written for ``http.server`` handlers runs unchanged.
"""

from __future__ import annotations

import functools
import resource
import socket
import ssl
import threading
from typing import Any

from minihttp.eventloop.conn import BUSY, Conn
from minihttp.eventloop.leadership import Leadership
from minihttp.eventloop.loop import Loop
from minihttp.logs import error_log
from minihttp.server import HTTPServer
from minihttp.socketserver import WorkerPool
from minihttp.socketserver.workers import default_max_workers

__all__ = ["PooledHTTPServer", "default_max_connections"]

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


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
    #: Extra workers allowed while all ``max_workers`` are busy (they exit when idle again):
    #: a short request then runs at once instead of waiting for a long one to end (see
    #: :class:`~minihttp.socketserver.workers.WorkerPool`). The CLI's ``--threads N`` sets
    #: it to ``max(4, N // 4)``.
    max_overflow: int = 0
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
    #: TLS: set to an ``ssl.SSLContext`` to serve HTTPS (handshake on the loop).
    ssl_context: ssl.SSLContext | None = None
    #: Serve requests on the loop thread itself: no thread hand-off per request. A handler
    #: that holds the loop longer than ``inline_budget`` seconds (up to twice that) loses
    #: it to a worker, which goes on with the loop (see minihttp.eventloop.leadership).
    #: False: every request goes to a worker (the thread-per-connection-like ``linger`` path).
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
        #: Guards the connection table's removals and the pool's creation.
        self._lock = threading.Lock()
        #: Open connections by descriptor (parked, or being served).
        self._conns: dict[int, Conn] = {}
        self._serving_thread: threading.Thread | None = None
        self._factory_cache: tuple[Any, Any] | None = None
        self._loop = Loop(self)
        self._leadership = Leadership(self._loop.run, self._loop.pool, self._loop.release)
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)
        if self.max_connections is None:
            self.max_connections = default_max_connections()

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
                        on_space=self.wake_loop, max_overflow=self.max_overflow)
        return pool

    @property
    def connection_count(self) -> int:
        """Connections open right now (parked or being served)."""
        return len(self._conns)

    # -- serving ---------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()``; then drain gracefully (see the module docstring).

        With ``inline`` the loop may move to a worker thread while this one finishes a slow
        handler; this call still returns only when serving has ended.
        """
        leadership = self._leadership
        loop = self._loop
        epoch = leadership.begin()
        loop.open(poll_interval)
        self._serving_thread = threading.current_thread()
        try:
            assert loop.waker is not None and loop.poller is not None
            loop.poller.add_level(loop.waker.fileno())
            for conn in list(self._conns.values()):  # served before, by handle_request()
                if conn.state != BUSY:
                    self._close(conn)
            if self.inline:
                leadership.start_watching(self.inline_budget)
        except BaseException:
            loop.finish()
            leadership.stop_watching()
            raise
        try:
            loop.run(epoch)
            leadership.follow()
        except BaseException:
            # Interrupted (Ctrl-C) while another thread runs the loop: stop it, then go.
            loop.stop = True
            loop.wake()
            leadership.wait_done(self.shutdown_grace + 1.0)
            raise
        finally:
            leadership.stop_watching()

    def _serving_ended(self) -> None:
        """The loop has cleaned up (its last leader, :meth:`Loop.finish`)."""
        self._serving_thread = None
        self._leadership.end()

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (``shutdown_grace``), and wait.

        Called from a handler it only asks the loop to stop (waiting would deadlock when the
        handler's own request is one of those being waited for).
        """
        self._loop.stop = True
        self._loop.wake()
        current = threading.current_thread()
        if current is self._serving_thread or current.name.startswith("minihttp-pool"):
            return
        self._leadership.wait_done()

    def wake_loop(self) -> None:
        """Make the loop look at its queues now. Thread-safe, never blocks."""
        self._loop.wake()

    def leave_loop(self, handler: Any) -> bool:
        """For a handler about to block for long (a CONNECT tunnel): hand the loop to
        another thread now, not after ``inline_budget``.

        True when ``handler`` no longer holds the loop (or never did); False when no thread
        is free to take it (every worker is busy): the handler should then refuse (503)
        rather than hold the loop, which would stall every other client.
        """
        return self._leadership.leave(handler)

    def defer_readable(self, handler: Any) -> bool:
        """Whether ``handler`` may defer its request (see
        ``BaseHTTPRequestHandler.defer_until_readable``), with an epoll poller, while the
        server is not closing: a handler running inline on the thread leading the loop (the
        wait is set up when it returns, minihttp.eventloop.deferral), or, with ``inline``,
        one serving a plain connection of ours off the loop (a leader deposed by the
        watchdog: the wait is handed to the loop when it returns, :meth:`hand_over_wait`,
        and the request resumes on the loop, as any deferred one).

        Why off the loop too: on a loaded machine the watchdog deposes a handler whose turn
        took a couple of milliseconds of wall time, and a deposed proxy relay to a slow
        reader then held its thread until the reader had read everything (seen: 5 to 12
        workers blocked in sends for 20 slow readers, tests/eventloop/test_defer_writable).
        """
        loop = self._loop
        poller = loop.poller
        if loop.closing or poller is None or not poller.supports_level:
            return False
        if self._leadership.may_defer(handler):
            return True
        if not self.inline:
            return False  # a resumed request runs on the loop: only where handlers may
        sock = getattr(handler, "connection", None)
        if type(sock) is not socket.socket:
            return False  # a TLS connection (or none): its handler waits itself
        try:
            conn = self._conns.get(sock.fileno())
        except (OSError, ValueError):
            return False
        return (conn is not None and conn.handler is handler and conn.state == BUSY
                and not conn.tls)

    def hand_over_wait(self, conn: Conn, deferred: Any) -> bool:
        """Off the loop: give the connection, whose handler deferred its request, to the
        loop, which waits for it (then resumes it on the loop); False (the caller waits
        itself) while the server is closing. The caller must not touch ``conn`` after a
        True: the loop may own it already."""
        loop = self._loop
        if loop.closing:
            return False
        loop.handbacks.append((conn, deferred))
        loop.wake()
        return True

    def detach(self, sock: Any) -> socket.socket | None:
        """Hand a plain client connection over to other code (a proxy's tunnel relay) for
        good: returns a duplicate of its socket, which the caller now owns; when the
        request ends the server forgets the connection without shutting it (no FIN: the
        duplicate carries on), instead of closing it. None when that cannot be done (a TLS
        connection, or ``sock`` is not one of this server's connections): the caller then
        keeps serving it as it is. The handler should set ``close_connection``."""
        if type(sock) is not socket.socket:
            return None
        with self._lock:
            conn = self._conns.get(sock.fileno())
            if conn is None or conn.sock is not sock or conn.closed or conn.tls:
                return None
            try:
                dup: socket.socket = sock.dup()
            except OSError:
                return None
            conn.detached = True
        return dup

    def cut_stragglers(self) -> None:
        """Past ``shutdown_grace``: make the blocking I/O of handlers still running fail,
        so their threads end (the client sockets are shut). A subclass holding other
        sockets for its handlers (a proxy's upstreams and tunnels) cuts those too."""
        for conn in list(self._conns.values()):
            try:
                # ``sock``, not ``raw``: wrap_socket detached the accepted socket of a TLS
                # connection, whose descriptor the SSLSocket holds (base method: no TLS
                # close_notify, just the kernel's shutdown).
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def server_close(self) -> None:
        """Close the listener and every connection; join the workers."""
        loop = self._loop
        loop.closing = True
        super().server_close()
        for conn in list(self._conns.values()):
            if conn.state != BUSY:
                self._close(conn)
        for conn in list(loop.backlog):
            self._close(conn)
        loop.backlog.clear()
        pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True, timeout=self.shutdown_grace + 5.0)
            self._pool = None

    # -- connections -----------------------------------------------------------------------

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
                if conn.detached:
                    # Out of the loop's interest list first: the descriptor it is
                    # registered under is closed, but the duplicate keeps the open file
                    # (and so the registration) alive.
                    poller = self._loop.poller
                    if poller is not None:
                        poller.remove_level(conn.fd)
                    self.close_request(conn.sock)
                else:
                    self.shutdown_request(conn.sock)
            except Exception:
                pass
            if conn.raw is not conn.sock:
                try:
                    self.close_request(conn.raw)
                except Exception:
                    pass
        loop = self._loop
        max_conns = self.max_connections or 1
        if (left == max_conns - 1 and not loop.listening) or (loop.closing and not left):
            loop.wake()

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


def _init_is_ours(cls: type) -> bool:
    """Whether the ``__init__`` instances of ``cls`` run is one of minihttp's (which
    ``attach`` stands in for) rather than one a user's subclass wrote."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return klass.__module__.startswith("minihttp.")
    return False


def _attacher(factory: Any) -> Any:
    """A callable ``(sock, addr, server) -> handler`` that runs ``setup()`` only.

    A class whose ``__init__`` is minihttp's: its ``attach``. A ``functools.partial`` of a
    class (the static handler's ``directory=``), or a class with an ``__init__`` of its own
    (a user's handler setting its state there): that ``__init__`` runs (with the partial's
    arguments) on a subclass whose ``handle``/``finish`` do nothing, and the object is then
    given back its real class (same layout), so the handler is exactly what ``http.server``
    would build.
    """
    if isinstance(factory, type) and hasattr(factory, "attach"):
        if _init_is_ours(factory):
            return factory.attach
        # A class with an ``__init__`` of its own (code written for http.server sets its
        # state there): ``attach`` would skip it, so it runs, as for a partial.
        cls, args, keywords = factory, (), {}
    elif isinstance(factory, functools.partial) and isinstance(factory.func, type):
        cls, args, keywords = factory.func, factory.args, factory.keywords
    else:
        raise TypeError(f"PooledHTTPServer cannot attach handlers made by {factory!r}")
    sub = _attach_classes.get(cls)
    if sub is None:
        sub = _attach_classes[cls] = type(cls.__name__, (cls,),
                                          {"handle": _noop, "finish": _noop})

    def attach(sock: Any, addr: Any, server: Any) -> Any:
        handler = sub(*args, sock, addr, server, **keywords)
        handler.__class__ = cls
        return handler

    return attach
