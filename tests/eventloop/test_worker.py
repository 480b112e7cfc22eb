"""Serving on a worker (minihttp.eventloop.worker.serve): requests in a row, the look for
the next one, then park, hand back or close; scenarios over fakes, as a table.

The fakes count what happens: a reader holding whole requests, a handler that consumes
one per call, a socket whose non-blocking ``recv`` has what the scenario says, a poller and
a server that record. TLS and lingering on real sockets are in test_server.py.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.eventloop.conn import BUSY, HEAD, IDLE, Conn
from minihttp.eventloop.worker import MAX_IN_PLACE, serve
from minihttp.server import Deferred

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


class Reader:
    """``requests`` whole requests buffered; ``feed`` adds what arrives."""

    def __init__(self, requests: int) -> None:
        self.requests = requests
        self.partial = b""
        self.eof = False
        self.limits = _Limits()

    @property
    def buf(self) -> bytes:
        return REQUEST * self.requests + self.partial

    def has_request(self) -> bool:
        return self.requests > 0 or self.eof

    def feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
        self.requests += data.count(b"\r\n\r\n")
        self.partial += data.rpartition(b"\r\n\r\n")[2]


@dataclass
class _Limits:
    head_timeout: float | None = 10.0
    keepalive_timeout: float | None = 30.0


class Sock:
    """Non-blocking recv: the next of ``arrivals`` (bytes), then nothing (EAGAIN)."""

    def __init__(self, arrivals: list[bytes]) -> None:
        self.arrivals = list(arrivals)

    def recv(self, n: int, flags: int = 0) -> bytes:
        if not self.arrivals:
            raise BlockingIOError
        return self.arrivals.pop(0)


class Handler:
    def __init__(self, reader: Reader, close_after: int | None, defer: bool,
                 fail: bool) -> None:
        self.reader = reader
        self.close_after = close_after
        self.defer = defer
        self.fail = fail
        self.served = 0
        self.close_connection = False
        self.finished: list[float | None] = []
        self.deferred: Deferred | None = None

    def handle_one_request(self) -> Deferred | None:
        if self.fail:
            raise RuntimeError("handler failure (expected by the test)")
        if self.reader.requests:
            self.reader.requests -= 1
        self.served += 1
        self.close_connection = self.close_after is not None and self.served >= self.close_after
        self.deferred = Deferred(None, lambda ready: None, 1.0) if self.defer else None
        return self.deferred

    def finish_deferred(self, until: float | None = None) -> None:
        self.finished.append(until)


class Poller:
    def __init__(self) -> None:
        self.rearmed: list[int] = []

    def rearm(self, fd: int) -> None:
        self.rearmed.append(fd)


@dataclass
class Pool:
    pending: int = 0
    busy: int = 1
    max_workers: int = 4


@dataclass
class Loop:
    closing: bool = False
    grace_end: float | None = None
    poller: Poller = field(default_factory=Poller)
    backlog: collections.deque[Conn] = field(default_factory=collections.deque)
    handbacks: collections.deque[tuple[Conn, Any]] = field(default_factory=collections.deque)
    woken: int = 0

    def wake(self) -> None:
        self.woken += 1


class Server:
    speculative_read = True
    linger = 0.0  # never block: one non-blocking look
    linger_max = 1.0

    def __init__(self, closing: bool, pending: int) -> None:
        self._loop = Loop(closing=closing, grace_end=123.0)
        self.pool = Pool(pending=pending)
        self.closed: list[Conn] = []
        self.errors: list[Any] = []

    def _close(self, conn: Conn) -> None:
        self.closed.append(conn)

    hand_over_wait = PooledHTTPServer.hand_over_wait

    def handle_error(self, sock: Any, addr: Any) -> None:
        self.errors.append(addr)


@dataclass
class Case:
    name: str
    buffered: int = 0  # whole requests buffered besides the one being served
    arrivals: list[bytes] = field(default_factory=list)  # what a look for more finds
    close_after: int | None = None
    closing: bool = False
    pending: int = 0  # requests waiting for a worker (pressure)
    defer: bool = False
    given_deferred: bool = False  # a deferred request handed over at shutdown
    fail: bool = False
    # expected:
    served: int = 1
    outcome: str = "park"  # park / close / hand back
    parked_as: int = IDLE  # park: IDLE, or HEAD with part of a head buffered
    finished: list[float | None] = field(default_factory=list)


CASES = [
    Case("one request, nothing more: park", served=1, outcome="park"),
    Case("handler says close", close_after=1, outcome="close"),
    Case("pipelined requests served in a row", buffered=3, served=4),
    Case("the next request found by the look", arrivals=[REQUEST], served=2),
    Case("EOF found by the look: served as EOF, then closed", arrivals=[b""],
         close_after=2, served=2, outcome="close"),
    Case("a partial head found: park, to be re-timed by the loop", arrivals=[b"GET / HT"],
         served=1, parked_as=HEAD),
    Case("no pressure: more than MAX_IN_PLACE in a row", buffered=MAX_IN_PLACE + 5,
         served=MAX_IN_PLACE + 6),
    Case("pressure: hand back after MAX_IN_PLACE", buffered=MAX_IN_PLACE + 5, pending=1,
         served=MAX_IN_PLACE, outcome="hand back"),
    Case("server closing: close after the response", buffered=2, closing=True,
         outcome="close"),
    Case("a deferral on a worker is handed to the loop", defer=True, served=1,
         outcome="wait"),
    Case("a deferral on a worker while stopping is waited for here", defer=True,
         closing=True, served=1, finished=[None], outcome="close"),
    Case("a deferred request given at shutdown waits until the grace ends",
         given_deferred=True, closing=True, served=0, outcome="close", finished=[123.0]),
    Case("handler failure: logged and closed", fail=True, served=0, outcome="close"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_serve(case: Case) -> None:
    server = Server(case.closing, case.pending)
    reader = Reader(1 + case.buffered)
    conn = Conn(Sock(case.arrivals), ("127.0.0.1", 1), 5)
    conn.reader = reader
    conn.handler = handler = Handler(reader, case.close_after, case.defer, case.fail)
    conn.nowait = True
    if case.given_deferred:
        conn.deferred = Deferred(None, lambda ready: None, 1.0)
    conn.take()
    serve(server, conn)  # type: ignore[arg-type]
    loop = server._loop
    assert handler.served == case.served
    assert handler.finished == case.finished
    assert conn.deferred is None
    if case.outcome == "close":
        assert server.closed == [conn] and not loop.poller.rearmed and not loop.handbacks
    elif case.outcome == "wait":  # the loop waits for it: the worker let it go at once
        assert list(loop.handbacks) == [(conn, handler.deferred)] and loop.woken == 1
        assert handler.deferred is not None
        assert conn.state == BUSY and not server.closed and not loop.poller.rearmed
    elif case.outcome == "hand back":
        assert list(loop.handbacks) == [(conn, True)] and loop.woken == 1
        assert conn.state == BUSY and not server.closed and not loop.poller.rearmed
    else:
        assert conn.state == case.parked_as and loop.poller.rearmed == [5]
        assert not server.closed
        # A partial head is handed to the loop to be re-timed; an idle connection is not.
        assert list(loop.handbacks) == ([(conn, False)] if case.parked_as == HEAD else [])
    assert bool(server.errors) is case.fail
