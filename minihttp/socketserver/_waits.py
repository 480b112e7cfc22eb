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

import threading
import time
from collections.abc import Callable

__all__ = ["SLICE", "join", "wait"]

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
