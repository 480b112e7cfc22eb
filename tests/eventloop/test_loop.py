"""The loop's queues (minihttp.eventloop.loop): where a whole request goes (inline queue,
a worker, the backlog) and what workers hand back (requests to serve, partial heads to
time), and the TLS handshake's steps on the loop (``on_handshake``) and its deadline. A
PooledHTTPServer that is not serving, with a fake pool and poller; accept, deadlines, 408
and the drain run end to end in test_server.py (TLS: test_tls_idle.py).
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer, worker
from minihttp.eventloop.conn import BUSY, HANDSHAKE, HEAD, IDLE, NEW, Conn
from minihttp.eventloop.loop import Loop
from minihttp.eventloop.tls import Step
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
        self.write_armed: list[int] = []
        self.forgotten: list[int] = []

    def rearm(self, fd: int) -> None:
        self.rearmed.append(fd)

    def rearm_write(self, fd: int) -> None:
        self.write_armed.append(fd)

    def forget(self, fd: int) -> None:
        self.forgotten.append(fd)


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


class FakeHandshake:
    """A handshake whose next step is set by the test; ``sock`` changes at the first step
    (as when wrap_socket detaches the accepted socket)."""

    def __init__(self, result: Step, pending: int = 0) -> None:
        self.result = result
        self.sock: Any = "raw"
        self._pending = pending

    def step(self) -> Step:
        self.sock = "tls"
        return self.result

    def pending(self) -> int:
        return self._pending


def handshaking(loop: Loop, result: Step, pending: int = 0) -> tuple[Conn, list[Conn]]:
    """A HANDSHAKE connection whose next step gives ``result``; the list the server's
    ``_close`` fills. ``_attach`` gives it a marker handler."""
    closed: list[Conn] = []
    loop.server._close = closed.append  # type: ignore[method-assign]

    def attach(c: Conn) -> None:
        c.handler = c.reader = "attached"

    loop.server._attach = attach  # type: ignore[method-assign]
    c = Conn("raw", ("127.0.0.1", 9), 9)
    c.handshaking(FakeHandshake(result, pending), 1e12)
    return c, closed


@pytest.mark.parametrize("result", [Step.WANT_READ, Step.WANT_WRITE])
def test_a_handshake_step_that_waits_rearms_for_what_it_waits_for(loop: Loop,
                                                                  result: Step) -> None:
    pool = use_pool(loop, 10)
    c, closed = handshaking(loop, result)
    loop.on_handshake(c)
    poller: Any = loop.poller
    reading = result is Step.WANT_READ
    assert (poller.rearmed, poller.write_armed) == (([9], []) if reading else ([], [9]))
    assert c.state == HANDSHAKE and c.sock == "tls" and not closed and not pool.submitted


def test_a_failed_handshake_closes_the_connection(loop: Loop) -> None:
    c, closed = handshaking(loop, Step.FAILED)
    loop.on_handshake(c)
    poller: Any = loop.poller
    assert closed == [c] and poller.forgotten == [9] and c.sock == "tls"
    assert not poller.rearmed and not poller.write_armed


def test_a_done_handshake_waits_for_its_request_on_the_loop_with_the_same_deadline(
        loop: Loop) -> None:
    pool = use_pool(loop, 10)
    c, closed = handshaking(loop, Step.DONE)
    loop.on_handshake(c)
    assert (c.state, c.hs, c.sock, c.handler, c.expires) == (NEW, None, "tls", "attached", 1e12)
    assert loop.poller.rearmed == [9]  # type: ignore[union-attr]
    assert not closed and not pool.submitted and not loop.inline_queue  # no worker yet


def test_a_done_handshake_with_decrypted_bytes_reads_them_at_once(loop: Loop) -> None:
    c, _ = handshaking(loop, Step.DONE, pending=5)
    read: list[Conn] = []
    loop.on_readable = read.append  # type: ignore[method-assign]
    loop.on_handshake(c)
    assert read == [c] and c.state == NEW and not loop.poller.rearmed  # type: ignore[union-attr]


def test_an_expired_handshake_closes_silently(loop: Loop,
                                              caplog: pytest.LogCaptureFixture) -> None:
    c, closed = handshaking(loop, Step.WANT_READ)
    c.expires = 100.0
    loop.on_deadline(c, 99.0)  # not yet: timed again
    assert not closed and c.timer_seq >= 0
    with caplog.at_level(logging.DEBUG, logger="minihttp.error"):
        loop.on_deadline(c, 100.0)
    assert closed == [c] and loop.poller.forgotten == [9]  # type: ignore[union-attr]
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "not done within head_timeout" in caplog.records[0].getMessage()
