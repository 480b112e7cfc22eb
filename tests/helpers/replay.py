"""Test helper: replay raw request bytes through minihttp.http11 the way a server would.

Used by the tests under ``tests/http11/`` (its self-tests are ``tests/http11/test_replay.py``).
``replay(data, sizes)`` feeds ``data`` in pieces of
the given sizes: ``find_head_end`` on the growing buffer, ``parse_head`` on the head, then the
body by Content-Length or through a ``ChunkedDecoder`` fed the same pieces.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from minihttp.config import DEFAULT_LIMITS, Limits
from minihttp.errors import HTTPError
from minihttp.http11 import ChunkedDecoder, find_head_end, parse_head


@dataclass
class Outcome:
    kind: str  # "ok", "error", "incomplete"
    status: int = 0
    close: bool = False
    message: str = ""
    request: Any = None
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    unused: bytes = b""

    def key(self) -> tuple[Any, ...]:
        """What must be identical however the input was split."""
        if self.kind == "error":
            return ("error", self.status, self.close)
        if self.kind == "incomplete":
            return ("incomplete",)
        r = self.request
        return ("ok", r.method, r.target, r.version, r.version_info, r.headers.items(),
                r.raw_requestline, r.content_length, r.chunked, r.keep_alive,
                r.expect_continue, self.body, self.trailers, self.unused)


def pieces(data: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        n = max(1, next(sizes))
        yield data[i : i + n]
        i += n


def whole(data: bytes) -> Iterator[int]:
    while True:
        yield max(1, len(data))


def bytewise() -> Iterator[int]:
    while True:
        yield 1


def random_sizes(seed: int, top: int = 16) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, top)


def replay(data: bytes, sizes: Iterator[int], limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """Run ``data`` through the parser in pieces; never raises for HTTPError."""
    feed = pieces(data, sizes)
    buf = bytearray()
    try:
        end = -1
        for piece in feed:
            buf += piece
            end = find_head_end(buf, 0, limits)
            if end >= 0:
                break
        if end < 0:
            return Outcome("incomplete")
        req = parse_head(bytes(buf[:end]), limits)
        rest = bytes(buf[end:])
        if req.chunked:
            dec = ChunkedDecoder(limits)
            body = b"".join(dec.feed(rest))
            for piece in feed:
                if dec.done:
                    dec.unused += piece
                else:
                    body += b"".join(dec.feed(piece))
            if not dec.done:
                return Outcome("incomplete")
            return Outcome("ok", request=req, body=body, trailers=dec.trailers.items(),
                           unused=dec.unused)
        length = req.content_length or 0
        for piece in feed:
            rest += piece
        if len(rest) < length:
            return Outcome("incomplete")
        return Outcome("ok", request=req, body=rest[:length], unused=rest[length:])
    except HTTPError as err:
        return Outcome("error", err.status, err.close, err.message)
