"""A connection's environ: what every request of it shares, and what its next request reuses.

A keep-alive client sends the same header field lines request after request (a browser
walking a site, an API client polling, a load generator); often the very same head. Building
a request's ``HTTP_*`` keys means splitting its field block, mapping each name and joining
repeated fields: most of the environ's cost (measured: ~11k of the ~20k instructions of a
WSGI hello's environ, three fields; benchmarks/icount_wsgi.py). So a connection keeps, next to
the keys all its requests share (:func:`~minihttp.wsgi.environ.base_environ`), its last head
and what was made of it: a request whose field lines are byte for byte the last one's
starts from a copy of their part (:func:`~minihttp.wsgi.environ.fields_environ`), and one
whose whole head is the last one's from a copy of its whole environ.

Rules of this module:

* What is reused is a function of the head's bytes and of the connection alone (peer, TLS,
  server; the trusted proxy's ``wsgi.url_scheme`` is judged from the connection's peer,
  which does not change): ``wsgi.input``, and ``REMOTE_*`` when a trusted proxy names the
  client, are set for every request.
* Only when the handler's request fields provably come from those bytes alone: minihttp's
  own parsing and no override on the way (:func:`reusable`), a head (``bytes``, never a
  buffer that could change) at most :data:`MAX_HEAD` bytes long; field lines only from a
  head that starts with its request line (no leading empty lines).
* What a head made is kept only once it came twice in a row: a connection whose every
  request is new pays a comparison and a slice, not a kept dict (measured, ``--vary
  fields``: keeping every request's dict cost ~3k instructions per request, mostly the
  garbage collector's, for nothing).
* One remembered head per connection (no table keyed by request bytes), and every request
  gets a dict of its own: an application may change its environ.
"""

from __future__ import annotations

from typing import Any

from .environ import fields_environ, remote, request_environ

__all__ = ["MAX_HEAD", "ConnectionEnviron", "reusable"]

#: Longest request head remembered (a browser's is under 1-2 KiB with its cookies, wrk's
#: under 100 bytes): bounds what an idle connection holds.
MAX_HEAD = 4096

#: Names a user's class may define and still have its heads reused: the application
#: itself, its mount point, and the logging methods (called after the response).
_ALLOWED = frozenset({"application", "root_path", "log_message", "log_error", "log_request",
                      "__module__", "__doc__", "__qualname__"})
_reusable: dict[type, bool] = {}


def reusable(cls: type) -> bool:
    """Whether requests to ``cls`` may reuse what an earlier head of the connection made.

    Every class in its MRO must be minihttp's own (they parse, and never change the request
    fields after) or define no callable but the application and the logging methods: a
    user's class that overrides ``parse_request``, ``run_application`` or anything else
    might change ``self.headers`` or ``self.path``, and keeps the general path.
    """
    ok = _reusable.get(cls)
    if ok is None:
        ok = True
        for klass in cls.__mro__:
            if klass is object or klass.__module__.startswith("minihttp."):
                continue
            for name, value in vars(klass).items():
                if name in _ALLOWED:
                    continue
                if callable(value) or isinstance(value, (staticmethod, classmethod,
                                                         property)):
                    ok = False
                    break
            if not ok:
                break
        if len(_reusable) < 1024:
            _reusable[cls] = ok
    return ok


class ConnectionEnviron:
    """The environ of one connection's requests (see the module's rules)."""

    __slots__ = ("base", "fields", "head", "part", "peer", "reuse", "root", "whole")

    def __init__(self, base: dict[str, Any], peer: Any, root: str, reuse: bool) -> None:
        #: The keys every request of the connection shares (``base_environ``).
        self.base = base
        #: The connection's peer (``REMOTE_*`` in ``base``), and the mount point.
        self.peer = peer
        self.root = root
        #: :func:`reusable` of the handler's class.
        self.reuse = reuse
        #: The last head, and its environ (no ``wsgi.input``) once it came twice in a row.
        self.head: bytes | None = None
        self.whole: dict[str, Any] | None = None
        #: The last head's field lines (after the request line, with the final CRLF), and
        #: ``fields_environ`` of them once they came twice in a row.
        self.fields: bytes | None = None
        self.part: dict[str, Any] | None = None

    def environ(self, handler: Any, wsgi_input: Any) -> dict[str, Any] | None:
        """The environ of ``handler``'s parsed request; None if its path is outside the
        mount point (the application does not serve it)."""
        head = handler._head
        # A dict made for this request alone is filled in place, a remembered one copied.
        if not self.reuse or head.__class__ is not bytes or len(head) > MAX_HEAD:
            environ = request_environ(fields_environ(self.base, handler), handler, self.root,
                                      wsgi_input, copy=False)
        elif head == self.head:
            whole = self.whole
            if whole is None:
                part = self._part(handler, head)
                whole = self.whole = request_environ(part, handler, self.root, None,
                                                     copy=part is self.part)
                if whole is None:
                    return None
            environ = whole.copy()
            environ["wsgi.input"] = wsgi_input
        else:
            self.head = head
            self.whole = None
            part = self._part(handler, head)
            environ = request_environ(part, handler, self.root, wsgi_input,
                                      copy=part is self.part)
        if environ is not None:
            client = handler.client_address
            if client is not self.peer:  # a trusted proxy named the client
                environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = remote(client)
        return environ

    def _part(self, handler: Any, head: bytes) -> dict[str, Any]:
        """``fields_environ`` of ``head``'s field lines: remembered, or made."""
        raw = handler.raw_requestline
        fields = head[len(raw):]
        if fields == self.fields and head.startswith(raw):
            part = self.part
            if part is None:
                part = self.part = fields_environ(self.base, handler)
            return part
        self.fields = fields if head.startswith(raw) else None
        self.part = None
        return fields_environ(self.base, handler)
