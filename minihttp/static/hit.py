"""Prebuilt answers: when one may be kept, keeping it, a hit, and a repeated request head.

The prebuilt answers' methods of :class:`~minihttp.static.handler.SimpleHTTPRequestHandler`
live here (the handler has them as its own methods; they read and set its request fields as
``parse_request`` and ``send_response`` would):

* :func:`prebuilt_ok`: whether a request's plain 200 may be a prebuilt one (no
  preconditions, Range or Origin; a class whose head methods are minihttp's own:
  :func:`_fixed_fields`);
* :func:`keep_prebuilt`: keep the answer the general path is ending as a prebuilt one;
* :func:`send_prebuilt`: after ``_send_head``'s ``lstat`` of a small regular file, answer from
  the response cache (:mod:`~minihttp.static.respcache`) when the kept answer is still the
  file's, and remember the request head for the next request on the connection;
* :func:`answer_repeat`: called by ``handle_one_request`` before ``parse_request`` when the
  connection remembers a head. A keep-alive client (wrk, a browser reloading) sends the same
  bytes again and again; when the new head is byte for byte the remembered one, its parse,
  dispatch, URL translation and precondition checks would all come out the same, so they
  are skipped: what is left is the file-system checks of a hit (the directories, the file's
  and its directory's ``lstat``), the head (rebuilt once a second, for ``Date``) and the
  send. The access log line is written by ``_end_request`` as for any request.

Rules of this module:

* A stale byte is never sent: every answer, remembered or not, is preceded by the same
  ``lstat`` checks as the general hit (file identity against the cache entry, no symlinked
  directory, no precompressed sibling appeared since the directory's recorded identity).
* A head is remembered only when the answer is a function of its bytes and of the file
  alone: a GET of HTTP/1.1 with no body on a kept-alive connection, served by a class whose
  every method on the way is minihttp's own (:func:`repeatable`: a user's override, the
  auth, CORS, upload and access-log mix-ins are never skipped past), on a server that does
  not take the client's address from forwarding headers. Anything else parses as usual.
* An answer that varies on more than the file and ``Accept-Encoding`` is never kept: the
  SPA fallback (the index page for a missing route, with ``Vary: Accept``) is refused by the
  handler's ``end_headers`` and never looks here (it is served by ``_send_file``), so the
  index file's own kept answer is never replayed for a route, nor a route's head remembered.
* One remembered head per connection (no table keyed by request bytes), at most
  :data:`MAX_HEAD` bytes; the answer's body stays in the response cache, which bounds it.

measured: see the handler's module docstring.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from minihttp._body import EMPTY_BODY
from minihttp._writer import LENGTH
from minihttp.headers import _from_block
from minihttp.server import BaseHTTPRequestHandler
from minihttp.static.cache import identity
from minihttp.static.encoding import choose_cached
from minihttp.static.paths import plain_dirs, root_prefix
from minihttp.static.respcache import ByteCache, Prebuilt, PrebuiltFile

__all__ = ["MAX_HEAD", "answer_repeat", "keep_prebuilt", "prebuilt_ok", "repeatable",
           "send_prebuilt"]

#: Longest request head remembered (a browser's is under 1 KiB, wrk's under 100 bytes).
MAX_HEAD = 2048

_time = time.time

#: Methods a user's class may define and still be repeatable: called by ``_end_request`` as
#: for any request, with the same arguments.
_ALLOWED = frozenset({"log_message"})
#: Handler classes -> whether a repeated head may skip parsing (see :func:`repeatable`).
_repeatable: dict[type, bool] = {}


def repeatable(cls: type) -> bool:
    """Whether a repeated head to ``cls`` may be answered without parsing it.

    Every class in its MRO must be one of the standard handler bases, or declare itself
    safe in its own namespace (``_repeat_safe = True``: its methods only add fixed fields,
    as the command line's ``--header`` class does), or define no callable but
    ``log_message``. So a mix-in that looks at the request (auth, CORS, uploads, another
    access log format) or any override of a user's keeps the general path.
    """
    ok = _repeatable.get(cls)
    if ok is None:
        from minihttp.static.handler import SimpleHTTPRequestHandler

        own = SimpleHTTPRequestHandler.__mro__
        ok = True
        for klass in cls.__mro__:
            space = vars(klass)
            if klass in own or space.get("_repeat_safe") is True:
                continue
            for name, value in space.items():
                if name in _ALLOWED or name in ("__module__", "__doc__", "__qualname__"):
                    continue
                if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                    ok = False
                    break
            if not ok:
                break
        if len(_repeatable) < 1024:
            _repeatable[cls] = ok
    return ok


def _still_no_sibling(precompressed: Any, entry: PrebuiltFile, path: str,
                      parent: os.stat_result | None) -> bool:
    """Whether no precompressed sibling of ``path`` can exist now: the directory keeps the
    identity recorded when none existed (see ``SimpleHTTPRequestHandler._no_siblings``)."""
    proof = entry.no_siblings
    if proof is None or proof[1] != precompressed:
        return False
    if parent is None:
        try:
            parent = os.lstat(path.rpartition(os.sep)[0] or os.sep)
        except (OSError, ValueError):
            return False
    return identity(parent) == proof[0]


#: Request fields (lower case) that keep a request off the prebuilt answers: preconditions,
#: Range (and If-Range), and Origin (a CORS answer may echo it, so it is not a function of
#: the path).
_NOT_PREBUILT = frozenset({"if-match", "if-none-match", "if-modified-since",
                           "if-unmodified-since", "range", "if-range", "origin"})

#: Handler classes -> whether their answers' fields may be prebuilt (see _fixed_fields).
_fixed: dict[type, bool] = {}
_HEAD_METHODS = ("end_headers", "send_header", "send_response", "send_response_only")


def _fixed_fields(cls: type) -> bool:
    """Whether ``cls``'s answers may be replayed from the response cache.

    A subclass written by a user that adds fields in ``end_headers`` (or ``send_header``,
    ``send_response``) may add per-request ones (a request id, the time): replaying its
    kept head would be wrong, so its answers are not prebuilt unless the user's class says
    it knows (sets ``response_cache`` itself). minihttp's own classes add fixed fields only
    (``--header``, CORS without Origin).
    """
    ok = _fixed.get(cls)
    if ok is None:
        ok = True
        for klass in cls.__mro__:
            if klass.__module__.startswith("minihttp.") or klass is object:
                continue
            own = vars(klass)
            if "response_cache" in own:
                break  # the user's class chose, knowing its fields
            if any(name in own for name in _HEAD_METHODS):
                ok = False
                break
        if len(_fixed) < 1024:
            _fixed[cls] = ok
    return ok


def prebuilt_ok(self: Any) -> bool:
    """``SimpleHTTPRequestHandler._prebuilt_ok``: whether this request's plain 200 answer
    is the same fields for every request of its kind: GET/HEAD on a kept-alive connection
    of an HTTP/1.1 handler, without preconditions, Range or Origin. (The framing fields,
    such as HTTP/1.0's ``Connection: keep-alive``, are added by ``end_headers`` on every
    answer.)"""
    command = self.command
    if ((command != "GET" and command != "HEAD") or self.close_connection
            or self.protocol_version != "HTTP/1.1" or not _fixed_fields(type(self))):
        return False
    has_any = getattr(self.headers, "has_any", None)
    return has_any is not None and not has_any(_NOT_PREBUILT)


def keep_prebuilt(self: Any, capture: tuple[list[bytes], int, str | None, bytes]) -> None:
    """``SimpleHTTPRequestHandler._keep_prebuilt``: keep the head now ending (and its
    body) as a prebuilt answer, if it is one."""
    ctx, responses = self._rc_ctx, self.response_cache
    self._rc_ctx = None
    if ctx is None or responses is None or not self._prebuilt_ok():
        return
    path, st, started, codings = ctx
    buf, mark, coding, body = capture
    if buf is not self._headers_buffer:
        return  # another head (an error answer replaced the one _answer began)
    lines = buf[mark:]
    length_line = b"Content-Length: %d\r\n" % len(body)
    fields = [line for line in lines if line != length_line]
    if len(fields) != len(lines) - 1:
        return  # not exactly one Content-Length of the body's length: not ours to keep
    kept = b"".join(fields)
    low = kept.lower()
    if (b"connection:" in low or b"transfer-encoding:" in low
            or b"content-length:" in low):
        return  # framing a subclass chose: the general path keeps deciding it
    no_siblings = None
    if self.precompressed:
        no_siblings = self._no_siblings(path)
        if no_siblings is None:
            return
    key = (type(self), path)
    entry: PrebuiltFile | None = responses.get(key, st)
    if entry is None or entry.codings != codings or entry.no_siblings != no_siblings:
        entry = PrebuiltFile(codings, no_siblings)
    entry.variants[coding] = Prebuilt(kept, body, str(len(body)))
    responses.put(key, st, entry, entry.size(), started)


@dataclass(slots=True)
class _Repeat:
    """A connection's remembered request head and what answered it."""

    head: bytes
    responses: ByteCache
    key: tuple[type, str]
    path: str  # the file
    root: str  # the handler's directory
    coding: str | None
    answer: Prebuilt
    log: bool  # whether send_response asked for an access line
    # What parse_request set from the head.
    raw_requestline: bytes
    requestline: str
    url: str
    block: str
    #: Whether ``path`` is below a directory of the root (walked by ``plain_dirs``).
    below: bool
    #: The whole response head for ``second`` (``Date`` changes once a second).
    second: int = -1
    response: bytes = b""


def send_prebuilt(self: Any, responses: ByteCache, path: str, st: os.stat_result,
                  parent: os.stat_result | None) -> bool:
    """``SimpleHTTPRequestHandler._send_prebuilt``: answer from a prebuilt response if there
    is a valid one (False: not answered).

    Valid: the file still has ``st``'s identity (the cache checks), the variant for this
    request's Accept-Encoding was kept, and no precompressed sibling can have appeared
    (the directory's identity is the one recorded when none existed).
    """
    if not self._prebuilt_ok():
        return False
    key = (type(self), path)
    entry: PrebuiltFile | None = responses.get(key, st)
    if entry is None:
        return False
    codings = entry.codings
    coding = choose_cached(self.headers.get("Accept-Encoding"), codings) if codings else None
    answer = entry.variants.get(coding)
    if answer is None:
        return False
    precompressed = self.precompressed
    if precompressed and not _still_no_sibling(precompressed, entry, path, parent):
        return False
    self.send_response(200)  # status, Server and a current Date; the access log
    self.send_header("Content-Length", answer.length)
    self._headers_buffer.append(answer.fields)
    BaseHTTPRequestHandler.end_headers(self)  # the class's own fields are in the answer
    if self.command == "GET":
        self.wfile.write(answer.body)
        _remember(self, responses, key, path, coding, answer)
    return True


def _remember(self: Any, responses: ByteCache, key: tuple[type, str], path: str,
              coding: str | None, answer: Prebuilt) -> None:
    """Remember this GET's head for :func:`answer_repeat`, if its answer is a function of
    its bytes and of the file (see the module's rules)."""
    head = self._head
    writer = self._writer
    if (head is None or len(head) > MAX_HEAD or head.__class__ is not bytes
            or self.request_version != "HTTP/1.1" or self.close_connection
            or self._body is not EMPTY_BODY or writer is None or self.wfile is not writer
            or self._direct_writer is not writer or self.follow_symlinks
            or getattr(self.server, "forwarded_allow_ips", None)
            or not repeatable(type(self))):
        self._repeat = None
        return
    headers = self.headers
    block = getattr(headers, "_block", None)
    raw = self.raw_requestline
    if block is None or not head.startswith(raw):
        self._repeat = None
        return
    root = self.directory
    prefix = root_prefix(root)
    if not path.startswith(prefix):
        self._repeat = None
        return
    self._repeat = _Repeat(head, responses, key, path, root, coding, answer,
                           self._log_code is not None, raw, self.requestline, self.path, block,
                           os.sep in path[len(prefix):])


def answer_repeat(self: Any, head: bytes) -> bool:
    """``SimpleHTTPRequestHandler._answer_repeat``: answer ``head`` if it is the remembered
    one and its answer still stands (False: parse it as usual)."""
    memo: _Repeat = self._repeat
    if head != memo.head:
        return False
    writer = self._writer
    if writer is None or self.wfile is not writer:
        return False
    # The checks of _send_head and send_prebuilt, on the file system only: everything
    # that came from the request's bytes came out the same last time.
    path = memo.path
    parent = None
    if memo.below:  # a file in the root has no directory of its own to walk
        plain, parent = plain_dirs(path, memo.root)
        if not plain:
            return False
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    entry: PrebuiltFile | None = memo.responses.get(memo.key, st)
    answer = memo.answer
    if entry is None or entry.variants.get(memo.coding) is not answer:
        return False
    precompressed = self.precompressed
    if precompressed and not _still_no_sibling(precompressed, entry, path, parent):
        return False
    # The request, as parse_request would have set it from these bytes.
    self.raw_requestline = memo.raw_requestline
    self.requestline = memo.requestline
    self.command = "GET"
    self.path = memo.url
    self.request_version = "HTTP/1.1"
    self.headers = _from_block(memo.block)
    self.close_connection = False
    self._body = self.rfile = EMPTY_BODY
    now = _time()
    second = int(now)
    if second != memo.second or not memo.response:
        # Once a second: the head exactly as send_prebuilt builds it (the general methods).
        self.send_response(200)
        self.send_header("Content-Length", answer.length)
        buf = self._headers_buffer
        self._headers_buffer = []
        buf.append(answer.fields)
        buf.append(b"\r\n")
        memo.response = b"".join(buf)
        memo.second = second
    elif memo.log:
        self._log_code = (200, now)  # what send_response would have left for _end_request
    self._status = 200
    body = answer.body
    writer.start(memo.response, LENGTH, len(body))
    writer.write(body)
    return True
