"""Upload file names: what a client may name a file it stores, and sizes like ``10M``.

Pure functions, no I/O; :mod:`minihttp.static.upload` applies them to every name a client
sends (the last segment of a ``PUT`` target, each ``filename`` of a form).

Rules of this module:

* A name is refused (a 400 :class:`BadName` whose message says why), never silently
  changed: the client learns its file was not stored under the name it chose.
* Refused: empty names, ``.`` and ``..``, separators (``/`` and ``\\``, also on POSIX:
  browsers on Windows may send paths), control characters (C0, DEL, C1), bidirectional
  overrides (they make ``evil\u202etxt.exe`` look like ``evilexe.txt``), lone surrogates
  (bytes that are not UTF-8), names over 255 bytes in UTF-8 (``NAME_MAX``), a leading dot
  unless dot files are allowed, and names Windows reserves (``CON``, ``NUL.txt``,
  ``COM1`` ... and names ending in a dot or space), so a served tree stays portable.
"""

from __future__ import annotations

import re
import unicodedata

from minihttp.errors import BadRequest

__all__ = ["NAME_MAX", "BadName", "check_name", "parse_size"]

#: Longest file name, in bytes of UTF-8 (POSIX NAME_MAX on Linux, macOS and the BSDs).
NAME_MAX = 255

_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)(\..*)?",
                       re.IGNORECASE)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class BadName(BadRequest):
    """400: a file name an upload may not use (the message says why)."""

    close = False


def check_name(name: str, *, allow_dotfiles: bool = False) -> str:
    """``name`` unchanged if a client may store a file under it; else :class:`BadName`."""
    if name in ("", ".", ".."):
        raise BadName("file name missing or not a name")
    if "/" in name or "\\" in name:
        raise BadName("file name must not contain / or \\")
    for c in name:
        if unicodedata.category(c) == "Cc":
            raise BadName("file name must not contain control characters")
        if c in _BIDI:
            raise BadName("file name must not contain bidirectional controls")
        if "\ud800" <= c <= "\udfff":
            raise BadName("file name is not valid UTF-8")
    if len(name.encode("utf-8")) > NAME_MAX:
        raise BadName(f"file name longer than {NAME_MAX} bytes")
    if name.startswith(".") and not allow_dotfiles:
        raise BadName("file names starting with a dot are not accepted")
    if _RESERVED.fullmatch(name) or name.endswith((".", " ")):
        raise BadName("reserved file name (a Windows device name, or ends in a dot or space)")
    return name


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional binary suffix (``512K``, ``10M``,
    ``1.5G``, ``2T``; ``MB``/``MiB`` mean the same as ``M``). ValueError otherwise."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (examples: 100, 512K, 10M, 1G)")
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return size
