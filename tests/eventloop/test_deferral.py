"""Waits (minihttp.eventloop.deferral): a deferred request waits on the loop for another
socket; its readiness or its timeout puts it back in the inline queue.

A fake loop (poller, connection table, heap entries) and real socket pairs for descriptors;
the end-to-end behaviour is in test_defer.py.
"""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from minihttp.eventloop.conn import BUSY, WAIT, Conn
from minihttp.eventloop.deferral import Waits
from minihttp.server import Deferred

INF = float("inf")


class Poller:
    """``rearm`` of a descriptor never added raises FileNotFoundError (as epoll does).

    One-shot only (the selectors fallback's kind): the waited-for socket is re-armed for
    each wait."""

    supports_level = False

    def __init__(self) -> None:
        self.registered: set[int] = set()
        self.calls: list[tuple[str, int]] = []

    def rearm(self, fd: int) -> None:
        self.calls.append(("rearm", fd))
        if fd not in self.registered:
            raise FileNotFoundError(fd)

    def add(self, fd: int) -> None:
        self.calls.append(("add", fd))
        self.registered.add(fd)


class Loop:
    def __init__(self) -> None:
        self.poller: Poller | None = Poller()
        self.conns: dict[int, Conn] = {}
        self.inline_queue: collections.deque[Conn] = collections.deque()
        self.scheduled: list[tuple[Conn, float]] = []

    def schedule(self, conn: Conn, now: float) -> None:
        self.scheduled.append((conn, now))


@pytest.fixture
def pair() -> Iterator[socket.socket]:
    a, b = socket.socketpair()
    try:
        yield a
    finally:
        a.close()
        b.close()


def busy_conn(timer_when: float = 10.0) -> Conn:
    conn = Conn(None, ("127.0.0.1", 1), 99)
    conn.take()
    conn.timer_when = time.monotonic() + timer_when  # its live heap entry
    return conn


def setup() -> tuple[Loop, Waits]:
    loop = Loop()
    return loop, Waits(loop.inline_queue)


def deferred(sock: Any, timeout: float | None) -> Deferred:
    return Deferred(sock, lambda ready: None, timeout)


def test_suspend_arms_the_socket_and_waits(pair: socket.socket) -> None:
    loop, waits = setup()
    conn = busy_conn()
    d = deferred(pair, 30.0)
    assert waits.suspend(loop, conn, d)  # type: ignore[arg-type]
    fd = pair.fileno()
    assert loop.poller is not None and loop.poller.calls == [("rearm", fd), ("add", fd)]
    assert waits.by_fd == {fd: conn} and len(waits) == 1
    assert conn.state == WAIT and conn.aux == fd and conn.deferred is d
    assert conn.expires <= time.monotonic() + 30.0
    assert loop.scheduled == []  # its live entry (10 s) looks again before the 30 s end


def test_a_socket_waited_for_before_is_rearmed_only(pair: socket.socket) -> None:
    loop, waits = setup()
    assert loop.poller is not None
    loop.poller.registered.add(pair.fileno())
    assert waits.suspend(loop, busy_conn(), deferred(pair, 30.0))  # type: ignore[arg-type]
    assert loop.poller.calls == [("rearm", pair.fileno())]


def test_a_wait_ending_before_the_live_entry_gets_its_own(pair: socket.socket) -> None:
    loop, waits = setup()
    conn = busy_conn(timer_when=10.0)
    assert waits.suspend(loop, conn, deferred(pair, 0.5))  # type: ignore[arg-type]
    assert [c for c, _now in loop.scheduled] == [conn]


def test_no_timeout_waits_without_a_deadline(pair: socket.socket) -> None:
    loop, waits = setup()
    conn = busy_conn()
    assert waits.suspend(loop, conn, deferred(pair, None))  # type: ignore[arg-type]
    assert conn.expires == INF and loop.scheduled == []


def test_refused_waits_change_nothing(pair: socket.socket) -> None:
    loop, waits = setup()
    conn = busy_conn()
    loop.conns[pair.fileno()] = conn  # a client connection of the server itself
    closed = socket.socket()
    closed.close()
    for sock in (pair, closed, object()):
        assert not waits.suspend(loop, conn, deferred(sock, 1.0))  # type: ignore[arg-type]
    loop.conns.clear()
    loop.poller = None  # the loop has ended
    assert not waits.suspend(loop, conn, deferred(pair, 1.0))  # type: ignore[arg-type]
    assert conn.state == BUSY and conn.deferred is None and not waits.by_fd


@pytest.mark.parametrize("ready", [True, False])
def test_wake_resumes_on_the_inline_queue(pair: socket.socket, ready: bool) -> None:
    loop, waits = setup()
    conn = busy_conn()
    d = deferred(pair, 30.0)
    assert waits.suspend(loop, conn, d)  # type: ignore[arg-type]
    waits.wake(conn, ready)
    assert list(loop.inline_queue) == [conn] and not waits.by_fd
    assert conn.state == BUSY and conn.woken is ready and conn.aux == -1
    assert conn.deferred is d  # kept until the request is resumed


def test_wake_all_at_shutdown(pair: socket.socket) -> None:
    loop, waits = setup()
    other_a, other_b = socket.socketpair()
    try:
        conns = [busy_conn(), busy_conn()]
        assert waits.suspend(loop, conns[0], deferred(pair, 30.0))  # type: ignore[arg-type]
        assert waits.suspend(loop, conns[1], deferred(other_a, None))  # type: ignore[arg-type]
        waits.wake_all()
        assert list(loop.inline_queue) == conns and not waits.by_fd
        assert all(c.state == BUSY and c.woken for c in conns)
    finally:
        other_a.close()
        other_b.close()


class LevelPoller(Poller):
    """epoll's kind: level-triggered registrations; ``add_level`` of a descriptor epoll has
    already raises FileExistsError (as epoll does)."""

    supports_level = True

    def add_level(self, fd: int) -> None:
        self.calls.append(("add_level", fd))
        if fd in self.registered:
            raise FileExistsError(fd)
        self.registered.add(fd)

    def to_level(self, fd: int) -> None:
        self.calls.append(("to_level", fd))

    def remove_level(self, fd: int) -> None:
        self.calls.append(("remove_level", fd))
        self.registered.discard(fd)


def level_setup() -> tuple[Loop, Waits, LevelPoller]:
    loop, waits = setup()
    poller = loop.poller = LevelPoller()
    return loop, waits, poller


def test_a_watched_socket_is_registered_once_for_every_wait(pair: socket.socket) -> None:
    # A pooled upstream socket waited for request after request: one registration, then no
    # system call per wait (it stays registered level-triggered and armed).
    loop, waits, poller = level_setup()
    fd = pair.fileno()
    for _ in range(3):
        conn = busy_conn()
        assert waits.suspend(loop, conn, deferred(pair, 30.0))  # type: ignore[arg-type]
        assert waits.by_fd == {fd: conn} and conn.state == WAIT
        waits.wake(conn, True)
    assert poller.calls == [("add_level", fd)]
    assert waits.watched == {fd: pair}


def test_a_descriptor_epoll_has_already_is_switched_to_level(pair: socket.socket) -> None:
    loop, waits, poller = level_setup()
    poller.registered.add(pair.fileno())  # one-shot, from before
    assert waits.suspend(loop, busy_conn(), deferred(pair, 30.0))  # type: ignore[arg-type]
    assert poller.calls == [("add_level", pair.fileno()), ("to_level", pair.fileno())]


def test_a_new_socket_on_a_reused_descriptor_is_registered_again() -> None:
    # Closing a socket takes it out of epoll; a new socket may get the same number: it is
    # another object, so it is registered (else its wait would never be woken).
    loop, waits, poller = level_setup()
    a, b = socket.socketpair()
    fd = a.fileno()
    assert waits.suspend(loop, busy_conn(), deferred(a, 30.0))  # type: ignore[arg-type]
    waits.wake(waits.by_fd[fd], True)
    a.close()
    b.close()
    poller.registered.discard(fd)  # what the kernel does on close
    c, d = socket.socketpair()
    try:
        assert c.fileno() == fd  # the lowest free number, as POSIX gives it
        assert waits.suspend(loop, busy_conn(), deferred(c, 30.0))  # type: ignore[arg-type]
        assert poller.calls == [("add_level", fd), ("add_level", fd)]
        assert waits.watched[fd] is c
    finally:
        c.close()
        d.close()


def test_unwatch_takes_an_unwaited_descriptor_out(pair: socket.socket) -> None:
    loop, waits, poller = level_setup()
    fd = pair.fileno()
    assert waits.suspend(loop, busy_conn(), deferred(pair, 30.0))  # type: ignore[arg-type]
    waits.wake(waits.by_fd[fd], True)
    waits.unwatch(poller, fd)
    assert fd not in waits.watched and fd not in poller.registered
    assert waits.suspend(loop, busy_conn(), deferred(pair, 30.0))  # type: ignore[arg-type]
    assert poller.calls == [("add_level", fd), ("remove_level", fd), ("add_level", fd)]
