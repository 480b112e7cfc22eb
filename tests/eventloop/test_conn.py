"""Conn's state transitions (minihttp.eventloop.conn): each sets its deadline before its
state, and the poller registration follows the connection's owner.

No sockets: a fake reader (its buffer and limits) and a fake poller that records calls.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from minihttp.config import Limits
from minihttp.eventloop.conn import BUSY, HEAD, IDLE, NEW, WAIT, Conn

INF = float("inf")


class Reader:
    def __init__(self, buf: bytes = b"", **limits: Any) -> None:
        self.buf = bytearray(buf)
        self.limits = Limits(**limits)


class Poller:
    supports_level = True

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = fail

    def _call(self, name: str, fd: int) -> None:
        self.calls.append((name, fd))
        if self.fail:
            raise OSError("closed meanwhile")

    def add(self, fd: int) -> None:
        self._call("add", fd)

    def add_level(self, fd: int) -> None:
        self._call("add_level", fd)

    def rearm(self, fd: int) -> None:
        self._call("rearm", fd)

    def to_level(self, fd: int) -> None:
        self._call("to_level", fd)


class StateAfterDeadline(Conn):
    """Records the deadline in force when ``state`` is stored (the ownership rule: a
    reader of a new state must see the deadline that goes with it)."""

    __slots__ = ("seen",)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "state" and hasattr(self, "seen"):
            self.seen.append((value, self.expires))
        object.__setattr__(self, name, value)


def conn(buf: bytes = b"", **limits: Any) -> StateAfterDeadline:
    c = StateAfterDeadline(None, ("127.0.0.1", 1), 7)
    c.seen = []
    c.reader = Reader(buf, **limits)
    return c


def test_a_connection_is_born_new_and_parked() -> None:
    c = Conn(None, None, 3)
    assert c.state == NEW and c.state < BUSY and c.expires == INF and not c.level_triggered


def test_take_makes_it_busy() -> None:
    c = conn()
    c.take()
    assert c.state == BUSY and c.seen == [(BUSY, INF)]


def test_park_idle_uses_keepalive_timeout_and_sets_it_before_the_state() -> None:
    c = conn(keepalive_timeout=7.0, head_timeout=2.0)
    c.take()
    before = time.monotonic()
    assert c.park() is False
    assert c.state == IDLE and before + 7.0 <= c.expires <= time.monotonic() + 7.0
    assert c.seen == [(BUSY, INF), (IDLE, c.expires)]  # one store, its deadline first


def test_park_with_part_of_a_head_uses_head_timeout() -> None:
    c = conn(b"GET / HT", keepalive_timeout=7.0, head_timeout=2.0)
    c.take()
    assert c.park() is True  # the loop must re-time it
    assert c.state == HEAD and c.expires <= time.monotonic() + 2.0
    assert c.seen == [(BUSY, INF), (HEAD, c.expires)]


def test_park_without_timeouts_never_expires() -> None:
    c = conn(keepalive_timeout=None)
    c.take()
    c.park()
    assert c.state == IDLE and c.expires == INF


def test_head_started_runs_the_head_deadline_from_now() -> None:
    c = conn(head_timeout=2.0)
    assert c.head_started(100.0) is True
    assert c.state == HEAD and c.expires == 102.0
    c = conn(head_timeout=None)
    assert c.head_started(100.0) is False and c.state == HEAD and c.expires == INF


def test_suspend_and_resume() -> None:
    c = conn()
    c.take()
    deferred = object()
    c.suspend(12, 50.0, deferred)
    assert (c.state, c.aux, c.expires, c.deferred, c.woken) == (WAIT, 12, 50.0, deferred, False)
    assert c.seen == [(BUSY, INF), (WAIT, 50.0)]
    assert c.resume(True) == 12
    assert (c.state, c.aux, c.woken, c.deferred) == (BUSY, -1, True, deferred)


@pytest.mark.parametrize("level", [True, False])
def test_register(level: bool) -> None:
    c, poller = conn(), Poller()
    c.register(poller, level)  # type: ignore[arg-type]
    assert poller.calls == [("add_level" if level else "add", 7)]
    assert c.level_triggered is level


def test_to_oneshot_and_back_to_level() -> None:
    c, poller = conn(), Poller()
    c.register(poller, True)  # type: ignore[arg-type]
    c.to_oneshot(poller)  # type: ignore[arg-type]
    assert not c.level_triggered and poller.calls[-1] == ("rearm", 7)
    c.to_level(poller)  # type: ignore[arg-type]
    assert c.level_triggered and poller.calls[-1] == ("to_level", 7)


def test_to_oneshot_of_a_closed_descriptor_or_without_poller_is_quiet() -> None:
    c = conn()
    c.level_triggered = True
    c.to_oneshot(Poller(fail=True))  # type: ignore[arg-type]
    assert not c.level_triggered
    c.level_triggered = True
    c.to_oneshot(None)
    assert not c.level_triggered


def test_to_level_failure_is_the_callers_to_handle() -> None:
    c = conn()
    with pytest.raises(OSError):
        c.to_level(Poller(fail=True))  # type: ignore[arg-type]
    assert not c.level_triggered
