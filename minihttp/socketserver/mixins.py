"""Concurrency strategies of the standard library: a thread or a process per request.

Mix one in *before* a server class (``class S(ThreadingMixIn, TCPServer)``); it replaces
``process_request`` and extends ``server_close``. Differences from the standard library:

* ``ThreadingMixIn`` keeps only threads that are still running (a finished thread moves
  itself to a short "finished" list that is joined and emptied on the next request or loop
  pass), so a long-lived server never holds a growing list of dead threads. The registry is
  ``self._threads``, the stdlib's private name, so code that inspects it keeps working.
* A thread that cannot be started is reported through ``handle_error`` and its request is
  closed; the loop goes on.
* ``ForkingMixIn`` children close their copy of the listening socket, so a child that
  outlives the parent's ``server_close()`` does not keep the port bound.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from .._linewriter import flush_all
from . import _waits as waits

if TYPE_CHECKING:
    from .servers import BaseServer

    _MixinBase = BaseServer
else:
    # At run time a mix-in derives from object only, exactly like the stdlib's, so the
    # method resolution order of user classes is unchanged.
    _MixinBase = object

__all__ = ["ForkingMixIn", "ThreadingMixIn"]


class _ThreadRegistry:
    """The request threads of one server: running ones, and finished ones not yet joined.

    A thread moves itself from ``live`` to ``finished`` as its last act; ``reap()`` joins
    the finished ones (instantly) and forgets them. So the registry holds running threads
    plus at most those finished since the last reap, never every thread ever started (the
    leak of CPython issue #37193). ``len()`` is the number held.
    """

    __slots__ = ("_finished", "_live", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[threading.Thread] = set()
        self._finished: list[threading.Thread] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._live) + len(self._finished)

    def add(self, thread: threading.Thread) -> None:
        with self._lock:
            self._live.add(thread)

    def discard(self, thread: threading.Thread) -> None:
        """Forget a thread that never started."""
        with self._lock:
            self._live.discard(thread)

    def done(self, thread: threading.Thread) -> None:
        """Called by a request thread as it ends."""
        with self._lock:
            self._live.discard(thread)
            self._finished.append(thread)

    def reap(self) -> None:
        """Join threads that have announced they are finished."""
        with self._lock:
            finished, self._finished = self._finished, []
        for thread in finished:
            if thread is not threading.current_thread():
                waits.join(thread)

    def join(self) -> None:
        """Wait for every running non-daemon thread, then reap."""
        with self._lock:
            running = [t for t in self._live if not t.daemon]
        for thread in running:
            if thread is not threading.current_thread():
                waits.join(thread)
        self.reap()


class ThreadingMixIn(_MixinBase):
    """Handle each request in a new thread."""

    #: Threads are daemons: the interpreter does not wait for them at exit.
    daemon_threads: bool = False
    #: ``server_close()`` joins the (non-daemon) request threads.
    block_on_close: bool = True

    @property
    def _threads(self) -> _ThreadRegistry:
        # Created on first use (mix-ins have no constructor to hook); dict.setdefault is
        # atomic, so two threads racing here still share one registry.
        registry = vars(self).get("_thread_registry")
        if registry is None:
            registry = vars(self).setdefault("_thread_registry", _ThreadRegistry())
        return registry  # type: ignore[no-any-return]

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Body of a request thread: handle, report errors, always close the request."""
        waits.leave_stop_signals_to_the_main_thread()
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            try:
                self.shutdown_request(request)
            finally:
                self._threads.done(threading.current_thread())

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread that handles the request and then closes it."""
        registry = self._threads
        registry.reap()
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address),
                                  name=f"minihttp-request-{client_address!r}"[:60])
        thread.daemon = self.daemon_threads
        registry.add(thread)
        try:
            thread.start()
        except BaseException:
            registry.discard(thread)
            raise  # the caller reports it and closes the request

    def service_actions(self) -> None:
        """Join finished request threads, then run the next class's actions."""
        super().service_actions()
        self._threads.reap()

    def server_close(self) -> None:
        """Close the server; with ``block_on_close``, wait for non-daemon request threads."""
        super().server_close()
        if self.block_on_close:
            self._threads.join()
        else:
            self._threads.reap()


if hasattr(os, "fork"):

    class ForkingMixIn(_MixinBase):
        """Handle each request in a new process (POSIX only)."""

        #: ``handle_request()`` timeout, so zombies are collected even when idle.
        timeout: float | None = 300
        #: Pids of children not yet collected (None until the first fork).
        active_children: set[int] | None = None
        #: At this many children, wait for one to exit before forking another.
        max_children: int = 40
        #: ``server_close()`` waits for all children to exit.
        block_on_close: bool = True

        def collect_children(self, *, blocking: bool = False) -> None:
            """Reap exited children; block while ``max_children`` are alive."""
            children = self.active_children
            if children is None:
                return
            # Over the limit: wait for any child, so a burst cannot fork without bound.
            while len(children) >= self.max_children:
                try:
                    pid, _status = os.waitpid(-1, 0)
                    children.discard(pid)
                except ChildProcessError:
                    children.clear()  # none left at all
                except OSError:
                    break
            for pid in list(children):
                try:
                    done, _status = os.waitpid(pid, 0 if blocking else os.WNOHANG)
                except ChildProcessError:
                    children.discard(pid)  # collected elsewhere
                except OSError:
                    continue
                else:
                    if done:
                        children.discard(pid)

        def handle_timeout(self) -> None:
            """Collect zombies after ``timeout`` seconds without a request."""
            self.collect_children()

        def service_actions(self) -> None:
            """Collect zombies on every loop pass."""
            super().service_actions()
            self.collect_children()

        def process_request(self, request: Any, client_address: Any) -> None:
            """Fork; the child handles the request and exits, the parent closes its copy."""
            pid = os.fork()
            if pid:
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(pid)
                self.close_request(request)
                return
            # Child: never return into the server loop, whatever happens.
            status = 1
            try:
                sock = getattr(self, "socket", None)
                if sock is not None and not isinstance(request, tuple):
                    sock.close()  # stream servers only: a datagram request replies on it
                self.finish_request(request, client_address)
                status = 0
            except Exception:
                self.handle_error(request, client_address)
            finally:
                try:
                    self.shutdown_request(request)
                finally:
                    flush_all()  # batched log lines: os._exit skips atexit
                    os._exit(status)

        def server_close(self) -> None:
            """Close the server, then collect children (waiting, with ``block_on_close``)."""
            super().server_close()
            self.collect_children(blocking=self.block_on_close)
