"""The deadline heap of the event loop: when each parked connection must be looked at again.

Rules of this module:

* Only the loop thread touches the heap. Each connection has at most one *live* entry
  (``Conn.timer_seq`` names it); older entries are stale and skipped, so rescheduling is a
  push, never a search, and expiry costs O(log n) per connection per timeout period.
* Workers never push: they only write ``Conn.expires``, which is never earlier than the
  connection's live entry except for a partial head, and for that one case they hand the
  connection to the loop to be re-timed (see :mod:`minihttp.eventloop.conn`).
"""

from __future__ import annotations

import heapq
import itertools

from minihttp.eventloop.conn import Conn

__all__ = ["Deadlines"]


class Deadlines:
    """A heap of ``(when, seq, conn)``; only the I/O thread uses it."""

    __slots__ = ("_counter", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Conn]] = []
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, conn: Conn, when: float) -> None:
        """Make ``when`` the connection's live entry (an earlier live one is superseded)."""
        if when == float("inf"):
            conn.timer_seq = -1
            conn.timer_when = when
            return
        seq = next(self._counter)
        conn.timer_seq = seq
        conn.timer_when = when
        heapq.heappush(self._heap, (when, seq, conn))

    def next_time(self) -> float | None:
        """When the earliest entry falls due (it may be stale), or None."""
        heap = self._heap
        while heap and (heap[0][2].closed or heap[0][1] != heap[0][2].timer_seq):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Conn]:
        """Remove and return the connections whose live entry is due at ``now``."""
        heap = self._heap
        out: list[Conn] = []
        while heap and heap[0][0] <= now:
            _when, seq, conn = heapq.heappop(heap)
            if seq == conn.timer_seq and not conn.closed:
                conn.timer_seq = -1
                conn.timer_when = float("inf")
                out.append(conn)
        return out
