"""The server classes: ``BaseServer``'s loop, and TCP / UDP / Unix socket servers.

Same API and documented behaviour as the standard library's ``socketserver`` servers, with
these differences (all invisible to code that only uses the documented API):

* ``serve_forever`` waits on the listening socket *and* a wake-up socketpair, so
  ``shutdown()`` returns at once instead of after up to ``poll_interval`` seconds.
  ``poll_interval`` still bounds the time between two ``service_actions()`` calls.
* ``shutdown()`` called from inside a request handler running on the serving thread (a
  synchronous server) stops the loop instead of deadlocking.
* Running out of descriptors or memory on ``accept()`` (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
  logged once per episode and the loop stops watching the listening socket for
  :attr:`BaseServer.accept_backoff` seconds; pending connections wait in the kernel backlog.
* Every accepted request is shut down and closed in a ``finally`` path, including when
  ``verify_request`` returns False or raises, and when ``process_request`` raises.
* ``handle_error`` logs on ``minihttp.error`` (see ``_report``), not on stderr.
* Strategies may refuse new connections for a while (:meth:`BaseServer.accepting`) and wake
  the loop when they can take more (:meth:`BaseServer.wake_loop`): the worker pool's
  back-pressure.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _waits as waits
from ._report import error_log, report_request_error
from ._wakeup import Waker

__all__ = ["BaseServer", "TCPServer", "UDPServer", "UnixDatagramServer", "UnixStreamServer"]

# poll() scales to any descriptor number, select() does not (FD_SETSIZE); the stdlib makes
# the same choice.
_Selector: type[selectors.BaseSelector] = (
    selectors.PollSelector if hasattr(selectors, "PollSelector") else selectors.SelectSelector
)

#: accept() failures that mean "the process or system is out of resources", not "this one
#: connection failed": back off instead of spinning on a listening socket that stays ready.
RESOURCE_ERRNOS = frozenset(
    code for code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
)

#: A handler class: called as ``RequestHandlerClass(request, client_address, server)``.
HandlerFactory = Callable[[Any, Any, "BaseServer"], object]


class BaseServer:
    """Base class of all servers: the request loop, without any socket of its own."""

    #: Seconds ``handle_request()`` waits for a request before ``handle_timeout()``; None: forever.
    timeout: float | None = None
    #: Seconds the loop stops accepting after EMFILE/ENFILE/ENOBUFS/ENOMEM on ``accept()``.
    accept_backoff: float = 0.1

    def __init__(self, server_address: Any, RequestHandlerClass: HandlerFactory) -> None:
        """Constructor. May be extended, do not override."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = threading.Event()
        self.__shutdown_request = False
        self.__waker: Waker | None = None
        self.__waker_lock = threading.Lock()
        self.__serving_thread: threading.Thread | None = None
        self.__paused_until = 0.0  # monotonic time before which accept() is not attempted

    # -- activation hooks -----------------------------------------------------------------

    def server_activate(self) -> None:
        """Called by the constructor to activate the server. May be overridden."""

    def fileno(self) -> int:
        """The descriptor the loop watches for new requests (selector interface)."""
        raise NotImplementedError

    def get_request(self) -> tuple[Any, Any]:
        """Take one request: ``(request, client_address)``. Socket servers define it."""
        raise NotImplementedError

    # -- the loop ---------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until ``shutdown()``.

        ``service_actions()`` runs after each wake-up and at least every ``poll_interval``
        seconds. ``self.timeout`` is ignored (as in the standard library).
        """
        self.__is_shut_down.clear()
        waker: Waker | None
        try:
            waker = Waker()
        except OSError as exc:
            # Out of descriptors before the loop even started: serve anyway, and notice
            # shutdown() by polling often instead of being woken.
            error_log.warning("no wake-up socket (%s); shutdown() will be polled", exc)
            waker = None
        with self.__waker_lock:
            self.__waker = waker
        self.__serving_thread = threading.current_thread()
        try:
            with _Selector() as selector:
                if waker is not None:
                    selector.register(waker, selectors.EVENT_READ, waker.drain)
                watching = False
                while not self.__shutdown_request:
                    # Watch the listening socket only while a request can be taken: not
                    # during an out-of-descriptors back-off, not while the strategy is full.
                    now = time.monotonic()
                    want = now >= self.__paused_until and self.accepting()
                    if want != watching:
                        if want:
                            selector.register(self, selectors.EVENT_READ, None)
                        else:
                            selector.unregister(self)
                        watching = want
                    wait = poll_interval if waker is not None else min(poll_interval, 0.05)
                    if now < self.__paused_until:
                        wait = min(wait, self.__paused_until - now)
                    ready = selector.select(wait)
                    if self.__shutdown_request:
                        break
                    for key, _events in ready:
                        if key.data is None:  # the listening socket
                            self._handle_request_noblock()
                        else:  # the waker: its drain()
                            key.data()
                    self.service_actions()
        finally:
            self.__serving_thread = None
            with self.__waker_lock:
                self.__waker = None
            if waker is not None:
                waker.close()
            self.__shutdown_request = False
            self.__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop the ``serve_forever`` loop and wait until it has returned.

        Called from another thread it blocks until the loop is done, promptly (the loop is
        woken, not polled). Called from a handler on the serving thread itself it only asks
        the loop to stop after the current request, instead of deadlocking.
        """
        self.__shutdown_request = True
        self.wake_loop()
        if threading.current_thread() is self.__serving_thread:
            return
        waits.wait(self.__is_shut_down.wait)

    def wake_loop(self) -> None:
        """Make a running ``serve_forever`` re-check its state now. Thread-safe."""
        with self.__waker_lock:
            waker = self.__waker
        if waker is not None:
            waker.wake()

    def accepting(self) -> bool:
        """Whether the loop should take a new request now. Strategies override this.

        When it returns False the listening socket is left alone (connections wait in the
        kernel backlog); call :meth:`wake_loop` when it becomes True again.
        """
        return True

    def service_actions(self) -> None:
        """Called by the ``serve_forever`` loop on each pass. May be overridden."""

    def handle_request(self) -> None:
        """Handle one request, waiting at most ``timeout`` (the smaller of the socket's
        timeout and ``self.timeout``), then call ``handle_timeout()``."""
        timeout = self._socket_timeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with _Selector() as selector:
            selector.register(self, selectors.EVENT_READ)
            while True:
                if selector.select(timeout):
                    self._handle_request_noblock()
                    return
                if deadline is not None:
                    timeout = deadline - time.monotonic()
                    if timeout < 0:
                        self.handle_timeout()
                        return

    def _socket_timeout(self) -> float | None:
        sock = getattr(self, "socket", None)
        return sock.gettimeout() if sock is not None else None

    def _handle_request_noblock(self) -> None:
        """Accept one request (the socket is known readable) and dispatch it.

        The request is owned here until ``process_request`` returns normally, which hands
        it to the strategy; on every other path it is shut down and closed here.
        """
        try:
            request, client_address = self.get_request()
        except OSError as exc:
            self._accept_failed(exc)
            return
        handed_off = False
        try:
            if self.verify_request(request, client_address):
                self.process_request(request, client_address)
                handed_off = True
        except Exception:
            self.handle_error(request, client_address)
        finally:
            if not handed_off:
                self._shutdown_quietly(request, client_address)

    def _accept_failed(self, exc: OSError) -> None:
        """An ``accept()`` failed: back off on resource exhaustion, otherwise ignore.

        Other failures (EAGAIN when another process took the connection, ECONNABORTED when
        the client gave up while queued) concern one connection only.
        """
        if exc.errno in RESOURCE_ERRNOS:
            if time.monotonic() >= self.__paused_until + 1.0:
                error_log.warning("accept() failed (%s); pausing accepts for %.2f s",
                                  exc, self.accept_backoff)
            else:
                error_log.debug("accept() failed again (%s)", exc)
            self.__paused_until = time.monotonic() + self.accept_backoff

    def _shutdown_quietly(self, request: Any, client_address: Any) -> None:
        try:
            self.shutdown_request(request)
        except Exception:
            self.handle_error(request, client_address)

    def handle_timeout(self) -> None:
        """Called when ``handle_request()`` found no request within ``timeout``."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return True to process the request, False to close it at once. May be overridden."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Handle the request on this thread, then close it. Strategies override this."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Clean up the server. May be overridden."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Finish one request by instantiating ``RequestHandlerClass``."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Shut down and close one request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Clean up one request."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report the exception being handled: DEBUG for a client disconnect, else ERROR
        with the traceback, on the ``minihttp.error`` logger. May be overridden."""
        report_request_error(client_address)

    def __enter__(self) -> BaseServer:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()


class TCPServer(BaseServer):
    """A synchronous stream-socket server (TCP by default)."""

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = 5
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    def __init__(self, server_address: Any, RequestHandlerClass: HandlerFactory,
                 bind_and_activate: bool = True) -> None:
        """Constructor. May be extended, do not override."""
        super().__init__(server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Set the reuse options, bind, and record the bound address. May be overridden."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Start listening. May be overridden."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Close the listening socket. May be overridden."""
        self.socket.close()

    def fileno(self) -> int:
        """The listening socket's descriptor (selector interface)."""
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection: ``(socket, client_address)``. May be overridden."""
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        """Send FIN (so the client sees EOF even if the socket is shared), then close."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # ENOTCONN when the peer is already gone
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the connection's socket."""
        request.close()


class UDPServer(TCPServer):
    """A synchronous datagram server; each datagram is one request ``(data, socket)``."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type = socket.SOCK_DGRAM
    max_packet_size: int = 8192

    def get_request(self) -> tuple[Any, Any]:
        """Receive one datagram: ``((data, socket), client_address)``."""
        data, client_addr = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self) -> None:
        """Datagram sockets do not listen."""

    def shutdown_request(self, request: Any) -> None:
        """Nothing to shut down: the socket is the server's."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close: the socket is the server's."""


if hasattr(socket, "AF_UNIX"):

    class UnixStreamServer(TCPServer):
        """A synchronous Unix-domain stream server; the address is a filesystem path."""

        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        """A synchronous Unix-domain datagram server."""

        address_family = socket.AF_UNIX
