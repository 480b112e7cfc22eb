"""Leadership of the event loop (minihttp.eventloop.leadership): turns, depositions, the
spare thread, leave_loop, and the deposition race of issue 12.

Unit tests drive a ``Leadership`` directly with a fake worker pool (``try_run_now`` that
succeeds, fails, or is held open by an event) and record what it asks for. The race test at
the end runs a real PooledHTTPServer on loopback.

The race: when the watchdog tried to hand the loop over while every worker was busy, the
deposition bumped the leader's epoch and rolled it back on failure, and the leader read the
epoch without the lock when its handler returned. Inside that window a leader that was
never deposed believed it was, skipped suspending its deferred request, and waited for it
on the loop thread (``finish_deferred``), so every other client waited with it (the issue
measured 2.00 s instead of 0.00 s). Now a failed deposition changes nothing anyone sees.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.eventloop.after import DEPOSED, LOOP
from minihttp.eventloop.conn import Conn
from minihttp.eventloop.leadership import Leadership
from minihttp.server import BaseHTTPRequestHandler
from minihttp.socketserver import WorkerPool
from tests.helpers.servers import running, wait_for


class FakePool:
    """``try_run_now`` answers ``ok``; with ``hold`` set it first signals ``entered`` and
    waits (bounded) for ``release``. ``start`` runs the submitted function on a thread."""

    def __init__(self, ok: bool, hold: bool = False, start: bool = False) -> None:
        self.ok = ok
        self.hold = hold
        self.start = start
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def try_run_now(self, fn: Callable[..., object], *args: Any) -> bool:
        self.calls.append((fn, args))
        if self.ok and self.start:
            thread = threading.Thread(target=fn, args=args, daemon=True)
            self.threads.append(thread)
            thread.start()
        if self.hold:
            self.entered.set()
            assert self.release.wait(5), "the test never released the deposition"
        return self.ok


class Recorder:
    """What a Leadership asked for: leaders started (epoch, thread) and released conns."""

    def __init__(self) -> None:
        self.led: list[tuple[int, str]] = []
        self.released: list[Conn] = []
        self.lead_called = threading.Event()

    def lead(self, epoch: int) -> None:
        self.led.append((epoch, threading.current_thread().name))
        self.lead_called.set()

    def release(self, conn: Conn) -> None:
        self.released.append(conn)


def make(pool: FakePool) -> tuple[Leadership, Recorder]:
    rec = Recorder()
    return Leadership(rec.lead, lambda: pool, rec.release), rec  # type: ignore[arg-type, return-value]


def conn_for(handler: object) -> Conn:
    conn = Conn(None, ("127.0.0.1", 1), -1)
    conn.handler = handler
    return conn


def in_turn(leadership: Leadership, handler: object = None) -> tuple[int, Conn, int]:
    """A leader (this thread) of a new epoch, in a turn: (epoch, conn, turn)."""
    epoch = leadership.begin()
    assert leadership.take(epoch)
    conn = conn_for(handler if handler is not None else object())
    leadership.begin_turn(conn)
    return epoch, conn, leadership._running


# -- depositions -------------------------------------------------------------------------


def test_deposition_to_a_free_worker_moves_the_loop() -> None:
    pool = FakePool(ok=True)
    leadership, rec = make(pool)
    epoch, conn, turn = in_turn(leadership)
    assert leadership.depose(turn)
    assert [args for _fn, args in pool.calls] == [(epoch + 1,)]
    assert pool.calls[0][0] == rec.lead  # the worker will run the loop as the new leader
    assert rec.released == [conn]  # its connection leaves the loop with the old thread
    assert leadership.epoch == epoch + 1
    assert leadership.end_turn(epoch) is DEPOSED
    assert not leadership.take(epoch) and leadership.take(epoch + 1)


def test_failed_deposition_changes_nothing_anyone_can_see() -> None:
    # Held open: while the pool is asked, the epoch is what it was (no bump-and-rollback).
    pool = FakePool(ok=False, hold=True)
    leadership, rec = make(pool)
    epoch, conn, turn = in_turn(leadership)
    result: list[bool] = []
    deposing = threading.Thread(target=lambda: result.append(leadership.depose(turn)))
    deposing.start()
    try:
        assert pool.entered.wait(5)
        assert leadership.epoch == epoch, "the epoch moved before a successor was sure"
    finally:
        pool.release.set()
        deposing.join(5)
    assert result == [False]
    assert leadership.epoch == epoch and rec.released == [] and rec.led == []
    assert leadership.end_turn(epoch) is LOOP
    assert leadership.may_defer(conn.handler) is False  # the turn is over


def test_successor_waits_until_the_deposition_is_complete() -> None:
    # The worker starts at once and asks to lead while the deposition still holds the
    # lock (before the epoch moved): it must wait for it, not find a stale epoch and go.
    pool = FakePool(ok=True, hold=True, start=True)
    taken: list[bool] = []
    holder: list[Leadership] = []

    def successor(epoch: int) -> None:
        taken.append(holder[0].take(epoch))

    leadership = Leadership(successor, lambda: pool, lambda conn: None)  # type: ignore[arg-type, return-value]
    holder.append(leadership)
    _epoch, _conn, turn = in_turn(leadership)
    deposing = threading.Thread(target=leadership.depose, args=(turn,))
    deposing.start()
    try:
        assert pool.entered.wait(5)
        thread = pool.threads[0]
        # Let the successor reach take() (it then blocks on the lock) before releasing.
        assert wait_for(lambda: in_stack(thread.ident or 0, "take"), 5)
    finally:
        pool.release.set()
        deposing.join(5)
    pool.threads[0].join(5)
    assert taken == [True]


def test_deposition_after_the_turn_ended_does_nothing() -> None:
    pool = FakePool(ok=True)
    leadership, _rec = make(pool)
    epoch, _conn, turn = in_turn(leadership)
    assert leadership.end_turn(epoch) is LOOP
    assert not leadership.depose(turn)
    leadership.begin_turn(conn_for(object()))  # a new turn: the old number is stale
    assert not leadership.depose(turn)
    assert pool.calls == [] and leadership.epoch == epoch


def test_the_spare_thread_leads_again_before_any_worker() -> None:
    pool = FakePool(ok=True)
    leadership, rec = make(pool)
    epoch, conn, turn = in_turn(leadership)
    spare = threading.Thread(target=leadership.follow, name="spare", daemon=True)
    spare.start()
    try:
        assert wait_for(lambda: leadership._spare_ready, 5)
        assert leadership.depose(turn)
        assert rec.lead_called.wait(5)
        assert rec.led == [(epoch + 1, "spare")] and pool.calls == []
        assert rec.released == [conn]
    finally:
        leadership.end()  # serving over: the spare returns
        spare.join(5)
    assert not spare.is_alive()


# -- leave_loop and defer_readable ---------------------------------------------------------


def test_leave_hands_the_loop_over_now_or_says_no_thread_is_free() -> None:
    handler = object()
    full = FakePool(ok=False)
    leadership, _rec = make(full)
    epoch, _conn, _turn = in_turn(leadership, handler)
    assert leadership.leave(object()) is True  # another handler: it never held the loop
    assert leadership.leave(handler) is False  # every worker busy: refuse (503)
    assert leadership.epoch == epoch
    free = FakePool(ok=True)
    leadership, _rec = make(free)
    epoch, _conn, _turn = in_turn(leadership, handler)
    assert leadership.leave(handler) is True
    assert leadership.epoch == epoch + 1 and leadership.end_turn(epoch) is DEPOSED
    assert leadership.leave(handler) is True  # no longer holds it


def test_only_the_running_handler_on_the_leader_thread_may_defer() -> None:
    handler = object()
    leadership, _rec = make(FakePool(ok=True))
    _epoch, _conn, turn = in_turn(leadership, handler)
    assert leadership.may_defer(handler)
    assert not leadership.may_defer(object())
    answer: list[bool] = []
    other = threading.Thread(target=lambda: answer.append(leadership.may_defer(handler)))
    other.start()
    other.join(5)
    assert answer == [False]  # not the leader's thread
    assert leadership.depose(turn)
    assert not leadership.may_defer(handler)  # deposed: it waits itself


def test_the_watchdog_deposes_a_turn_that_holds_the_loop() -> None:
    pool = FakePool(ok=True)
    leadership, rec = make(pool)
    epoch, conn, _turn = in_turn(leadership)
    leadership.start_watching(0.005)
    try:
        assert wait_for(lambda: leadership.epoch == epoch + 1, 5)
        assert rec.released == [conn]
        assert leadership.end_turn(epoch) is DEPOSED
    finally:
        leadership.end()
        leadership.stop_watching()


def in_stack(ident: int, name: str) -> bool:
    """Whether thread ``ident`` is running a function called ``name`` right now."""
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


# -- the race of issue 12, on a real server ------------------------------------------------


class NoFreeWorker(WorkerPool):
    """Every worker busy as far as handing the loop over goes: ``try_run_now`` fails. The
    first call is held open (the deposition under way) until the test releases it."""

    def __init__(self) -> None:
        super().__init__(4, 4, name="minihttp-pool")
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def try_run_now(self, fn: Callable[..., object], *args: Any) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(10)
        return False


class State:
    pool: NoFreeWorker
    aux: socket.socket
    peer: socket.socket
    deferred: list[bool] = []
    #: The thread the deferring handler ran on (the loop's leader).
    leader = 0
    #: Threads on which a deferred request was waited for by its handler (finish_deferred).
    finished_here: list[str] = []


class DefersWhileDeposed(BaseHTTPRequestHandler):
    """``/hello``; ``/wait``: defers on State.aux, then holds the loop until the watchdog is
    inside its (failing) deposition, then returns."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/wait":
            self.answer(b"hello")
            return

        def then(ready: bool) -> None:
            self.answer(b"got " + (State.aux.recv(16) if ready else b"nothing"))

        State.leader = threading.get_ident()
        deferred = self.defer_until_readable(State.aux, then, 5.0)
        State.deferred.append(deferred)
        if not deferred:
            then(bool(State.aux.recv(16)))
            return
        State.pool.entered.wait(10)  # the watchdog is deposing us, and will fail

    def finish_deferred(self, until: float | None = None) -> None:
        State.finished_here.append(threading.current_thread().name)
        super().finish_deferred(until)


@pytest.fixture
def state() -> Iterator[type[State]]:
    State.pool = NoFreeWorker()
    State.aux, State.peer = socket.socketpair()
    State.deferred = []
    State.finished_here = []
    State.leader = 0
    try:
        yield State
    finally:
        State.pool.release.set()
        State.aux.close()
        State.peer.close()


def get(server: Any, path: str, timeout: float) -> bytes:
    with socket.create_connection(server.server_address[:2], timeout=timeout) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"hello") and len(data) < 4096:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_failed_deposition_does_not_make_the_leader_wait_on_the_loop(
        state: type[State]) -> None:
    cls = type("RacePooled", (PooledHTTPServer,), {"inline_budget": 0.005})
    server = cls(("127.0.0.1", 0), DefersWhileDeposed)
    server._pool = state.pool
    with (running(server),
          socket.create_connection(server.server_address[:2], timeout=10) as slow):
        slow.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        assert state.pool.entered.wait(5), "the watchdog never tried to depose"
        # The handler returns while the deposition is held open; the leader then asks
        # whether it still leads. Give it that moment, then let the deposition fail.
        assert wait_for(lambda: not in_stack(state.leader, "handle_one_request"), 5)
        time.sleep(0.05)
        state.pool.release.set()
        assert state.deferred == [True]
        # The leader was never deposed: the loop waits for the deferred request and
        # answers others meanwhile (before the fix: blocked for the 5 s wait).
        started = time.monotonic()
        assert get(server, "/hello", timeout=2.0).endswith(b"hello")
        assert time.monotonic() - started < 2.0
        assert state.finished_here == [], "the leader waited on the loop thread"
        state.peer.sendall(b"x")
        slow.settimeout(5)
        assert slow.recv(4096).endswith(b"got x")
    assert state.pool.calls >= 1
