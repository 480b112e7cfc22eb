"""Pre-forked worker processes: use every core with one listening socket.

A Python server is bound to one core by the GIL; to use more, run several processes. The
supervisor (this module, in the parent process) binds the listening socket *once* and forks
N workers that inherit it, each running the ordinary ``serve_forever`` loop with its own
threads. It never serves requests itself.

Why one shared socket and not ``SO_REUSEPORT`` per worker: with a shared socket the kernel
keeps a single accept queue, so a worker that dies or is drained (restart, SIGHUP) leaves
the connections waiting in the backlog to the other workers. With ``SO_REUSEPORT`` each
worker has its own queue, and connections already queued on a closing worker's socket are
reset (Linux migrates them only with ``net.ipv4.tcp_migrate_req`` and an eBPF program). The
cost of sharing is that an incoming connection wakes every idle worker (they all watch the
socket) and all but one find nothing: the socket is made non-blocking so the losers get
``EAGAIN``, which the accept loop ignores. With a few workers per machine that is cheap.

Rules of this module:

* The supervisor only reacts to signals (written to a wake-up pipe by ``signal``) and child
  exits; it has no threads, so ``fork()`` is safe.
* A worker that dies is replaced. One that dies less than ``CRASH_WINDOW`` seconds after it
  started doubles its slot's back-off (0.1 s up to ``MAX_BACKOFF``), so a crash loop does
  not spin the CPU; a worker that lived longer resets it.
* SIGTERM / SIGINT: every worker gets SIGTERM and drains (finishes in-flight requests, then
  exits); the supervisor waits at most ``graceful_timeout`` seconds, SIGKILLs the rest,
  reaps everything and returns 0. A second signal more than a second later kills at once.
* SIGHUP: a new generation of workers starts, then the old one gets SIGTERM and drains.
* No orphans: a worker asks the kernel for SIGTERM when the supervisor dies
  (``PR_SET_PDEATHSIG``, Linux), and exits at once if the supervisor is already gone.
* No zombies: every child is reaped with ``waitpid``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._linewriter import flush_all, synchronous

__all__ = ["CRASH_WINDOW", "MAX_BACKOFF", "Supervisor", "add_arguments", "force_window",
           "serve_workers"]

log = logging.getLogger("minihttp.prefork")

#: A worker that exits sooner than this after its start counts as a crash (back-off grows).
CRASH_WINDOW = 1.0
#: Longest wait before a crashing worker's slot is started again.
MAX_BACKOFF = 10.0
#: A second SIGINT later than this after the first stop kills the workers at once: a person
#: pressing Ctrl-C again (one sooner is the same press passed on by a wrapper).
FORCE_AFTER = 0.1
#: The same for a second SIGTERM: the signal of supervisors, some of which deliver one stop
#: twice (timeout(1) signals the process, then its group), and a busy machine may run the
#: two handlers that far apart.
FORCE_AFTER_TERM = 1.0
#: ``--graceful-timeout`` with workers when not given.
WORKERS_GRACE = 30.0
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Worker:
    slot: int
    generation: int
    started: float


def _die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when the supervisor dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - exotic libc
            log.debug("PR_SET_PDEATHSIG unavailable")
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)


class Supervisor:
    """Fork ``workers`` processes that each run ``target()`` (returning an exit status)."""

    def __init__(self, target: Callable[[], int], workers: int, *,
                 graceful_timeout: float = 30.0,
                 on_ready: Callable[[], object] | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.target = target
        self.workers = workers
        self.graceful_timeout = graceful_timeout
        self.on_ready = on_ready
        self.generation = 0
        self.children: dict[int, _Worker] = {}
        self._due: dict[int, float] = {}  # slot -> monotonic time to (re)start it
        self._failures: dict[int, int] = {}
        self._stop_at: float | None = None
        self._wake_r = self._wake_w = -1

    # -- child side -------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        if threading.active_count() > 1:
            log.warning("forking with %d threads running: only this one is copied",
                        threading.active_count())
        pid = os.fork()
        if pid == 0:
            self._child(parent)
        self.children[pid] = _Worker(slot, self.generation, time.monotonic())
        self._due.pop(slot, None)
        log.info("worker %d started (pid %d)", slot, pid)

    def _child(self, parent: int) -> None:
        """Run in the new process: reset the supervisor's signal set-up, serve, exit."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's business
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            _die_with_parent(parent)
            status = self.target()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            status = 0
        except BaseException:
            log.exception("worker pid %d failed", os.getpid())
        finally:
            logging.shutdown()
            flush_all()  # batched log lines of writers outside logging: os._exit skips atexit
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)

    # -- supervisor side ------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped by SIGTERM/SIGINT; the exit status (0 after a drain)."""
        synchronous()  # no log-writer thread here: fork() only from a single-threaded process
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        old_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        handled = (*_STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD)
        previous = {s: signal.signal(s, lambda *_: None) for s in handled}
        try:
            for slot in range(self.workers):
                self._spawn(slot)
            if self.on_ready is not None:
                self.on_ready()  # after the handlers: a stop signal from now on is seen
            while self.children or self._stop_at is None:
                self._wait(self._timeout())
                self._reap()
                self._tick()
        finally:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._kill_all(signal.SIGKILL)
            self._reap(block=True)
            os.close(self._wake_r)
            os.close(self._wake_w)
        log.info("all workers stopped")
        return 0

    def _timeout(self) -> float:
        now = time.monotonic()
        limits = [0.5]
        limits += [due - now for due in self._due.values()]
        if self._stop_at is not None:
            limits.append(self._stop_at + self.graceful_timeout - now)
        return max(0.0, min(limits))

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal arrives (or ``timeout``); act on the signals received."""
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], timeout)
        try:
            data = os.read(self._wake_r, 512)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum in _STOP_SIGNALS:
                self._on_stop(signum)
            elif signum == signal.SIGHUP and self._stop_at is None:
                self._reload()

    def _on_stop(self, signum: int) -> None:
        now = time.monotonic()
        if self._stop_at is None:
            log.info("%s: draining %d workers", signal.Signals(signum).name, len(self.children))
            self._stop_at = now
            self._due.clear()
            self._kill_all(signal.SIGTERM)
        elif now - self._stop_at > force_window(signum):
            log.warning("second stop signal: killing the workers")
            self._kill_all(signal.SIGKILL)

    def _reload(self) -> None:
        old = list(self.children)
        self.generation += 1
        log.info("SIGHUP: starting %d new workers, draining %d old", self.workers, len(old))
        self._due.clear()
        self._failures.clear()
        for slot in range(self.workers):
            self._spawn(slot)
        for pid in old:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self, block: bool = False) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            worker = self.children.pop(pid, None)
            if worker is not None:
                self._exited(pid, worker, status)

    def _exited(self, pid: int, worker: _Worker, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        if self._stop_at is not None or worker.generation != self.generation:
            log.info("worker %d (pid %d) stopped (%s)", worker.slot, pid, how)
            return
        lived = time.monotonic() - worker.started
        failures = self._failures.get(worker.slot, 0) + 1 if lived < CRASH_WINDOW else 0
        self._failures[worker.slot] = failures
        delay = min(MAX_BACKOFF, 0.1 * 2 ** (failures - 1)) if failures else 0.0
        log.warning("worker %d (pid %d) died (%s); restarting in %.1f s",
                    worker.slot, pid, how, delay)
        self._due[worker.slot] = time.monotonic() + delay

    def _tick(self) -> None:
        now = time.monotonic()
        if self._stop_at is not None:
            if self.children and now >= self._stop_at + self.graceful_timeout:
                log.warning("%d workers still busy after %.1f s: killing them",
                            len(self.children), self.graceful_timeout)
                self._kill_all(signal.SIGKILL)
                self._reap(block=True)
            return
        for slot, due in sorted(self._due.items()):
            if now >= due:
                self._spawn(slot)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--graceful-timeout S``, the same in every command line."""
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="pre-fork N worker processes sharing the listening socket, "
                        "supervised (replaced if they die; SIGHUP restarts them gracefully); "
                        "one Python process is bound to one core by the GIL")
    parser.add_argument("--graceful-timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="how long a stop waits for in-flight requests before cutting "
                        "them (default 30 with --workers, whose stragglers are then killed; "
                        "5 in one process); a second Ctrl-C cuts them at once")


def force_window(signum: int, least: float = 0.0) -> float:
    """Seconds after a first stop within which a second ``signum`` is the same stop
    (:data:`FORCE_AFTER` for SIGINT, :data:`FORCE_AFTER_TERM` otherwise), at least ``least``."""
    return max(least, FORCE_AFTER if signum == signal.SIGINT else FORCE_AFTER_TERM)


def _seconds(text: str) -> float:
    """A number of seconds, 0 or more (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def serve_workers(server: Any, workers: int, run_one: Callable[[], int], *,
                  graceful_timeout: float | None = None,
                  on_ready: Callable[[], object] | None = None) -> int:
    """Run ``run_one()`` (which serves ``server``) in ``workers`` pre-forked processes.

    ``server`` must be bound and listening, with no threads started yet. Its socket is made
    non-blocking (see the module docstring) and stays open in the supervisor, so restarts
    never refuse connections.
    """
    server.socket.setblocking(False)
    if graceful_timeout is None:
        graceful_timeout = WORKERS_GRACE
    return Supervisor(run_one, workers, graceful_timeout=graceful_timeout,
                      on_ready=on_ready).run()
