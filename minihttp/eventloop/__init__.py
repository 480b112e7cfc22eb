"""The event-loop server: :class:`PooledHTTPServer`, a bounded worker pool with idle and slow
connections parked in a poller (the default server of ``python -m minihttp``).

One job: serve many connections with few threads, without letting a slow client or a slow
handler stall the others. See :mod:`minihttp.eventloop.server` for the design.
"""

from __future__ import annotations

from minihttp.eventloop.server import PooledHTTPServer, default_max_connections

__all__ = ["PooledHTTPServer", "default_max_connections"]
