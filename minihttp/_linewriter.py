"""Whole lines to a file descriptor, batched: the writer behind minihttp's access log.

A request thread hands a line over (:meth:`LineWriter.write`: an append) and goes on; a
background thread writes what has gathered every :data:`DELAY` seconds, encoded in one
go, with one ``os.write`` per batch. A log line then costs a list append instead of a
system call and, through :mod:`logging`, a ``LogRecord``, a formatter and a stream flush.

Rules of this module:

* Lines are written whole and in the order they were handed over.
* Every ``os.write`` carries whole lines. On a pipe, socket or terminal it carries at most
  ``PIPE_BUF`` bytes (a single longer line goes alone), so lines from several processes
  sharing the descriptor (pre-forked ``--workers``) never interleave (POSIX: such writes
  to a pipe are atomic). On a regular file (the kernel keeps writes sharing an offset
  apart) or another device (/dev/null) a batch is one ``os.write``.
* At most ``limit`` lines wait: past that the thread handing a line over writes the batch
  itself (a slow terminal slows the server instead of filling its memory).
* Nothing is lost at exit: :func:`flush_all` runs at exit (``atexit``); ``logging.shutdown``
  flushes through :class:`minihttp.logs.LineHandler`. A forked child starts with an empty
  buffer, fresh locks and no thread (its parent writes what it had); the child's thread
  starts with its first line.
* Handing a line over takes no lock (an append, and a flag read): the wake-up protocol
  is in :meth:`LineWriter._go_idle`.
* Writing never raises into a request: an error of the descriptor (closed pipe, full disk)
  drops the batch.

measured (pooled hello over loopback, serial client, both on one CPU, a quiet and a logging
server alternated in one process, stderr to a file, 2 runs of 16 rounds): an access line
handed to this writer costs 1.2-1.3 us a request; built on the request path and written
with one write per line (``sys.stderr``, what a program that configured no logging gets,
as with ``http.server``) 2.9-3.0 us; through ``logging`` with a ``StreamHandler`` (before
this module) 19 us. ``python3 benchmarks/cpu_hello.py --log cli|stderr`` shows the same
without the network (1.1-1.5 us either way there: /dev/null, no GIL hand-over).
"""

from __future__ import annotations

import atexit
import os
import select
import stat
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["DELAY", "LIMIT", "LineWriter", "flush_all", "synchronous"]

#: Seconds a line may wait for its batch (the thread's sleep between two writes).
DELAY = 0.05
#: Lines waiting past which the thread handing a line over writes the batch itself.
LIMIT = 8192
#: A writer whose descriptor stays unwritable (non-blocking and full) this long drops data.
STALL_TIMEOUT = 5.0
#: Seconds :func:`flush_all` waits for a writer busy elsewhere (at exit: never hang).
EXIT_TIMEOUT = 5.0

_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()
#: False after synchronous(): no writer thread in this process (a fork()ing supervisor).
_threads_allowed = True


class LineWriter:
    """Batches lines handed over by many threads onto one descriptor.

    ``fd`` is any writable binary descriptor (stderr, a log file opened by the caller); it
    is not closed here. Lines are ``str`` without their newline; each batch is joined,
    every line prefixed with :attr:`prefix`, and encoded (``encoding``, unencodable
    characters as backslash escapes) in one go. ``delay`` and ``limit`` (lines waiting)
    default to :data:`DELAY` and :data:`LIMIT`.
    """

    def __init__(self, fd: int, *, prefix: str = "", encoding: str = "utf-8",
                 delay: float = DELAY, limit: int = LIMIT,
                 render: Callable[[list[Any]], list[str]] | None = None) -> None:
        self.fd = fd
        #: Turns a batch into its lines when units other than ``str`` are handed over
        #: (deferred formatting: see :meth:`write`).
        self.render = render
        #: Written before every line (e.g. ``"[pid] "`` for pre-forked workers).
        self.prefix = prefix
        self.encoding = encoding
        self.delay = delay
        self.limit = limit
        try:
            mode = os.fstat(fd).st_mode
            shared = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)
        except OSError:
            shared = True
        #: Most bytes per ``os.write`` (whole lines): PIPE_BUF on a pipe, socket or terminal
        #: (several processes may share it); a regular file keeps writes sharing an offset
        #: apart, and a device like /dev/null has no reader to see them: one write a batch
        #: (measured: the PIPE_BUF pieces cost ~0.3k instructions a line to /dev/null).
        self.atomic = _PIPE_BUF if shared else 1 << 30
        self._setup()
        _writers.add(self)

    def _setup(self) -> None:
        """Fresh state: at creation, and in a forked child (locks may be held by threads
        that do not exist there; the parent writes its own pending lines)."""
        #: Lines handed over. Only ever appended to (by any thread, no lock: an append is
        #: atomic) and cut at the front (by the holder of _out_lock): never replaced, so an
        #: append can never land in a list already written. :meth:`write` is the way in;
        #: a caller counting instructions may inline it (append, then :meth:`kick` when
        #: ``idle`` or ``limit`` lines wait), as :mod:`minihttp.logs`' request path does.
        self.pending: list[Any] = []
        self._lock = threading.Lock()  # guards the idle transitions and thread start
        self._out_lock = threading.Lock()  # held while a batch is written: keeps the order
        self._wake = threading.Lock()  # released to wake the thread (a binary semaphore)
        self._wake.acquire()
        self._stop = threading.Lock()  # released to end the thread (close, synchronous)
        self._stop.acquire()
        self._stopping = False
        #: The thread waits (or is about to) for a wake-up. Read without the lock by
        #: write() (and its inlined copies); changed under it. A release of _wake happens
        #: only on a True -> False change made by kick(), so _wake is never released twice
        #: (see _go_idle).
        self.idle = True
        self._thread: threading.Thread | None = None
        self._closed = False

    def write(self, line: Any) -> None:
        """Hand one line (``str``, no newline) over; it is written within ``delay`` seconds.

        With a ``render`` function, any other value is a line still to be formatted:
        ``render`` formats the batch on the writer's thread, in one tight loop (measured:
        formatting an access line there costs a third of what it costs on the request
        path, where every call runs with cold caches).
        """
        pending = self.pending
        pending.append(line)
        if self.idle or len(pending) >= self.limit:
            self.kick()

    def kick(self) -> None:
        """After an append to :attr:`pending` that found the thread ``idle`` or ``limit``
        lines waiting: wake (or start) the thread, or write the batch now."""
        if len(self.pending) >= self.limit or not _threads_allowed:
            self.flush()
            return
        with self._lock:
            if not self.idle:
                return
            self.idle = False
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name=f"minihttp-log-{self.fd}", daemon=True)
                self._thread.start()
        self._wake.release()

    def _run(self) -> None:
        from minihttp.socketserver._waits import leave_stop_signals_to_the_main_thread

        leave_stop_signals_to_the_main_thread()
        while True:
            self._wake.acquire()
            if self._stopping:
                return
            while True:
                if self._stop.acquire(timeout=self.delay):  # let a batch gather
                    return  # stopped
                if not self._drain() and self._go_idle():
                    break  # nothing came: sleep until the next line wakes us

    def _go_idle(self) -> bool:
        """Nothing was pending: turn idle; False if a line arrived meanwhile (go on)."""
        with self._lock:
            self.idle = True
        if not self.pending:
            return True
        # A line came between the drain and now. Its writer either saw idle False (then
        # nobody woke us) or True (then it woke us: take that release back).
        with self._lock:
            woken = not self.idle
            self.idle = False
        if woken:
            self._wake.acquire()  # released by that writer: returns at once
        return False

    def _drain(self) -> bool:
        """Write what is pending; False if nothing was."""
        with self._out_lock:
            return self._write_pending()

    def _write_pending(self) -> bool:
        pending = self.pending
        n = len(pending)
        if not n:
            return False
        batch = pending[:n]
        del pending[:n]  # lines appended meanwhile are behind the first n: kept
        prefix = self.prefix
        try:
            if self.render is not None:
                batch = self.render(batch)
            text = (prefix + ("\n" + prefix).join(batch) if prefix else "\n".join(batch)) + "\n"
        except Exception:  # a unit render could not format: never lose the others
            batch = [x if isinstance(x, str) else f"(unprintable log line {x!r})"
                     for x in batch]
            text = (prefix + ("\n" + prefix).join(batch) if prefix else "\n".join(batch)) + "\n"
        self._write_out(text.encode(self.encoding, "backslashreplace"))
        return True

    def flush(self, timeout: float = -1) -> bool:
        """Write everything handed over so far, now; False if ``timeout`` (seconds) passed
        while another thread was writing (the default waits as long as it takes)."""
        if not self._out_lock.acquire(timeout=timeout):
            return False
        try:
            self._write_pending()
        finally:
            self._out_lock.release()
        return True

    def close(self) -> None:
        """Flush and stop the thread (the descriptor stays open: it is the caller's).
        Lines handed over afterwards are written at once, each by its caller."""
        if self._closed:
            return
        self._closed = True
        self.limit = 0
        self.stop_thread()
        _writers.discard(self)

    def stop_thread(self) -> None:
        """Flush, and end the thread (the next line starts another, unless lines are
        written synchronously or the writer is closed)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._stopping = True
            self._stop.release()  # ends its sleep between two batches
            with self._lock:
                wake = self.idle
                self.idle = False
            if wake:
                self._wake.release()  # or its wait for a line
            thread.join(self.delay + 1.0)
            with self._lock:
                self._stop = threading.Lock()
                self._stop.acquire()
                self._wake = threading.Lock()
                self._wake.acquire()
                self._stopping = False
                self.idle = True
                self._thread = None
        self.flush()

    # -- the system calls ------------------------------------------------------------------

    def _write_out(self, data: bytes) -> None:
        """Write ``data`` (whole lines) in ``os.write`` calls of at most ``atomic`` bytes,
        each ending at a newline (a longer line goes alone)."""
        atomic = self.atomic
        if len(data) <= atomic:
            self._write_all(data)
            return
        view = memoryview(data)
        start = 0
        end = len(data)
        while start < end:
            if end - start <= atomic:
                stop = end
            else:
                cut = data.rfind(b"\n", start, start + atomic)
                if cut < 0:  # one line longer than atomic: alone
                    cut = data.find(b"\n", start + atomic)
                stop = end if cut < 0 else cut + 1
            self._write_all(view[start:stop])
            start = stop

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        deadline = 0.0
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:  # a non-blocking descriptor (shared with another program)
                now = time.monotonic()
                deadline = deadline or now + STALL_TIMEOUT
                if now >= deadline:
                    return
                try:
                    select.select([], [self.fd], [], deadline - now)
                except (OSError, ValueError):
                    return
                continue
            except OSError:  # EPIPE, EBADF, ENOSPC...: a log never breaks a response
                return
            view = view[n:]


def flush_all(timeout: float = EXIT_TIMEOUT) -> None:
    """Flush every live writer (at exit; waits at most ``timeout`` seconds for each)."""
    for writer in list(_writers):
        writer.flush(timeout)


def synchronous() -> None:
    """From now on, in this process, every line is written by its caller, at once, and no
    writer has a thread: for a process that forks (the pre-fork supervisor: ``fork()`` is
    safe only with no other thread). A forked child goes back to batching."""
    global _threads_allowed
    _threads_allowed = False
    for writer in list(_writers):
        writer.stop_thread()


def _after_fork_in_child() -> None:
    global _threads_allowed
    _threads_allowed = True
    for writer in list(_writers):
        writer._setup()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
