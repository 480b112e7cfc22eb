"""A bounded in-memory cache of small files, revalidated by ``lstat`` on every hit.

Serving a 4 KiB file costs ``open``, ``fstat``, ``read`` and ``close``; serving it from this
cache costs one ``lstat`` (which the caller needs anyway to refuse a symlink in the last
segment). No I/O here: the caller hands in stat results and contents.

Rules of this module (a stale byte must never be served):

* An entry is valid only while the file's identity is unchanged: device, inode, size,
  modification time and *change* time, all in nanoseconds. Every write, truncate, rename
  over the name, ``chmod`` or ``utime`` sets the change time to "now", and the change time
  cannot be set back by anyone but the kernel.
* "Racily clean" files are never stored (the problem git's index has): a file whose change
  time is within :data:`RACY_SECONDS` of the moment it was read could be written again within
  the same timestamp tick without its stat changing, so it is served from disk until it has
  been quiet for that long.
* Bounded: files up to ``max_file`` bytes, ``max_total`` bytes in all; when full, the cache
  is emptied (simple, and a hot set refills it in one pass).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["RACY_SECONDS", "Identity", "SmallFileCache", "identity"]

#: A file must have been unchanged this long (by its ctime) before it may be cached.
RACY_SECONDS = 2.0

Identity = tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    """What must stay equal for cached contents to still be the file's contents."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class SmallFileCache:
    """``path -> (identity, contents, meta)``; thread-safe (one lock, for dict work only).

    ``meta`` is whatever the caller derived from the same stat result (validators, say): it
    is valid exactly as long as the contents are.
    """

    def __init__(self, max_file: int = 64 * 1024, max_total: int = 16 * 1024 * 1024) -> None:
        self.max_file = max_file
        self.max_total = max_total
        self._entries: dict[str, tuple[Identity, bytes, Any]] = {}
        self._total = 0
        self._lock = threading.Lock()

    def get(self, path: str, st: os.stat_result) -> bytes | None:
        """The contents stored for ``path`` if the file still has ``st``'s identity."""
        entry = self.lookup(path, st)
        return None if entry is None else entry[0]

    def lookup(self, path: str, st: os.stat_result) -> tuple[bytes, Any] | None:
        """``(contents, meta)`` stored for ``path`` if the file still has ``st``'s identity."""
        entry = self._entries.get(path)
        if entry is None or entry[0] != identity(st):
            return None
        return entry[1], entry[2]

    def put(self, path: str, st: os.stat_result, data: bytes, now: float | None = None,
            meta: Any = None) -> bool:
        """Store ``data`` read from ``path`` whose ``fstat`` was ``st``; False if refused."""
        size = len(data)
        if size != st.st_size or size > self.max_file:
            return False
        if now is None:
            now = time.time()
        if st.st_ctime_ns > (now - RACY_SECONDS) * 1e9:
            return False  # racily clean: a write in the same tick would go unseen
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._total -= len(old[1])
            if self._total + size > self.max_total:
                self._entries.clear()
                self._total = 0
            self._entries[path] = (identity(st), data, meta)
            self._total += size
        return True

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._total = 0
