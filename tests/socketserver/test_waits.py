"""Blocking waits on a serving thread stay interruptible by signals (minihttp.socketserver._waits).

The failure these replay: a SIGINT that CPython's C handler records while the main thread is
about to block in an untimed lock wait is handled only when that wait ends. Here the race is
made certain: the main thread blocks SIGUSR1, so the kernel delivers it to another thread,
whose C handler records it without interrupting the main thread's wait, exactly as when the
signal lands in the window before the wait goes to sleep. A sliced wait runs the Python
handler within a slice; an untimed one only when the test releases it (RELEASE_AFTER).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from minihttp.eventloop.leadership import Leadership
from minihttp.socketserver import _waits as waits
from minihttp.socketserver.servers import TCPServer
from minihttp.socketserver.workers import WorkerPool

#: When the test ends the blocked call by itself if the handler has not run (seconds).
RELEASE_AFTER = 3.0


@contextmanager
def signal_seen_by_another_thread() -> Iterator[list[float]]:
    """SIGUSR1 sent 0.1 s in, recorded by another thread; yields [when sent, when handled]."""
    times: list[float] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: times.append(time.monotonic()))
    go = threading.Event()

    def send() -> None:
        go.wait(5)
        time.sleep(0.1)
        times.insert(0, time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)  # this thread does not block it: delivered here

    sender = threading.Thread(target=send)
    sender.start()  # before the mask: threads started later inherit it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    go.set()
    try:
        yield times
    finally:
        sender.join(5)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR1, previous)


def release_later(release: Callable[[], None], times: list[float]) -> threading.Thread:
    """End the blocked call once the handler ran, or after RELEASE_AFTER seconds."""
    def run() -> None:
        deadline = time.monotonic() + RELEASE_AFTER
        while len(times) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        release()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _follow() -> tuple[Callable[[], Any], Callable[[], None]]:
    leadership = Leadership(lambda _e: None, lambda: WorkerPool(1), lambda _c: None)
    leadership.begin()
    return leadership.follow, leadership.end


def _wait_done() -> tuple[Callable[[], Any], Callable[[], None]]:
    leadership = Leadership(lambda _e: None, lambda: WorkerPool(1), lambda _c: None)
    leadership.begin()
    return leadership.wait_done, leadership.end


def _pool_shutdown() -> tuple[Callable[[], Any], Callable[[], None]]:
    pool = WorkerPool(1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    return pool.shutdown, gate.set


def _server_shutdown() -> tuple[Callable[[], Any], Callable[[], None]]:
    server = TCPServer(("127.0.0.1", 0), lambda *a: None)  # type: ignore[arg-type]
    started = threading.Event()

    def serve() -> None:
        server.serve_forever()
        server.server_close()

    # serve_forever runs on a thread that the release lets go on: shutdown() waits for it.
    gate = threading.Event()
    original = server.service_actions

    def hold() -> None:
        started.set()  # serving for sure: shutdown() now waits for this loop
        gate.wait(10)
        original()

    server.service_actions = hold  # type: ignore[method-assign]
    threading.Thread(target=serve, daemon=True).start()
    started.wait(5)
    return server.shutdown, gate.set


@pytest.mark.parametrize("blocking", [_follow, _wait_done, _pool_shutdown, _server_shutdown],
                         ids=["Leadership.follow", "Leadership.wait_done",
                              "WorkerPool.shutdown", "BaseServer.shutdown"])
def test_a_signal_is_handled_while_the_main_thread_waits(blocking: Any) -> None:
    """The Python handler runs within about a slice, not when the wait ends by itself."""
    call, release = blocking()
    with signal_seen_by_another_thread() as times:
        releaser = release_later(release, times)
        call()
        waits.join(releaser, RELEASE_AFTER + 2)  # (sliced too: a plain join is the same bug)
    assert len(times) == 2, times
    assert times[1] - times[0] < waits.SLICE + 0.5, times[1] - times[0]


def test_wait_is_cut_into_slices_and_keeps_its_timeout() -> None:
    asked: list[float] = []

    def timed_wait(step: float) -> bool:
        asked.append(step)
        time.sleep(step)
        return False

    started = time.monotonic()
    assert waits.wait(timed_wait, timeout=0.5) is False
    took = time.monotonic() - started
    assert len(asked) >= 3 and max(asked) <= waits.SLICE
    assert 0.45 <= took < 2.0


def test_wait_ends_when_done_says_so() -> None:
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert waits.wait(lambda step: time.sleep(min(step, 0.01)), timeout=5.0, done=flag.is_set)


def test_join_returns_whether_the_thread_ended() -> None:
    gate = threading.Event()
    thread = threading.Thread(target=gate.wait, args=(5,))
    thread.start()
    assert waits.join(thread, 0.3) is False
    gate.set()
    assert waits.join(thread, 5) is True


def test_serving_threads_leave_stop_signals_to_the_main_thread() -> None:
    # A stop given by the kernel to a worker only sets a flag; a main thread blocked in a
    # system call (a sendfile to a stalled client) then never ran the handler (a hung
    # test_second_sigint_stops_at_once). Serving threads block SIGINT/SIGTERM, so the kernel
    # gives them to the main thread, whose call is interrupted and whose handler runs.
    from minihttp.socketserver.workers import WorkerPool

    masks: list[set[int]] = []
    done = threading.Event()

    def record() -> None:
        masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        done.set()

    pool = WorkerPool(1, name="test-mask")
    try:
        pool.submit(record)
        assert done.wait(10)
    finally:
        pool.shutdown()
    assert {signal.SIGINT, signal.SIGTERM} <= masks[0]
    main_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.SIGINT not in main_mask and signal.SIGTERM not in main_mask
