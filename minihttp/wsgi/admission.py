"""``--limit-concurrency`` and ``--max-requests`` of the app commands, as a handler mix-in.

* ``--limit-concurrency N``: past N requests in progress in this process, a request gets
  ``503 Service Unavailable`` with ``Retry-After`` at once instead of queueing behind the
  others (a load balancer then tries another backend). The connection stays usable.
* ``--max-requests N`` (``--workers`` only) with ``--max-requests-jitter J``: after N + a
  random 0..J requests the worker process stops accepting, finishes what it serves and
  exits; the supervisor starts a fresh one (a slow memory leak in an application is then
  bounded). The jitter keeps the workers from all restarting at the same moment.

Rules of this module:

* Counting is per process and under one lock; a request is counted from its parsed head to
  the end of ``handle_one_request`` (a request refused with 503 is not counted).
* The retirement is triggered once, by the request that reaches the limit, on a thread of
  its own (``shutdown()`` waits for the loop, which may be the very thread serving it),
  with :func:`minihttp.cli.graceful_stop` (stop accepting first: no connection accepted
  just before is dropped unanswered).
* The mix-in is only added when an option asks for it: a server without them pays nothing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Any

from ..cli import graceful_stop

__all__ = ["RETRY_AFTER", "Admission", "with_admission"]

log = logging.getLogger("minihttp.wsgi")

#: Seconds a client refused for concurrency is told to wait.
RETRY_AFTER = 1

_BUSY_BODY = b"Service Unavailable: too many requests in progress, retry shortly.\n"


class _Counter:
    """Requests in progress and served, for one process (shared by its handler objects)."""

    def __init__(self, limit: int, retire_after: int) -> None:
        self.lock = threading.Lock()
        self.limit = limit
        self.retire_after = retire_after
        self.in_progress = 0
        self.served = 0
        self.retiring = False
        self.pid = os.getpid()

    def admit(self) -> bool:
        with self.lock:
            if self.limit and self.in_progress >= self.limit:
                return False
            self.in_progress += 1
            return True

    def done(self) -> bool:
        """One request ended; True if this process should now retire (once)."""
        with self.lock:
            self.in_progress -= 1
            self.served += 1
            if self.retire_after and not self.retiring and self.served >= self.retire_after:
                self.retiring = True
                return True
            return False


class Admission:
    """Handler mix-in: the concurrency limit and the retirement (see the module)."""

    admission: _Counter | None = None
    server: Any

    def parse_request(self) -> bool:
        if not super().parse_request():  # type: ignore[misc]
            return False
        counter = self._counter()
        if counter.admit():
            self._admitted = True
            return True
        self._refuse()
        return False

    def handle_one_request(self) -> None:
        self._admitted = False
        try:
            super().handle_one_request()  # type: ignore[misc]
        finally:
            if self._admitted and self._counter().done():
                log.info("worker pid %d served %d requests: retiring", os.getpid(),
                         self._counter().served)
                threading.Thread(target=graceful_stop, args=(self.server,),
                                 name="minihttp-retire", daemon=True).start()

    def _counter(self) -> _Counter:
        counter = self.admission
        if counter is None or counter.pid != os.getpid():  # first use in this process
            with _new_lock:
                counter = self.admission
                if counter is None or counter.pid != os.getpid():
                    counter = _Counter(self.limit_concurrency, self._retire_after())
                    type(self).admission = counter
        return counter

    limit_concurrency: int = 0
    max_requests: int = 0
    max_requests_jitter: int = 0

    def _retire_after(self) -> int:
        if not self.max_requests:
            return 0
        return self.max_requests + random.randint(0, max(self.max_requests_jitter, 0))

    def _refuse(self) -> None:
        self.send_response(503)  # type: ignore[attr-defined]
        self.send_header("Retry-After", str(RETRY_AFTER))  # type: ignore[attr-defined]
        self.send_header("Content-Type", "text/plain; charset=utf-8")  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(_BUSY_BODY)))  # type: ignore[attr-defined]
        self.end_headers()  # type: ignore[attr-defined]
        self.wfile.write(_BUSY_BODY)  # type: ignore[attr-defined]


_new_lock = threading.Lock()


def with_admission(handler: type, *, limit_concurrency: int = 0, max_requests: int = 0,
                   max_requests_jitter: int = 0) -> type:
    """``handler`` with :class:`Admission` when an option is set; else ``handler`` itself."""
    if not limit_concurrency and not max_requests:
        return handler
    return type(handler.__name__, (Admission, handler), {
        "limit_concurrency": limit_concurrency, "max_requests": max_requests,
        "max_requests_jitter": max_requests_jitter, "admission": None})
