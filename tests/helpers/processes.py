"""Stopping a child process a test started, whatever happened in the test.

Every test that starts a server process must end it within a bounded time, and a process
that ignores its stop signal must not outlive the test (it would hold its port and its
descriptors, and a hung child would hang the suite). One function does the ask-wait-kill
sequence the helpers and tests used to write out each time.
"""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str],
                 sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Send ``sig`` to ``proc`` if it is still running and wait up to ``timeout`` seconds;
    kill it if it has not ended by then (and wait for that, 5 s at most).

    Returns True when the process ended by itself (or had ended already), False when it had
    to be killed: a test that asserts a clean stop says so with the result.
    """
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return False
    return True
