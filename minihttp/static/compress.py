"""Compression on the fly (``--compress``): which responses, which coding, and the encoders.

No I/O here: the handler (:mod:`minihttp.static.handler`) reads files and sends bytes; this
module says whether a media type is worth compressing, compresses a whole body, or wraps an
open file in a stream that yields its compressed bytes piece by piece.

Rules of this module:

* gzip always (the standard library's ``zlib``); ``br`` and ``zstd`` only when the
  ``brotli`` / ``zstandard`` package happens to be importable. Neither is ever required.
* Compression is deterministic for a given coding and level (gzip's header carries no
  time stamp or name), so the compressed bytes are a pure function of the file's bytes and
  a strong ETag per coding stays honest (RFC 9110 section 8.8.3).
* Only types that compress (text, scripts, JSON, XML, SVG, WebAssembly, manifests, YAML,
  uncompressed fonts); images, archives, media and ``woff2`` are compressed already.
* :class:`CompressedStream` holds one chunk of the file at a time, never the whole file.
"""

from __future__ import annotations

import argparse
import io
import zlib
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

__all__ = [
    "CHUNK_SIZE",
    "CODINGS",
    "CompressedStream",
    "add_arguments",
    "available",
    "compress",
    "compressible",
    "handler_attrs",
]

#: Bytes read from the file per piece of a :class:`CompressedStream`.
CHUNK_SIZE = 64 * 1024

#: Exact media types (without parameters) worth compressing, besides ``text/*``.
_TYPES = frozenset({
    "application/javascript", "application/x-javascript", "application/ecmascript",
    "application/json", "application/ld+json", "application/manifest+json",
    "application/xml", "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
    "application/wasm", "application/yaml", "application/x-yaml", "application/toml",
    "application/x-sh", "application/x-tex", "application/rtf", "application/postscript",
    "application/graphql", "application/sql", "application/vnd.ms-fontobject",
    "image/svg+xml", "image/bmp", "image/x-icon", "image/vnd.microsoft.icon",
    "font/ttf", "font/otf", "font/collection",
})

#: media type -> worth compressing (bounded: the handler's types come from its tables).
_answers: dict[str, bool] = {}


def compressible(ctype: str) -> bool:
    """Whether a response of media type ``ctype`` (parameters allowed) is worth compressing."""
    answer = _answers.get(ctype)
    if answer is None:
        base = ctype.partition(";")[0].strip().lower()
        answer = (base.startswith("text/") or base in _TYPES
                  or base.endswith(("+json", "+xml")))
        if len(_answers) < 1024:
            _answers[ctype] = answer
    return answer


# -- encoders: coding -> (whole-body function, streaming compressor factory) --------------

class _Streaming:
    """The interface of a streaming compressor: ``compress(piece)`` then ``flush()``."""

    def __init__(self, feed: Callable[[bytes], bytes], end: Callable[[], bytes]) -> None:
        self.compress = feed
        self.flush = end


def _gzip_whole(data: bytes, level: int) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip member, mtime 0
    return c.compress(data) + c.flush()


def _gzip_stream(level: int) -> _Streaming:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return _Streaming(c.compress, c.flush)


_Encoder = tuple[Callable[[bytes, int], bytes], Callable[[int], _Streaming]]
_ENCODERS: dict[str, _Encoder] = {"gzip": (_gzip_whole, _gzip_stream)}

try:  # pragma: no cover - only where the optional package is installed
    import brotli  # type: ignore[import-not-found]

    def _br_quality(level: int) -> int:
        return max(0, min(11, level - 1))  # gzip's 6 is roughly brotli's 5 in speed

    def _br_whole(data: bytes, level: int) -> bytes:
        return brotli.compress(data, quality=_br_quality(level))  # type: ignore[no-any-return]

    def _br_stream(level: int) -> _Streaming:
        c = brotli.Compressor(quality=_br_quality(level))
        return _Streaming(c.process, c.finish)

    _ENCODERS["br"] = (_br_whole, _br_stream)
except ImportError:
    pass

try:  # pragma: no cover - only where the optional package is installed
    import zstandard  # type: ignore[import-not-found]

    def _zstd_whole(data: bytes, level: int) -> bytes:
        return zstandard.ZstdCompressor(level=level).compress(data)  # type: ignore[no-any-return]

    def _zstd_stream(level: int) -> _Streaming:
        c = zstandard.ZstdCompressor(level=level).compressobj()
        return _Streaming(c.compress, c.flush)

    _ENCODERS["zstd"] = (_zstd_whole, _zstd_stream)
except ImportError:
    pass

#: The codings this process can produce, preferred first (ties in Accept-Encoding go to
#: the earlier one, see :func:`minihttp.static.encoding.choose_encoding`).
CODINGS: tuple[str, ...] = tuple(c for c in ("br", "zstd", "gzip") if c in _ENCODERS)


def compress(data: bytes, coding: str, level: int = 6) -> bytes:
    """``data`` compressed whole with ``coding`` (one of :data:`CODINGS`)."""
    return _ENCODERS[coding][0](data, level)


class CompressedStream(io.RawIOBase):
    """The compressed bytes of an open file, read a piece at a time (the handler's
    ``copyfile`` copies it with ``read``); closing it closes the file.

    ``read`` returns at most one compressed piece, never an empty one before the end.
    """

    def __init__(self, file: BinaryIO, coding: str, level: int = 6,
                 chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self.file = file
        self._compressor: _Streaming | None = _ENCODERS[coding][1](level)
        self._chunk = chunk_size
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while not self._pending and self._compressor is not None:
            piece = self.file.read(self._chunk)
            if piece:
                self._pending = self._compressor.compress(piece)
            else:
                self._pending = self._compressor.flush()
                self._compressor = None
        if size is None or size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            super().close()


# -- the command line --------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The file server's compression flag."""
    parser.add_argument(
        "--compress", action="store_true",
        help="compress text-like responses above 1 KiB on the fly (gzip; br/zstd when "
        "the brotli/zstandard package is installed), chosen by Accept-Encoding; "
        "precompressed .br/.gz siblings still win")


def handler_attrs(args: argparse.Namespace) -> dict[str, Any]:
    """Handler class attributes from parsed arguments (``compress``)."""
    return {"compress": bool(getattr(args, "compress", False))}


def available(codings: Sequence[str] | None) -> tuple[str, ...]:
    """The codings of ``codings`` (None: all of :data:`CODINGS`) this process can produce."""
    if codings is None:
        return CODINGS
    return tuple(c for c in codings if c in _ENCODERS)
