"""What happens to a connection after a response: one decision for the loop and the workers.

Whoever served a request (the loop thread inline, a handler that lost the loop, a worker)
asks :func:`after_response` what to do next with the connection, and does it. The decision
is pure (booleans in, an :class:`After` out) so that it can be read, and tested, as a table.

Rules of this module:

* A deferred request comes first: its response is not finished. The loop's leader hands
  the wait to the loop (``SUSPEND``); any other thread (``FINISH``) hands the connection
  and its wait to the loop (``PooledHTTPServer.hand_over_wait``), or, while the server is
  stopping, waits itself and asks again once the response is complete.
* Then ``close`` (the handler said so, or the server is stopping): ``CLOSE``.
* A whole next request already buffered: served on this thread at once by a worker that has
  not served too many in a row (``AGAIN``), queued behind the other ready connections by the
  leader (``AGAIN`` there means "its turn again next round": fairness), otherwise handed
  back to the loop (``HAND_BACK``: a deposed leader is not a worker, and a worker that has
  served its share lets others go first).
* Nothing buffered: a worker first looks for the next request (``READ``: one non-blocking
  ``recv``, or a short linger while threads are plentiful) and asks again with ``looked``;
  everyone else, and a worker that looked, parks the connection (``PARK``).
"""

from __future__ import annotations

import enum

__all__ = ["AGAIN", "CLOSE", "DEPOSED", "FINISH", "HAND_BACK", "LOOP", "PARK", "READ",
           "SUSPEND", "WORKER", "After", "Where", "after_response"]


class Where(enum.Enum):
    """The thread that served the request."""

    #: The loop's leader, serving inline (its turn is over: it still leads).
    LOOP = "loop"
    #: A thread that served inline but lost the loop meanwhile (it acts as a worker would,
    #: but is not one: it may be the ``serve_forever`` thread, which must go back to wait).
    DEPOSED = "deposed"
    #: A pool worker (``inline = False``, TLS, the shutdown drain).
    WORKER = "worker"


class After(enum.Enum):
    """What to do with the connection next."""

    #: Deferred: register the wait with the loop (WAIT); the loop resumes the request.
    SUSPEND = "suspend"
    #: Deferred, off the loop: hand the wait to the loop, or (stopping) wait here
    #: (``finish_deferred``), then ask again.
    FINISH = "finish"
    #: Close the connection.
    CLOSE = "close"
    #: Serve the buffered request: at once on a worker, next round on the loop.
    AGAIN = "again"
    #: Give the connection (a request buffered) to the loop to be served.
    HAND_BACK = "hand back"
    #: Worker: look for the next request (non-blocking or linger), then ask again.
    READ = "read"
    #: Give the connection back to the poller until its next bytes.
    PARK = "park"


LOOP, DEPOSED, WORKER = Where.LOOP, Where.DEPOSED, Where.WORKER
SUSPEND, FINISH, CLOSE, AGAIN = After.SUSPEND, After.FINISH, After.CLOSE, After.AGAIN
HAND_BACK, READ, PARK = After.HAND_BACK, After.READ, After.PARK


def after_response(where: Where, deferred: bool, close: bool, buffered: bool,
                   may_go_on: bool = True, looked: bool = False) -> After:
    """The next step for a connection whose request was just served (see the rules).

    ``deferred``: the handler deferred its response; ``close``: the connection must close
    (``close_connection``, or the server is stopping); ``buffered``: a whole next request
    is buffered (on the loop: with its small body, see ``prefetch_body``); ``may_go_on``
    (workers): it may serve another request in a row; ``looked`` (workers): it has looked
    for the next request since the response.
    """
    # Ordered by frequency: the usual keep-alive request falls through to the last line.
    if deferred:
        return SUSPEND if where is LOOP else FINISH
    if close:
        return CLOSE
    if buffered:
        if where is LOOP or (where is WORKER and may_go_on):
            return AGAIN
        return HAND_BACK
    if where is WORKER and not looked:
        return READ
    return PARK
