"""Bounded byte caches for the static handler: compressed bodies and whole responses.

Two uses, one structure (:class:`ByteCache`, least recently used out first, bounded by
bytes):

* compressed bodies of unchanged files, keyed by (path, coding, level), so ``--compress``
  compresses a file once, not per request;
* prebuilt responses (:class:`Prebuilt`): everything of a plain 200 answer to a small file
  but its status line, ``Server`` and ``Date`` (built fresh by ``send_response`` on every
  request) and ``Content-Length``. A hit costs the handler one ``lstat`` and one send, about
  what a hello-world handler costs (see ``SimpleHTTPRequestHandler._send_prebuilt``).

Rules of this module (a stale byte must never be served, as in :mod:`~minihttp.static.cache`):

* Every entry carries the identity (:func:`~minihttp.static.cache.identity`: device, inode,
  size, mtime and ctime in nanoseconds) of the file it was made from, and :meth:`get`
  answers only for a stat result of the same identity; callers pass a fresh ``lstat``.
* "Racily clean" files are never stored: the file's ctime must be older than
  :data:`~minihttp.static.cache.RACY_SECONDS` before the moment it was read.
* Bounded: entries above ``max_entry`` bytes are refused; past ``max_total`` bytes the least
  recently used entries go. One lock guards changes of the dict
  (a hit only moves its entry to the end, atomically under the GIL); no I/O under it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from minihttp.static import cache as _smallfiles
from minihttp.static.cache import Identity, identity

__all__ = ["ByteCache", "Prebuilt", "PrebuiltFile"]


class ByteCache:
    """``key -> (identity, value, size)``, least recently used out first, at most
    ``max_total`` bytes (as the callers count them) in all; thread-safe."""

    def __init__(self, max_entry: int = 1024 * 1024, max_total: int = 32 * 1024 * 1024) -> None:
        self.max_entry = max_entry
        self.max_total = max_total
        self._entries: OrderedDict[Hashable, tuple[Identity, Any, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Bytes held now (for tests and monitoring)."""
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, st: os.stat_result) -> Any:
        """The value stored under ``key`` if made from a file with ``st``'s identity, else
        None (a stale entry is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != identity(st):
            self.discard(key)
            return None
        try:
            # No lock: move_to_end is one C call under the GIL (measured: the lock cost
            # ~0.3 us per hit of benchmarks/cpu_static.py); put and discard hold the lock.
            self._entries.move_to_end(key)
        except KeyError:
            pass  # dropped meanwhile by another thread: the value is still right
        return entry[1]

    def put(self, key: Hashable, st: os.stat_result, value: Any, size: int,
            started: float | None = None) -> bool:
        """Store ``value`` (``size`` bytes) made from a file whose stat was ``st``, read no
        earlier than ``started``; False if refused (too big, or racily clean)."""
        if size > self.max_entry or size > self.max_total:
            return False
        if started is None:
            started = time.time()
        if st.st_ctime_ns > (started - _smallfiles.RACY_SECONDS) * 1e9:
            return False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[2]
            while self._entries and self._total + size > self.max_total:
                _key, (_ident, _value, dropped) = self._entries.popitem(last=False)
                self._total -= dropped
            self._entries[key] = (identity(st), value, size)
            self._total += size
        return True

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[2]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._total = 0


@dataclass(frozen=True, slots=True)
class Prebuilt:
    """One representation's plain 200 answer, made by the general path and kept whole."""

    #: The header field lines after ``Date`` (the handler's extra fields included), without
    #: ``Content-Length`` and without the blank line that ends the head.
    fields: bytes
    #: The body (sent for GET, not for HEAD).
    body: bytes
    #: ``str(len(body))``, for ``send_header("Content-Length", ...)``.
    length: str


@dataclass(slots=True)
class PrebuiltFile:
    """The prebuilt answers of one file, by content coding (None: identity).

    ``codings`` is what the answer was negotiated from (the on-the-fly codings this file
    gets; empty when it is not compressed), ``no_siblings`` the proof that the file had no
    precompressed sibling (the directory's identity and the suffixes looked for; see
    ``SimpleHTTPRequestHandler._no_siblings``), or None when that must be checked per hit.
    """

    codings: tuple[str, ...]
    no_siblings: tuple[Identity, Sequence[tuple[str, str]]] | None
    variants: dict[str | None, Prebuilt] = field(default_factory=dict)

    def size(self) -> int:
        """Bytes this entry holds (what its cache counts)."""
        return sum(len(p.fields) + len(p.body) for p in self.variants.values()) + 200
