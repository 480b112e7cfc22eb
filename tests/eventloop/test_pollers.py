"""minihttp.eventloop.pollers: EpollPoller and SelectorPoller over socketpairs, same cases.

Each poller gets a wake-up socket registered level-triggered, as the server does; its
events are filtered out of the results (``fds``). Every poll has a timeout, so a poller
that misses an event fails the test instead of hanging it.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from minihttp.eventloop import pollers
from minihttp.eventloop.pollers import Poller, SelectorPoller, make_poller

#: Long enough for an event that is there to be reported, short enough to keep the suite
#: quick when (correctly) nothing is.
QUIET = 0.05
#: Upper bound for a poll that must return (an event is due): a hang fails the test.
LONG = 5.0

KINDS = ["selector"] + (["epoll"] if hasattr(pollers, "EpollPoller") else [])


@dataclass
class Rig:
    """A poller, its wake-up socket, and the socketpairs made for the test."""

    poller: Poller
    wake_r: socket.socket
    wake_w: socket.socket
    wakes: list[float] = field(default_factory=list)
    socks: list[socket.socket] = field(default_factory=list)

    def pair(self, data: bytes = b"") -> tuple[socket.socket, socket.socket]:
        """A connected pair ``(ours, peer)``; ``data`` is already waiting on ``ours``."""
        ours, peer = socket.socketpair()
        self.socks += [ours, peer]
        if data:
            peer.sendall(data)
        return ours, peer

    def fds(self, timeout: float | None) -> list[int]:
        """One poll; the descriptors reported, without the wake-up socket (drained)."""
        out = []
        for fd, _events in self.poller.poll(timeout):
            if fd == self.wake_r.fileno():
                self.wake_r.recv(4096)
            else:
                out.append(fd)
        return out

    def fds_within(self, want: int, timeout: float = LONG) -> list[int]:
        """Poll until ``want`` is reported or ``timeout`` passes; everything reported."""
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while want not in seen and time.monotonic() < deadline:
            seen += self.fds(max(0.0, deadline - time.monotonic()))
        return seen


@pytest.fixture(params=KINDS)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wakes: list[float] = []

    def wake() -> None:
        wakes.append(time.monotonic())
        wake_w.send(b"!")

    poller = make_poller(wake, portable=request.param == "selector")
    assert isinstance(poller, SelectorPoller) is (request.param == "selector")
    poller.add_level(wake_r.fileno())
    r = Rig(poller, wake_r, wake_w, wakes)
    try:
        yield r
    finally:
        poller.close()
        for s in [wake_r, wake_w, *r.socks]:
            s.close()


def test_make_poller_prefers_epoll() -> None:
    p = make_poller(lambda: None)
    try:
        assert type(p).__name__ == ("EpollPoller" if hasattr(select, "epoll")
                                    else "SelectorPoller")
        assert p.supports_level is hasattr(select, "epoll")
    finally:
        p.close()


def test_one_shot_reports_once_until_rearmed(rig: Rig) -> None:
    ours, _peer = rig.pair(b"GET")
    fd = ours.fileno()
    rig.poller.add(fd)
    assert rig.fds(LONG) == [fd]
    # The bytes are still unread, yet a one-shot registration stays silent...
    assert rig.fds(QUIET) == []
    assert rig.fds(QUIET) == []
    # ...until its owner re-arms it: then exactly one more report.
    rig.poller.rearm(fd)
    assert rig.fds_within(fd) == [fd]
    assert rig.fds(QUIET) == []


def test_one_shot_not_ready_reports_when_bytes_arrive(rig: Rig) -> None:
    ours, peer = rig.pair()
    rig.poller.add(ours.fileno())
    assert rig.fds(QUIET) == []
    peer.sendall(b"x")
    assert rig.fds(LONG) == [ours.fileno()]


def test_rearm_from_another_thread_wakes_a_blocked_poll(rig: Rig) -> None:
    """A worker re-arms while the loop thread sits in poll(): epoll reports the descriptor
    directly, the selector fallback queues the re-arm and wakes the loop."""
    ours, _peer = rig.pair(b"next request")
    fd = ours.fileno()
    rig.poller.add(fd)
    assert rig.fds(LONG) == [fd]  # now "on a worker"

    def park() -> None:
        time.sleep(0.1)  # let the loop thread block in poll() first
        rig.poller.rearm(fd)

    worker = threading.Thread(target=park)
    worker.start()
    try:
        seen = rig.fds_within(fd)
    finally:
        worker.join(LONG)
    assert seen == [fd]
    if isinstance(rig.poller, SelectorPoller):
        assert len(rig.wakes) == 1  # queued and woken, not left for the next timeout
    else:
        assert rig.wakes == []  # epoll: one syscall, the loop thread is not woken


def test_rearm_of_a_quiet_descriptor_reports_nothing(rig: Rig) -> None:
    ours, peer = rig.pair(b"a")
    fd = ours.fileno()
    rig.poller.add(fd)
    assert rig.fds(LONG) == [fd]
    ours.recv(10)  # the worker read it all
    rig.poller.rearm(fd)
    assert rig.fds(QUIET) == []
    peer.sendall(b"b")
    assert rig.fds(LONG) == [fd]


def test_level_reports_every_poll_while_readable(rig: Rig) -> None:
    ours, _peer = rig.pair(b"abc")
    fd = ours.fileno()
    rig.poller.add_level(fd)
    for _ in range(3):
        assert rig.fds(LONG) == [fd]
    ours.recv(2)
    assert rig.fds(LONG) == [fd]  # one byte left
    ours.recv(1)
    assert rig.fds(QUIET) == []  # drained: silent


def test_remove_level(rig: Rig) -> None:
    ours, _peer = rig.pair(b"abc")
    fd = ours.fileno()
    rig.poller.add_level(fd)
    assert rig.fds(LONG) == [fd]
    rig.poller.remove_level(fd)
    assert rig.fds(QUIET) == []
    rig.poller.remove_level(fd)  # twice, or never added: no error
    other, _ = rig.pair()
    rig.poller.remove_level(other.fileno())
    # The descriptor can be registered again afterwards (nothing stale left behind).
    rig.poller.add_level(fd)
    assert rig.fds(LONG) == [fd]


def test_to_level_switches_a_one_shot_connection(rig: Rig) -> None:
    ours, _peer = rig.pair(b"pipelined")
    fd = ours.fileno()
    rig.poller.add(fd)
    assert rig.fds(LONG) == [fd]
    if not rig.poller.supports_level:
        with pytest.raises(NotImplementedError):
            rig.poller.to_level(fd)
        return
    rig.poller.to_level(fd)  # armed again, level-triggered now
    assert rig.fds(LONG) == [fd]
    assert rig.fds(LONG) == [fd]
    rig.poller.rearm(fd)  # and back to one-shot
    assert rig.fds(LONG) == [fd]
    assert rig.fds(QUIET) == []


def test_forget_then_close_leaves_the_number_reusable(rig: Rig) -> None:
    ours, _peer = rig.pair()
    fd = ours.fileno()
    rig.poller.add(fd)
    rig.poller.forget(fd)
    ours.close()
    again, _peer = rig.pair(b"new client")  # the lowest free number: the one just closed
    if again.fileno() != fd:
        pytest.skip("the closed descriptor number was not reused")
    rig.poller.add(fd)  # no "already registered" from a stale entry
    assert rig.fds(LONG) == [fd]


def test_forget_of_a_reported_one_shot_is_harmless(rig: Rig) -> None:
    ours, _peer = rig.pair(b"x")
    fd = ours.fileno()
    rig.poller.add(fd)
    assert rig.fds(LONG) == [fd]
    rig.poller.forget(fd)  # already off the selector (reported): no error
    rig.poller.forget(fd)
    assert rig.fds(QUIET) == []


def test_closed_descriptor_is_never_reported(rig: Rig) -> None:
    """The loop forgets and closes a connection with bytes still unread: no event for it,
    and no error out of poll()."""
    ours, _peer = rig.pair(b"unread")
    fd = ours.fileno()
    rig.poller.add(fd)
    rig.poller.forget(fd)
    ours.close()
    assert rig.fds(QUIET) == []


def test_selector_drops_a_queued_rearm_of_a_closed_descriptor() -> None:
    wakes: list[int] = []
    poller = SelectorPoller(lambda: wakes.append(1))
    ours, peer = socket.socketpair()
    try:
        fd = ours.fileno()
        poller.add(fd)
        peer.sendall(b"x")
        assert [f for f, _ in poller.poll(LONG)] == [fd]
        poller.rearm(fd)  # a worker parks it...
        ours.close()  # ...and the connection is closed before the loop registers it
        assert wakes == [1]
        assert poller.poll(QUIET) == []  # dropped quietly, not an OSError out of poll()
    finally:
        poller.close()
        ours.close()
        peer.close()


def test_peer_close_is_reported_as_readable(rig: Rig) -> None:
    ours, peer = rig.pair()
    rig.poller.add(ours.fileno())
    peer.close()
    assert rig.fds(LONG) == [ours.fileno()]  # EOF is news: the loop reads b"" and closes


@pytest.mark.parametrize("timeout", [0, QUIET])
def test_poll_with_a_timeout_returns_empty_when_nothing_is_ready(rig: Rig,
                                                                 timeout: float) -> None:
    quiet, _ = rig.pair()
    rig.poller.add(quiet.fileno())
    start = time.monotonic()
    assert rig.poller.poll(timeout) == []
    # A bound on correctness (the poll honours its timeout), not a speed figure.
    assert time.monotonic() - start < LONG


def test_poll_without_timeout_returns_when_woken(rig: Rig) -> None:
    t = threading.Timer(0.05, rig.wake_w.send, (b"!",))
    t.start()
    try:
        events = rig.poller.poll(None)
    finally:
        t.join(LONG)
    assert [fd for fd, _ in events] == [rig.wake_r.fileno()]
