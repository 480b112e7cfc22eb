"""Leadership of the event loop: which thread runs it, and handing it over when a handler
run inline holds it too long.

With inline serving the loop thread (the *leader*) calls handlers itself. A handler that
blocks (a slow client, a database, ``time.sleep``) would stall every other connection, so a
watchdog thread looks every ``inline_budget`` seconds: when the same handler (the same
*turn*) is still running it *deposes* the leader, and another thread (the spare: a deposed
``serve_forever`` thread waiting to lead again; else a worker free right now) becomes the
leader and goes on with the loop. The deposed handler finishes where it is, as a worker
would, and hands its connection back. A handler that knows it will block (a CONNECT tunnel)
asks for the same at once (:meth:`Leadership.leave`).

Rules of this module:

* :class:`Leadership` owns its fields, and ``_lock`` guards them, with these exceptions,
  each argued where it is: the leader writes ``_running_conn``, ``_seq`` and ``_running``
  without the lock when a turn begins (once per request: a lock there costs every request;
  :meth:`Leadership.begin_turn`); the watchdog reads ``_running`` and ``_seq`` without it
  (a stale value only delays a deposition by a tick or skips one: :meth:`Leadership.depose`
  checks again under the lock); a running handler asks :meth:`Leadership.may_defer`
  without it (only a deposition can change that answer, from yes to no, and the turn's
  end, under the lock, has the last word); the watchdog's own flags (``_watch_*``) and
  ``epoch`` read as a figure (a benchmark's "did the loop move").
* The epoch names the current leader. It changes in :meth:`Leadership.begin`
  (``serve_forever`` starts) and in a deposition once its successor is certain, under the
  lock, and nowhere else: never bumped and rolled back (a failed deposition changes
  nothing anyone can see).
* A deposition happens only during a turn (``_running`` is that turn, checked under the
  lock). The leader ends every turn under the lock (:meth:`Leadership.end_turn`) and learns
  there, once, whether it still leads; until its next turn nobody can depose it, so it
  owns the loop between turns without asking again.
* A successor starts leading through :meth:`Leadership.take` (under the lock), so it never
  runs the loop before the deposition that chose it has completed.
* The lock is taken before the worker pool's own lock (``try_run_now``), never after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from minihttp.eventloop.after import DEPOSED, LOOP, Where
from minihttp.eventloop.conn import Conn
from minihttp.logs import error_log
from minihttp.socketserver import _waits as waits
from minihttp.socketserver.workers import WorkerPool

__all__ = ["Leadership"]


class Leadership:
    """Who leads the loop; turns, the watchdog, depositions and the spare thread."""

    def __init__(self, lead: Callable[[int], None], pool: Callable[[], WorkerPool],
                 release: Callable[[Conn], None]) -> None:
        #: ``lead(epoch)`` runs the loop as that epoch's leader (on the successor's thread).
        self._lead = lead
        #: The worker pool (created on first use by the caller).
        self._pool = pool
        #: Called with the running connection when its thread is deposed (under the lock):
        #: it stays with that thread, so it must leave the loop's level-triggered set.
        self._release = release
        self._lock = threading.Lock()
        self._spare_cond = threading.Condition(self._lock)
        self._epoch = 0
        self._leader = 0  # thread ident of the current leader
        # The turn: a handler running inline (leader-written, see the rules).
        self._seq = 0  # turns begun
        self._running = 0  # the turn now running (its number), 0 between turns
        self._running_conn: Conn | None = None
        # The spare: a deposed serve_forever thread waiting to lead again.
        self._spare_ready = False
        self._spare_epoch = 0
        #: Set when serving has ended (the last leader cleaned up).
        self._done = threading.Event()
        self._done.set()
        # The watchdog.
        self._budget = 0.002
        self._watch_thread: threading.Thread | None = None
        self._watch_idle = False
        self._watch_stop = True
        self._watch_wake = threading.Event()

    # -- serving begins and ends -------------------------------------------------------------

    def begin(self) -> int:
        """``serve_forever`` starts: serving is not done, and a new epoch, which the caller
        leads (it calls :meth:`take`)."""
        self._done.clear()
        with self._lock:
            self._epoch += 1
            return self._epoch

    def start_watching(self, budget: float) -> None:
        """Start the watchdog: a handler may hold the loop about ``budget`` seconds."""
        self._budget = budget
        self._watch_stop = False
        self._watch_wake.clear()
        self._watch_thread = threading.Thread(target=self._watch, name="minihttp-watch",
                                              daemon=True)
        self._watch_thread.start()

    def stop_watching(self) -> None:
        """Stop the watchdog and wait for its thread (``serve_forever``'s last act)."""
        self._watch_stop = True
        self._watch_wake.set()
        thread, self._watch_thread = self._watch_thread, None
        if thread is not None:
            waits.join(thread)

    def end(self) -> None:
        """The last leader has cleaned up: serving is over (releases ``serve_forever`` and
        the spare)."""
        self._watch_stop = True
        self._watch_wake.set()
        with self._lock:
            self._running_conn = None
            self._done.set()
            self._spare_cond.notify_all()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until serving has ended; whether it has."""
        return waits.wait(self._done.wait, timeout)

    # -- leading -------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The current epoch (read without the lock: for a benchmark's "did the loop move")."""
        return self._epoch

    def take(self, epoch: int) -> bool:
        """This thread starts leading ``epoch``; False if that epoch is no longer current."""
        with self._lock:
            if self._epoch != epoch:
                return False
            self._leader = threading.get_ident()
            return True

    def leads(self, epoch: int) -> bool:
        """Whether ``epoch`` is still current (the leader, between turns: a stable answer)."""
        with self._lock:
            return self._epoch == epoch

    def begin_turn(self, conn: Conn) -> None:
        """The leader starts running ``conn``'s handler. Leader only; no lock.

        Safe without the lock: only the leader writes these fields, and only between turns
        (a deposed leader never begins another turn; its successor begins turns only after
        :meth:`take`). :meth:`depose` reads ``_running`` then ``_running_conn`` under the
        lock, and ``_running_conn`` is written first here, so a deposition that sees this
        turn sees its connection; the turn cannot end while the deposition holds the lock.
        The watchdog may miss the new turn until its next tick (``_seq``), or be woken by
        ``_watch_wake`` (it sets ``_watch_idle`` before it looks at ``_running`` and this
        thread sets ``_running`` before it looks at ``_watch_idle``, so under the GIL one of
        them sees the other's store).
        """
        self._running_conn = conn
        seq = self._seq + 1
        self._seq = seq
        self._running = seq
        if self._watch_idle:
            self._watch_wake.set()

    def end_turn(self, epoch: int) -> Where:
        """The handler returned: ``LOOP`` if this thread still leads (the turn is over; no
        deposition can happen until the next turn), ``DEPOSED`` if it lost the loop (then
        ``_running`` is the new leader's, left alone). Idempotent."""
        with self._lock:
            if self._epoch != epoch:
                return DEPOSED
            self._running = 0
            return LOOP

    # -- handing the loop over -----------------------------------------------------------------

    def depose(self, turn: int, voluntary: bool = False) -> bool:
        """Hand the loop to another thread if turn ``turn`` is still running; whether it
        was handed over."""
        with self._lock:
            if not turn or self._running != turn:
                return False  # that handler ended (also when stopping: the leader drains)
            conn = self._running_conn
            to = self._hand_over()
        if to is None:
            return False
        # Worth knowing when tuning: a handler that often blocks costs a thread wake-up each.
        addr = conn.addr if conn is not None else "-"
        if voluntary:
            error_log.debug("a handler for %s left the loop; loop handed to %s", addr, to)
        else:
            error_log.debug("a handler for %s held the loop over %.1f ms; loop handed to %s",
                            addr, self._budget * 1e3, to)
        return True

    def _hand_over(self) -> str | None:
        """With the lock held, during a turn: make the spare or a free worker the next
        leader, then depose the current one. None (nothing changed) if no thread is free."""
        epoch = self._epoch + 1
        if self._spare_ready:  # the serve_forever thread is free: it leads again
            self._spare_ready = False
            self._spare_epoch = epoch
            self._spare_cond.notify()
            to = "the spare thread"
        else:
            try:
                # Now or not at all: a queued leader would leave the loop unserved until
                # some worker finished; kept, it goes on when its handler returns.
                submitted = self._pool().try_run_now(self._lead, epoch)
            except RuntimeError:
                submitted = False
            if not submitted:
                return None  # no room for a new leader: the watchdog tries again next tick
            to = "a pool worker"  # it waits in take() until this lock is released
        conn = self._running_conn
        if conn is not None:
            self._release(conn)
        self._epoch = epoch
        self._running = 0
        return to

    def leave(self, handler: Any) -> bool:
        """For a handler about to block for long: hand the loop over now. True when
        ``handler`` no longer holds the loop (or never did); False when no thread is free."""
        with self._lock:
            conn = self._running_conn
            if (not self._running or conn is None or conn.handler is not handler
                    or self._leader != threading.get_ident()):
                return True
            to = self._hand_over()
        if to is None:
            return False
        error_log.debug("a handler for %s left the loop; loop handed to %s", conn.addr, to)
        return True

    def may_defer(self, handler: Any) -> bool:
        """Whether ``handler`` runs inline on the leader's thread, in a turn that has not
        been deposed (the leadership part of ``defer_readable``).

        Without the lock (measured: the lock was a tenth of the deferral's cost in the
        loop, cpu_proxy --pooled --profile): the caller is the handler of the turn it asks
        about, on its own thread, so only a deposition can change the answer meanwhile, and
        a deposition only ever turns it from yes to no. A "no" is therefore always true; a
        "yes" that a deposition overtakes is caught where it matters, under the lock, when
        the turn ends (:meth:`end_turn` says ``DEPOSED`` and the handler's thread hands the
        wait back to the loop, ``PooledHTTPServer.hand_over_wait``).
        """
        conn = self._running_conn
        return (self._running != 0 and conn is not None and conn.handler is handler
                and self._leader == threading.get_ident())

    def follow(self) -> None:
        """A deposed ``serve_forever`` thread: the spare, which leads again when a deposition
        picks it, until serving ends."""
        cond = self._spare_cond
        while True:
            with cond:
                self._spare_ready = True
                while not self._spare_epoch and not self._done.is_set():
                    cond.wait(waits.SLICE)  # sliced: a Ctrl-C meanwhile (see _waits)
                self._spare_ready = False
                epoch, self._spare_epoch = self._spare_epoch, 0
            if not epoch:
                return
            self._lead(epoch)

    # -- the watchdog --------------------------------------------------------------------------

    @property
    def watch_idle(self) -> bool:
        """The watchdog sleeps until a handler starts (tests)."""
        return self._watch_idle

    def _watch(self) -> None:
        """Depose the leader when one handler holds the loop a whole tick.

        Inline serving saves the two thread hand-offs per request that a worker pool costs
        under the GIL, but while a handler runs on the loop thread no other connection is
        served. So this thread looks every ``inline_budget`` seconds: the same turn running
        at two looks in a row means a handler held the loop at least a tick. While the loop
        serves nothing the watchdog sleeps until a turn begins (no idle ticks).
        """
        waits.leave_stop_signals_to_the_main_thread()
        wake = self._watch_wake
        tick = max(self._budget, 0.0005)
        seen_running = 0
        seen_seq = -1
        while not self._watch_stop:
            running = self._running
            if not running and self._seq == seen_seq:
                wake.clear()
                self._watch_idle = True
                if not self._running and not self._watch_stop:
                    wake.wait()
                # Cleared, or the tick below would return at once and the handler that
                # woke us would be deposed microseconds after it started.
                wake.clear()
                self._watch_idle = False
                seen_running, seen_seq = 0, self._seq
                continue
            seen_seq = self._seq
            if running and running == seen_running:
                self.depose(running)
                seen_running = 0
            else:
                seen_running = running
            wake.wait(tick)
            wake.clear()
