"""``wsgi.input`` and ``wsgi.file_wrapper``: the request body in, a file out.

Rules of this module:

* ``wsgi.input`` is the handler's own body reader (exactly the body, chunked decoded, the
  lazy ``100 Continue`` sent on the first read): :class:`Input` only remembers how reading it
  failed (a body over ``max_body``: 413; bad chunked framing: 400; too slow: 408; the client
  gone), because frameworks catch exceptions from ``wsgi.input`` and answer 500 or 400 of
  their own. The gateway then answers with the status the failure carries, and closes.
* A request without a body gets the shared empty reader, unwrapped (nothing can fail).
* :class:`FileWrapper` is what PEP 3333's optional ``wsgi.file_wrapper`` asks for: an
  iterable over blocks of a file, with ``close``. The gateway recognises it and sends a
  regular file with ``sendfile`` (zero-copy on plain TCP) instead of iterating it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import HTTPError

__all__ = ["FileWrapper", "Input"]


class Input:
    """``wsgi.input``: the body reader, with its first failure kept in ``error``."""

    __slots__ = ("_body", "error")

    def __init__(self, body: Any) -> None:
        self._body = body
        #: The first HTTPError / ConnectionError / timeout raised while reading, or None.
        self.error: BaseException | None = None

    def _failed(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def read(self, size: int | None = -1) -> bytes:
        try:
            data: bytes = self._body.read(size)
            return data
        except (HTTPError, OSError) as exc:
            self._failed(exc)
            raise

    def read1(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._body.read1(size)
            return data
        except (HTTPError, OSError) as exc:
            self._failed(exc)
            raise

    def readinto(self, buffer: Any) -> int:
        try:
            n: int = self._body.readinto(buffer)
            return n
        except (HTTPError, OSError) as exc:
            self._failed(exc)
            raise

    def readline(self, size: int | None = -1) -> bytes:
        try:
            line: bytes = self._body.readline(size)
            return line
        except (HTTPError, OSError) as exc:
            self._failed(exc)
            raise

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The server owns the body (it drains what is left): nothing to do."""


class FileWrapper:
    """``wsgi.file_wrapper(filelike, block_size)``: a file as the response body.

    Iterating reads ``block_size`` bytes at a time (what a server without ``sendfile``
    would do); the gateway sends a regular file with ``sendfile`` instead.
    """

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.block_size)
        if data:
            return bytes(data)
        raise StopIteration
