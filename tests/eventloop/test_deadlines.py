"""minihttp.eventloop.deadlines: the loop's deadline heap, on real ``Conn`` objects.

The sockets are fakes (the heap never touches them); times are plain numbers, so nothing
here sleeps. The last test replays a long random sequence against a dictionary model.
"""

from __future__ import annotations

import random

import pytest

from minihttp.eventloop.conn import Conn
from minihttp.eventloop.deadlines import Deadlines

INF = float("inf")


class FakeSocket:
    """Stands in for an accepted socket: the heap must never call it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the deadline heap touched the socket ({name})")


def conn(fd: int = 10) -> Conn:
    return Conn(FakeSocket(), ("127.0.0.1", 40000 + fd), fd)


def test_a_new_connection_has_no_live_entry() -> None:
    c = conn()
    assert (c.timer_seq, c.timer_when) == (-1, INF)
    timers = Deadlines()
    assert len(timers) == 0 and timers.next_time() is None and timers.pop_due(1e9) == []


def test_schedule_makes_a_live_entry() -> None:
    timers = Deadlines()
    c = conn()
    timers.schedule(c, 5.0)
    assert c.timer_when == 5.0 and c.timer_seq >= 0
    assert timers.next_time() == 5.0
    assert timers.pop_due(4.999) == []  # not yet due
    assert timers.pop_due(5.0) == [c]  # due exactly at its time
    assert (c.timer_seq, c.timer_when) == (-1, INF)  # cleared: no live entry any more
    assert timers.next_time() is None and len(timers) == 0


def test_reschedule_supersedes_the_old_entry() -> None:
    timers = Deadlines()
    c = conn()
    timers.schedule(c, 1.0)
    timers.schedule(c, 3.0)  # later: the 1.0 entry is stale
    assert c.timer_when == 3.0
    assert timers.next_time() == 3.0  # the stale 1.0 entry is skipped (and dropped)
    assert timers.pop_due(2.0) == []
    assert timers.pop_due(3.0) == [c]


def test_reschedule_earlier_fires_once_at_the_earlier_time() -> None:
    timers = Deadlines()
    c = conn()
    timers.schedule(c, 3.0)
    timers.schedule(c, 1.0)
    assert timers.next_time() == 1.0
    assert timers.pop_due(1.0) == [c]
    assert timers.pop_due(10.0) == []  # the superseded 3.0 entry never fires
    assert len(timers) == 0


def test_inf_means_no_deadline_and_cancels_the_live_entry() -> None:
    timers = Deadlines()
    c = conn()
    timers.schedule(c, INF)
    assert len(timers) == 0  # nothing pushed for "no limit"
    assert (c.timer_seq, c.timer_when) == (-1, INF)
    timers.schedule(c, 2.0)
    timers.schedule(c, INF)  # e.g. handed to a worker: the 2.0 entry is now stale
    assert (c.timer_seq, c.timer_when) == (-1, INF)
    assert timers.next_time() is None
    assert timers.pop_due(1e9) == []


def test_next_time_skips_stale_and_closed_entries() -> None:
    timers = Deadlines()
    stale, closed, live = conn(1), conn(2), conn(3)
    timers.schedule(stale, 1.0)
    timers.schedule(stale, 9.0)
    timers.schedule(closed, 2.0)
    closed.closed = True
    timers.schedule(live, 3.0)
    assert len(timers) == 4
    assert timers.next_time() == 3.0
    assert len(timers) == 2  # the two entries in front of it were dropped, 3.0 and 9.0 stay
    assert timers.next_time() == 3.0  # asking again changes nothing


def test_pop_due_returns_only_live_due_entries_in_time_order() -> None:
    timers = Deadlines()
    a, b, c, d, e = (conn(i) for i in range(5))
    timers.schedule(c, 3.0)
    timers.schedule(a, 1.0)
    timers.schedule(b, 2.0)
    timers.schedule(d, 2.5)
    d.closed = True  # closed: never returned
    timers.schedule(e, 0.5)
    timers.schedule(e, 7.0)  # superseded: its 0.5 entry is stale
    assert timers.pop_due(3.0) == [a, b, c]
    for x in (a, b, c):
        assert (x.timer_seq, x.timer_when) == (-1, INF)
    assert d.timer_when == 2.5  # a closed connection's fields are left alone
    assert e.timer_when == 7.0 and timers.next_time() == 7.0
    assert timers.pop_due(100.0) == [e]


def test_ties_come_out_in_scheduling_order() -> None:
    timers = Deadlines()
    conns = [conn(i) for i in range(20)]
    for c in reversed(conns):  # pushed in reverse fd order: order is by seq, not by fd
        timers.schedule(c, 4.0)
    assert timers.pop_due(4.0) == list(reversed(conns))


def test_a_rescheduled_tie_goes_to_the_back() -> None:
    timers = Deadlines()
    a, b = conn(1), conn(2)
    timers.schedule(a, 4.0)
    timers.schedule(b, 4.0)
    timers.schedule(a, 4.0)  # same time again: a newer entry, behind b's
    assert timers.pop_due(4.0) == [b, a]


def test_a_popped_connection_can_be_scheduled_again() -> None:
    timers = Deadlines()
    c = conn()
    timers.schedule(c, 1.0)
    assert timers.pop_due(1.0) == [c]
    timers.schedule(c, 2.0)
    assert timers.pop_due(1.5) == []
    assert timers.pop_due(2.0) == [c]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_connections_against_a_model(seed: int) -> None:
    """Random schedules, reschedules, cancels and closes of 300 connections; at every step
    the heap agrees with a plain dictionary of each connection's live deadline, and
    ``pop_due`` returns the due ones by time, ties in scheduling order."""
    rng = random.Random(seed)
    timers = Deadlines()
    conns = [conn(i) for i in range(300)]
    model: dict[int, tuple[float, int]] = {}  # fd -> (live deadline, scheduling order)
    order = 0
    now = 0.0
    popped = 0
    for _step in range(3000):
        c = rng.choice(conns)
        op = rng.random()
        if op < 0.6 and not c.closed:
            when = now + rng.choice([0.0, 0.5, 1.0, 1.0, 2.5, 10.0])  # repeats make ties
            timers.schedule(c, when)
            model[c.fd] = (when, order)
            order += 1
        elif op < 0.7 and not c.closed:
            timers.schedule(c, INF)
            model.pop(c.fd, None)
        elif op < 0.75 and not c.closed:
            c.closed = True
            model.pop(c.fd, None)
        else:
            now += rng.random()
            due = timers.pop_due(now)
            expected = sorted((key, fd) for fd, key in model.items() if key[0] <= now)
            assert [x.fd for x in due] == [fd for _key, fd in expected]
            for x in due:
                del model[x.fd]
                assert (x.timer_seq, x.timer_when) == (-1, INF)
            popped += len(due)
        assert timers.next_time() == (min(model.values())[0] if model else None)
        for x in conns:
            if not x.closed:
                assert x.timer_when == model.get(x.fd, (INF, 0))[0]
    assert popped > 100  # the run did exercise expiry
