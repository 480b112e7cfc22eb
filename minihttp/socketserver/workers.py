"""A bounded worker pool, and the server strategy built on it (``ThreadPoolMixIn``).

Thread-per-request (``ThreadingMixIn``) spawns without limit: a burst of connections is a
burst of threads. Here a fixed number of workers take requests from a bounded queue. When
the queue is full the server stops *accepting* (it stops watching the listening socket), so
new connections wait in the kernel's listen backlog: nothing is dropped, nothing extra is
spawned, and memory stays bounded (back-pressure). A worker that takes an item off a full
queue calls ``on_space`` (the server wakes its loop to accept again).

Rules of this module:

* Workers start lazily, one per submit that finds no idle worker, up to ``max_workers``.
* Overflow (``max_overflow``, default 0): when all ``max_workers`` are busy and a task
  would wait, up to ``max_overflow`` more workers start, and each worker beyond
  ``max_workers`` exits after ``overflow_idle`` seconds without work. Why: with blocking
  handlers (a WSGI application waiting on a database) N long requests hold all N workers,
  and a short request arriving then waits for the first of them to end: with clients in
  step (they all started together) that is the whole of a long request. A bounded reserve
  lets it run now; the pool stays bounded (``max_workers + max_overflow``) and shrinks back.
* Every submitted item runs exactly once, even during shutdown: ``shutdown()`` lets the
  workers drain the (bounded) queue before they exit, so no accepted connection is leaked.
* Exceptions escaping a task go to ``on_error`` (default: logged on ``minihttp.error``);
  they never kill a worker.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minihttp.socketserver import _waits as waits
from minihttp.socketserver._report import error_log

if TYPE_CHECKING:
    from minihttp.socketserver.servers import BaseServer

    _MixinBase = BaseServer
else:
    _MixinBase = object

__all__ = ["ThreadPoolMixIn", "WorkerPool", "default_max_workers"]

_Task = tuple[Callable[..., object], tuple[Any, ...]]


def default_max_workers() -> int:
    """``4 * cpus + 4``, at most 64.

    Request handlers mostly wait (on the client's socket, the disk, an upstream), and a
    worker that waits holds no CPU, so several workers per core keep the cores busy; the
    GIL means more than a few per core only adds switching and memory (each thread reserves
    a stack). The ``+ 4`` keeps one-core machines from stalling behind a few slow clients.
    """
    return min(64, 4 * (os.cpu_count() or 1) + 4)


def _log_task_error(exc: BaseException) -> None:
    error_log.error("unhandled exception in a pool task", exc_info=exc)


class WorkerPool:
    """A fixed-size pool of threads fed from a bounded FIFO queue."""

    def __init__(self, max_workers: int | None = None, max_queue: int | None = None, *,
                 name: str = "minihttp-worker", daemon: bool = False,
                 on_space: Callable[[], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 max_overflow: int = 0, overflow_idle: float = 5.0) -> None:
        self.max_workers = default_max_workers() if max_workers is None else max_workers
        self.max_queue = self.max_workers if max_queue is None else max_queue
        if self.max_workers < 1 or self.max_queue < 1:
            raise ValueError("max_workers and max_queue must be at least 1")
        if max_overflow < 0 or overflow_idle <= 0:
            raise ValueError("max_overflow must be >= 0 and overflow_idle > 0")
        #: Workers that may start beyond ``max_workers`` while all of those are busy.
        self.max_overflow = max_overflow
        #: Seconds an idle worker beyond ``max_workers`` waits for work before it exits.
        self.overflow_idle = overflow_idle
        self.name = name
        self.daemon = daemon
        self._on_space = on_space
        self._on_error = on_error or _log_task_error
        self._queue: collections.deque[_Task] = collections.deque()
        # Two conditions on one lock: idle workers wait on ``_cond`` for a task, submit()
        # waits on ``_space`` for room. One condition for both meant waking every idle
        # worker each time a task was taken (measured: 313 us per task with 32 workers).
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._space = threading.Condition(lock)
        self._workers: set[threading.Thread] = set()
        self._idle = 0
        self._busy = 0
        self._closing = False
        self._serial = 0

    # -- state ---------------------------------------------------------------------------------

    def full(self) -> bool:
        """True when a submit would block (the queue holds ``max_queue`` waiting tasks)."""
        with self._cond:
            return len(self._queue) >= self.max_queue

    @property
    def worker_count(self) -> int:
        """Workers started and not yet exited."""
        with self._cond:
            return len(self._workers)

    @property
    def busy(self) -> int:
        """Workers running a task right now."""
        with self._cond:
            return self._busy

    @property
    def pending(self) -> int:
        """Tasks waiting for a worker."""
        with self._cond:
            return len(self._queue)

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)``, waiting while the queue is full. RuntimeError after shutdown."""
        with self._cond:
            while len(self._queue) >= self.max_queue and not self._closing:
                self._space.wait()
            self._put(fn, args)

    def try_submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Queue ``fn(*args)`` if there is room; return False (and do nothing) if not."""
        with self._cond:
            if len(self._queue) >= self.max_queue and not self._closing:
                return False
            self._put(fn, args)
            return True

    def try_run_now(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` only if a worker can take it at once (an idle one, or room to
        start one); return False (and do nothing) if it would have to wait in the queue.

        For work that must not wait behind others: an event loop handing itself to a new
        thread would otherwise stall until some worker finished.
        """
        with self._cond:
            if self._closing or (self._idle <= len(self._queue)
                                 and len(self._workers) >= self._most()):
                return False
            self._put(fn, args)
            return True

    def _most(self) -> int:
        # Called with the lock held: how many workers may run now. Overflow workers only
        # when every regular one is busy (not merely started: those may be idle).
        if self.max_overflow and self._busy >= self.max_workers:
            return self.max_workers + self.max_overflow
        return self.max_workers

    def _put(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        # Called with the lock held.
        if self._closing:
            raise RuntimeError("cannot submit to a WorkerPool after shutdown()")
        self._queue.append((fn, args))
        if self._idle > len(self._queue) - 1:
            self._cond.notify()
        elif len(self._workers) < self._most():
            self._start_worker()
        else:
            self._cond.notify()

    def _start_worker(self) -> None:
        self._serial += 1
        thread = threading.Thread(target=self._work, name=f"{self.name}-{self._serial}",
                                  daemon=self.daemon)
        self._workers.add(thread)
        try:
            thread.start()
        except BaseException:
            self._workers.discard(thread)
            if not self._workers:
                self._queue.pop()  # nobody will run it: let the caller clean up
                raise
            # Other workers exist; they will get to the task.

    # -- the workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        waits.leave_stop_signals_to_the_main_thread()
        me = threading.current_thread()
        cond = self._cond
        with cond:
            while True:
                while not self._queue and not self._closing:
                    self._idle += 1
                    if len(self._workers) > self.max_workers:
                        woken = cond.wait(self.overflow_idle)
                    else:
                        woken = cond.wait()
                    self._idle -= 1
                    if (not woken and not self._queue
                            and len(self._workers) > self.max_workers):
                        self._workers.discard(me)  # an overflow worker no longer needed
                        return
                if not self._queue:  # closing and drained
                    self._workers.discard(me)
                    cond.notify_all()
                    return
                was_full = len(self._queue) >= self.max_queue
                fn, args = self._queue.popleft()
                self._busy += 1
                if was_full:
                    self._space.notify()  # room for one blocked submit()
                cond.release()
                try:
                    if was_full and self._on_space is not None:
                        self._on_space()
                    fn(*args)
                except BaseException as exc:
                    self._report(exc)
                finally:
                    del fn, args
                    cond.acquire()
                    self._busy -= 1

    def _report(self, exc: BaseException) -> None:
        try:
            self._on_error(exc)
        except Exception:
            pass  # a broken reporter must not kill the worker

    # -- shutdown ------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Refuse new tasks; workers finish the queued ones and exit.

        With ``wait`` this blocks until every worker has exited (each joined, so none is
        left behind), for at most ``timeout`` seconds if given.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._space.notify_all()
            workers = list(self._workers)
        if wait:
            for thread in workers:
                if thread is not threading.current_thread():
                    waits.join(thread, timeout)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


class ThreadPoolMixIn(_MixinBase):
    """Handle requests on a bounded pool of worker threads, with accept back-pressure.

    Mix in before a server class: ``class S(ThreadPoolMixIn, TCPServer)``.
    """

    #: Most worker threads (started lazily, kept until ``server_close()``).
    max_workers: int = default_max_workers()
    #: Most accepted requests waiting for a worker; when full, accepting pauses.
    max_queue: int = max_workers
    #: Workers are daemon threads (the interpreter does not wait for them at exit).
    daemon_threads: bool = False
    #: ``server_close()`` waits until the workers have finished queued requests and exited.
    block_on_close: bool = True
    #: Connections beyond the queue wait in the kernel backlog: make it deep enough.
    request_queue_size: int = 1024

    _pool: WorkerPool | None = None

    @property
    def pool(self) -> WorkerPool:
        """The server's worker pool (created on first use)."""
        pool = self._pool
        if pool is None:
            pool = self._pool = WorkerPool(
                self.max_workers, self.max_queue, name="minihttp-pool",
                daemon=self.daemon_threads, on_space=self.wake_loop)
        return pool

    def accepting(self) -> bool:
        """Take new requests only while the queue has room (back-pressure)."""
        pool = self._pool
        return (pool is None or not pool.full()) and super().accepting()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Run on a worker: handle, report errors, always close the request."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (waits only if the queue is full)."""
        self.pool.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        """Close the server, then stop the workers (joined with ``block_on_close``)."""
        super().server_close()
        pool = self._pool
        if pool is not None:
            pool.shutdown(wait=self.block_on_close)
