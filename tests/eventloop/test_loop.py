"""The loop's queues (minihttp.eventloop.loop): where a whole request goes (inline queue,
a worker, the backlog) and what workers hand back (requests to serve, partial heads to
time). A PooledHTTPServer that is not serving, with a fake pool and poller; accept,
deadlines, 408 and the drain run end to end in test_server.py.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer, worker
from minihttp.eventloop.conn import BUSY, HEAD, IDLE, Conn
from minihttp.eventloop.loop import Loop
from minihttp.server import BaseHTTPRequestHandler


class Pool:
    def __init__(self, room: int) -> None:
        self.room = room
        self.submitted: list[Conn] = []

    def try_submit(self, fn: Callable[..., object], *args: Any) -> bool:
        assert fn is worker.serve
        if self.room <= 0:
            return False
        self.room -= 1
        self.submitted.append(args[1])
        return True

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        pass


class Poller:
    def __init__(self) -> None:
        self.rearmed: list[int] = []

    def rearm(self, fd: int) -> None:
        self.rearmed.append(fd)


@pytest.fixture
def loop() -> Iterator[Loop]:
    server = PooledHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        lp = server._loop
        lp.poller = Poller()  # type: ignore[assignment]
        yield lp
    finally:
        server._loop.poller = None
        server.server_close()


def use_pool(loop: Loop, room: int) -> Pool:
    pool = Pool(room)
    loop.server._pool = pool  # type: ignore[assignment]
    return pool


def conn(fd: int, tls: bool = False, level: bool = False) -> Conn:
    c = Conn(None, ("127.0.0.1", fd), fd)
    c.tls = tls
    c.level_triggered = level
    c.take()
    return c


def test_inline_requests_go_to_the_inline_queue(loop: Loop) -> None:
    pool = use_pool(loop, 10)
    c = conn(5, level=True)
    loop.dispatch(c)
    assert list(loop.inline_queue) == [c] and pool.submitted == []
    assert c.level_triggered  # it stays on the loop thread


@pytest.mark.parametrize("why", ["tls", "closing", "not inline"])
def test_other_requests_go_to_a_worker_one_shot(loop: Loop, why: str) -> None:
    pool = use_pool(loop, 10)
    loop.closing = why == "closing"
    loop.inline = why != "not inline"
    c = conn(5, tls=why == "tls", level=True)
    loop.dispatch(c)
    assert pool.submitted == [c] and not loop.inline_queue
    assert not c.level_triggered and loop.poller.rearmed == [5]  # type: ignore[union-attr]


def test_a_full_pool_keeps_requests_in_order_in_the_backlog(loop: Loop) -> None:
    loop.inline = False
    pool = use_pool(loop, 1)
    a, b, c = conn(5), conn(6), conn(7)
    for x in (a, b):
        loop.dispatch(x)
    assert pool.submitted == [a] and list(loop.backlog) == [b]
    pool.room = 5
    loop.dispatch(c)  # behind b, although there is room now
    assert list(loop.backlog) == [b, c]
    loop.dispatch_backlog()
    assert pool.submitted == [a, b, c] and not loop.backlog


def test_handbacks(loop: Loop) -> None:
    pool = use_pool(loop, 10)
    loop.inline = False
    serve_me, partial, idle_again = conn(5), conn(6), conn(7)
    partial.reader = idle_again.reader = type("R", (), {"limits": loop.server.limits})()
    partial.state, partial.expires = HEAD, 1e12
    idle_again.state = IDLE  # re-armed and idle again before the loop looked
    loop.handbacks.extend([(serve_me, True), (partial, False), (idle_again, False)])
    loop.take_handbacks()
    assert pool.submitted == [serve_me]
    assert partial.timer_seq >= 0 and idle_again.timer_seq == -1  # only HEAD is timed
    assert not loop.handbacks


def test_handbacks_while_draining_close_what_is_not_busy(loop: Loop) -> None:
    use_pool(loop, 10)
    closed: list[Conn] = []
    loop.server._close = closed.append  # type: ignore[method-assign]
    parked, busy = conn(5), conn(6)
    parked.state = HEAD
    assert busy.state == BUSY
    loop.handbacks.extend([(parked, False), (busy, False)])
    loop.take_handbacks(draining=True)
    assert closed == [parked]


def test_the_loop_does_not_keep_its_server_alive() -> None:
    # No reference cycle: a server dropped without server_close() is freed (and its
    # listening socket closed) at once, as before the split, not at some later collection.
    gc.disable()
    try:
        server = PooledHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        ref = weakref.ref(server)
        loop = server._loop
        del server
        assert ref() is None
        with pytest.raises(ReferenceError):
            loop.server  # noqa: B018
    finally:
        gc.enable()
