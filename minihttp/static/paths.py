"""Map request targets to file system paths without ever leaving the served directory.

No network I/O; the only file system calls are ``lstat`` / ``os.path.realpath`` in the
containment checks and the ``open`` of :func:`open_beneath`.

Rules of this module (each one closes a known traversal trick):

* The path is percent-decoded exactly once (RFC 3986 section 2.4), after the query and
  fragment are cut off: ``%252e%252e`` stays the literal name ``%2e%2e``.
* Backslashes count as separators, so ``..\\`` and ``..%5c`` are seen as ``..``; a ``..``
  segment that survives the client's dot-segment removal (RFC 3986 section 5.2.4) is an
  attack, answered 404 rather than silently clamped.
* A decoded NUL byte is a 400 (it cannot name a file; ``open`` would raise ValueError).
* Segments that are absolute or carry a drive letter (``C:``, on Windows) are refused.
* :func:`contained` resolves symlinks (``os.path.realpath``) and checks the result stays under
  the root with ``os.path.commonpath``, for the final file actually opened;
  :func:`contained_fast` gets the same answer with one ``lstat`` per segment when no segment
  is a symlink (the common case, checked on every request).
* :func:`open_beneath` opens a file and checks containment in the same breath: the last
  segment is opened with ``O_NOFOLLOW`` (so a symlink there can never be followed unchecked,
  and costs no ``lstat``), the directories above it get one ``lstat`` each; any symlink met
  sends the request through :func:`contained`.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import urllib.parse

from minihttp.errors import BadRequest, Forbidden, NotFound

__all__ = [
    "Forbidden",
    "NotFound",
    "contained",
    "contained_fast",
    "dirs_plain",
    "has_trailing_slash",
    "open_beneath",
    "plain_dirs",
    "redirect_location",
    "root_prefix",
    "split_target",
    "translate",
    "url_segments",
]


_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def split_target(target: str) -> tuple[str, str]:
    """``(raw path, query)`` of a request target; the fragment is dropped.

    Handles the absolute form (RFC 9112 section 3.2.2) by keeping only its path.
    """
    if not target.startswith("/"):
        if _ABSOLUTE_FORM.match(target):
            parts = urllib.parse.urlsplit(target)
            return parts.path or "/", parts.query
        raise NotFound()  # "*" (asterisk form) or garbage: no file has that name
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def has_trailing_slash(raw_path: str) -> bool:
    """Whether the URL path names a directory (ends with a slash before decoding)."""
    return raw_path.endswith("/")


def url_segments(raw_path: str) -> list[str]:
    """Decode a URL path once and split it into safe file name segments.

    Raises :class:`~minihttp.errors.BadRequest` for a NUL byte and :class:`NotFound` for any
    segment that could climb out of, or jump away from, the served directory.
    """
    # Decode once; undecodable bytes become surrogates, as os.fsdecode does on POSIX.
    decoded = urllib.parse.unquote(raw_path, errors="surrogateescape")
    if "\x00" in decoded:
        raise BadRequest("NUL byte in path", close=False)
    segments = []
    for seg in decoded.replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == ".." or os.path.isabs(seg) or os.path.splitdrive(seg)[0]:
            raise NotFound()
        if os.name == "nt" and (":" in seg or seg.rstrip(". ") != seg):  # pragma: no cover
            raise NotFound()  # alternate data streams, "file." aliases
        segments.append(seg)
    return segments


# A request path that needs none of url_segments' work on POSIX: no percent-escape, backslash,
# query, fragment or NUL to decode or cut, and no empty, "." or ".." segment ("//", "/.") to
# drop or refuse. Anything else (".well-known" included) takes the general path.
_NEEDS_WORK = re.compile(r"[%\\?#\x00]|//|/\.")
_POSIX = os.sep == "/" and os.altsep is None

#: ``root -> os.path.join(root, "")``: roots come from configuration, not from requests.
_prefixes: dict[str, str] = {}


def root_prefix(root: str) -> str:
    """``os.path.join(root, "")``, memoized: every path served from ``root`` starts with it."""
    prefix = _prefixes.get(root)
    if prefix is None:
        if len(_prefixes) >= 256:
            _prefixes.clear()
        prefix = _prefixes[root] = os.path.join(root, "")
    return prefix


def translate(root: str, target: str) -> str:
    """The file system path under ``root`` for a request target (a trailing slash is kept).

    Raises what :func:`split_target` and :func:`url_segments` raise. A plain path (the usual
    case) is mapped without decoding or splitting: for it the general rule gives exactly
    ``root`` + ``/`` + the path's own characters, which :func:`_translate_general` would
    build piece by piece.
    """
    if _POSIX and target[:1] == "/" and _NEEDS_WORK.search(target) is None:
        return root_prefix(root) + target[1:]
    return _translate_general(root, target)


def _translate_general(root: str, target: str) -> str:
    raw_path, _query = split_target(target)
    result = os.path.join(root, *url_segments(raw_path))
    if has_trailing_slash(raw_path):
        result = os.path.join(result, "")
    return result


def contained(path: str, root: str) -> bool:
    """True when ``path``, with every symlink resolved, is ``root`` or inside it."""
    real_root = os.path.realpath(root)
    try:
        real = os.path.realpath(path)
        return os.path.commonpath([real, real_root]) == real_root
    except (ValueError, OSError):
        return False  # different drives, or a path realpath cannot handle


def contained_fast(path: str, root: str) -> bool | None:
    """:func:`contained` for a path lexically under ``root``, with one ``lstat`` per segment.

    If no segment below ``root`` is a symlink, the path cannot leave ``root`` (its ``..``
    segments were refused earlier), so the answer is True without resolving ``root``'s own
    ancestors on every request. Returns None when ``path`` is not lexically under ``root``
    (the caller decides), and falls back to :func:`contained` as soon as a link is met.
    """
    prefix = os.path.join(root, "")
    if not path.startswith(prefix):
        return None if path.rstrip(os.sep) != root.rstrip(os.sep) else True
    current = root
    for segment in path[len(prefix):].split(os.sep):
        if not segment:
            continue
        if segment in (".", ".."):
            return contained(path, root)
        current = os.path.join(current, segment)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return contained(path, root)
        except (OSError, ValueError):
            return True  # missing: nothing to serve, nothing resolved outside either
    return True


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# What open(O_NOFOLLOW) says when the last segment is a symlink: ELOOP on Linux and macOS,
# EMLINK on FreeBSD.
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})


def dirs_plain(path: str, root: str) -> bool | None:
    """Whether no directory between ``root`` and the last segment of ``path`` is a symlink.

    None when ``path`` is not lexically under ``root``; False when a directory is a symlink
    (or a ``.``/``..`` segment is present): only :func:`contained` can answer then. One
    ``lstat`` per directory; a missing directory counts as plain (nothing can be opened).
    The last segment itself is not looked at.
    """
    return plain_dirs(path, root)[0]


def plain_dirs(path: str, root: str) -> tuple[bool | None, os.stat_result | None]:
    """:func:`dirs_plain`, and the ``lstat`` result of ``path``'s parent directory when it
    was taken on the way (None for a file in ``root`` itself, or when the walk stopped)."""
    prefix = root_prefix(root)
    if not path.startswith(prefix):
        return None, None
    rest = path[len(prefix):]
    if os.sep not in rest:  # a file in the root itself: no directory to look at
        return rest != "." and rest != "..", None
    segments = rest.split(os.sep)
    if "." in segments or ".." in segments:
        return False, None
    current = root
    st = None
    for segment in segments[:-1]:
        if not segment:
            continue
        current = os.path.join(current, segment)
        try:
            st = os.lstat(current)
        except (OSError, ValueError):
            return True, None
        if stat.S_ISLNK(st.st_mode):
            return False, None
    return True, st


def open_beneath(path: str, root: str, flags: int) -> int | None:
    """``os.open(path, flags)`` for a path lexically under ``root``, refusing symlink escapes.

    Returns None when ``path`` is not lexically under ``root`` (the caller decides), raises
    :class:`NotFound` when a symlink leads out of ``root``, and lets ``OSError`` from the
    ``open`` through (missing file, permission). Same answer as :func:`contained`, but in the
    common case (no symlink) it costs the ``open`` plus one ``lstat`` per directory between
    ``root`` and the file, and the file itself can no longer be swapped for a link between
    the check and the ``open``.
    """
    plain = dirs_plain(path, root)
    if plain is None:
        return None
    if plain and _NOFOLLOW:
        try:
            return os.open(path, flags | _NOFOLLOW)
        except OSError as exc:
            if exc.errno not in _LINK_ERRNOS:
                raise
    return _open_checked(path, root, flags)  # a symlink on the way, or no O_NOFOLLOW


def _open_checked(path: str, root: str, flags: int) -> int:
    if not contained(path, root):
        raise NotFound()
    return os.open(path, flags)


def redirect_location(raw_path: str, query: str) -> str:
    """Location for a directory URL missing its trailing slash (301).

    Leading slashes and backslashes are collapsed to one slash, so the result is always a
    path-absolute reference and never scheme-relative (``//evil.example/`` would send the
    browser to another host; browsers treat ``\\`` like ``/`` there).
    """
    location = "/" + raw_path.lstrip("/\\") + "/"
    if query:
        location += "?" + query
    return location
