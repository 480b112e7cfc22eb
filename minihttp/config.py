"""Limits and timeouts, in one validated place.

Every bound the server enforces lives here (the approach of waitress's ``adjustments.py``),
so a deployment changes one object instead of hunting literals. A :class:`Limits` is
immutable; build a new one with :meth:`Limits.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a client may send and how long it may take.

    Sizes are in bytes, times in seconds. ``None`` for a timeout means "no limit".
    """

    #: Longest request line (method, target, version). Over it: 414.
    max_request_line: int = 8 * 1024
    #: Longest request head (request line + fields + CRLFs). Over it: 431.
    max_head: int = 64 * 1024
    #: Most header fields in one head. Over it: 431.
    max_header_count: int = 100
    #: Largest request body accepted. Over it: 413, before any of it is read.
    max_body: int = 1024 * 1024 * 1024
    #: Longest chunk-size line including extensions (RFC 9112 section 7.1.1). Over it: 400.
    max_chunk_line: int = 4 * 1024
    #: Largest trailer section of a chunked body. Over it: 431.
    max_trailer: int = 16 * 1024
    #: Unread body the server drains so a connection can be reused; over it: close instead.
    max_discard: int = 64 * 1024
    #: Deadline for the whole request head, from its first byte (slowloris). Over it: 408.
    head_timeout: float | None = 10.0
    #: How long an idle keep-alive connection is kept open between requests.
    keepalive_timeout: float | None = 15.0
    #: Longest wait for one piece of a request body while the handler reads it.
    body_timeout: float | None = 30.0
    #: Time allowed to drain an unread body before the connection is closed instead.
    discard_timeout: float = 2.0
    #: Longest wait for the client to take more response bytes (a client that stops reading).
    send_timeout: float | None = 30.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name.endswith("timeout"):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive number, not {value!r}")
        if self.max_request_line > self.max_head:
            raise ValueError("Limits.max_request_line cannot exceed Limits.max_head")

    def replace(self, **changes: object) -> Limits:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_LIMITS = Limits()
