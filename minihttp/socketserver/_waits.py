"""Blocking waits that a signal handler can still interrupt.

CPython runs Python signal handlers on the main thread between bytecodes, and a blocked
lock wait (``Event.wait()``, ``Condition.wait()``, ``Thread.join()``) only returns to run
them when the kernel interrupts that very wait. A signal that arrives in the short window
between the interpreter's last check and the wait going to sleep is noticed only when the
wait ends: without a timeout, never. Seen here: Ctrl-C right after a CONNECT tunnel ended,
while the main thread went back to waiting as the loop's spare (``Leadership.follow``),
left the proxy running until killed (1 run in 27 under load; tests/socketserver/
test_waits.py replays it). So every wait a serving thread may do is cut into slices of at
most :data:`SLICE` seconds: a stop (or a second Ctrl-C) is seen within a slice.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

__all__ = ["SLICE", "join", "leave_stop_signals_to_the_main_thread", "wait"]

#: The signals that stop a server (its command line's handlers run on the main thread).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def leave_stop_signals_to_the_main_thread() -> None:
    """Block SIGINT and SIGTERM in the calling (non-main) thread, so that the kernel gives a
    stop to the main thread, where its Python handler runs.

    A process-directed signal goes to any thread that does not block it. Given to a worker,
    only a flag is set, and the main thread runs the handler when it next returns to the
    interpreter; a main thread blocked in a system call (the loop's leader in a
    ``socket.sendfile`` to a client that stopped reading, seen in a faulthandler dump of
    test_second_sigint_stops_at_once) then did not see a stop, nor a second Ctrl-C, until
    the call ended. Given to the main thread itself, the call fails with EINTR, the handler
    runs, and the call goes on (PEP 475). Python handlers always run on the main thread, so
    nothing else changes. Called first by every thread minihttp starts for serving."""
    if threading.current_thread() is not threading.main_thread():
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        except (AttributeError, OSError, ValueError):  # no pthread_sigmask here
            pass

#: The longest a pending signal handler waits for a blocked serving thread (seconds).
SLICE = 0.2


def wait(timed_wait: Callable[[float], object], timeout: float | None = None,
         done: Callable[[], bool] | None = None) -> bool:
    """Call ``timed_wait(slice)`` until it returns a true value (or ``done()`` is true),
    for at most ``timeout`` seconds (None: no limit); whether it ended by being done.

    ``timed_wait`` is a bound ``Event.wait`` or ``Condition.wait`` (the caller holds the
    condition's lock, as for any ``wait``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = SLICE
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(done()) if done is not None else False
            step = min(step, left)
        if timed_wait(step) or (done is not None and done()):
            return True


def join(thread: threading.Thread, timeout: float | None = None) -> bool:
    """``thread.join(timeout)`` in slices; whether the thread has ended."""
    def joined(step: float) -> bool:
        thread.join(step)
        return not thread.is_alive()

    return wait(joined, timeout)
