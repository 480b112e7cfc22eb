"""A repeated request head forwarded without parsing it again.

A keep-alive client of a forward proxy (a browser polling, a load generator, an API client
in a loop) often sends the same head byte for byte, request after request. The fast path
(:mod:`minihttp.proxy.fast`) turns such a head into the same upstream request bytes every
time: its parse, its admission, the field rules and the target's rules are a function of the
head's bytes, the connection's context (:class:`~minihttp.proxy.upstream.Context`: client
address, config) and nothing else. So the forwarded bytes of the last such request are kept
per connection, and a head equal to the kept one goes upstream at once: what is left is the
exchange (pooled connection, send, the deferred wait, the response relay) and the access
line, as for any request.

Rules of this module:

* Remembered only when the answer is a function of the head's bytes and the connection's
  context alone: a bodyless GET or HEAD of HTTP/1.1 on a kept-alive connection that took
  the fast path with no field the rules act on (no Connection, Via, X-Forwarded-For or
  framing field), to a target that is not this proxy's port (that check may resolve a
  name), without proxy authentication (a success is only cached for a while), a parent
  proxy, the server's own forwarded-address rules or a hook, by a handler class whose every
  method on the way is minihttp's own (:func:`repeatable`).
* One head per connection (never a table keyed by request bytes), at most
  :data:`MAX_HEAD` bytes, kept when the same head came twice in a row; a different head
  parses as usual (and, twice in a row, replaces it).
* A hit sets the request fields exactly as ``parse_request`` did for those bytes, and what
  goes wrong afterwards is handled as in ``do_GET`` (a refusal answered, an error as the
  method's), so the client cannot tell a hit from a parse.

measured: benchmarks/icount_proxy.py (instructions per proxied keep-alive hello, see the
commit that added this module).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from minihttp._body import EMPTY_BODY
from minihttp.proxy.route import Refuse
from minihttp.proxy.upstream import Context, _Job

__all__ = ["MAX_HEAD", "Repeat", "answer", "eligible", "remember", "repeatable"]

#: Longest request head remembered (a browser's is under 2 KiB, wrk's under 100 bytes).
MAX_HEAD = 2048

#: Methods a subclass may define and still be repeatable: they run for a hit as for any
#: request (the access line is written by ``_end_request``).
_ALLOWED = frozenset({"log_message", "log_request", "log_error", "address_string"})
#: Handler classes -> whether a repeated head may skip parsing (see :func:`repeatable`).
_repeatable: dict[type, bool] = {}


def repeatable(cls: type) -> bool:
    """Whether a repeated head to ``cls`` may be forwarded without parsing it: every class
    in its MRO below minihttp's :class:`~minihttp.proxy.ProxyHandler` defines no callable
    but the logging ones (:data:`_ALLOWED`) and no ``access_format`` (another access-line
    format reads the request's fields itself: it keeps the general path)."""
    ok = _repeatable.get(cls)
    if ok is None:
        from minihttp.proxy.handler import ProxyHandler

        ok = issubclass(cls, ProxyHandler)
        if ok:
            for klass in cls.__mro__:
                if klass is ProxyHandler:
                    break
                for name, value in vars(klass).items():
                    if name == "access_format" or (
                            callable(value) and name not in _ALLOWED
                            and not name.startswith("__")):
                        ok = False
        _repeatable[cls] = ok
    return ok


@dataclasses.dataclass(slots=True)
class Repeat:
    """The kept request of one connection: its head, what ``parse_request`` set from it,
    and what the fast path made of it."""

    head: bytes
    raw_requestline: bytes
    requestline: str
    command: str
    path: str
    headers: Any
    #: The exchange to run again (the upstream request's bytes, where they go; never
    #: changed once made) and the pool's key for that destination.
    job: _Job
    key: tuple[str, int]


def eligible(ctx: Context, handler: Any) -> bool:
    """Whether requests on this connection may be remembered at all (decided once per
    context: :attr:`Context.repeat`)."""
    server = handler.server
    return (ctx.fast and not ctx.response_hook and ctx.auth is None and ctx.chain is None
            and ctx.allowed and not getattr(server, "forwarded_allow_ips", None)
            and repeatable(type(handler)))


def remember(handler: Any, ctx: Context, wire: bytes, host: str, port: int) -> None:
    """After the fast path built ``wire`` for a request with no field the rules act on:
    keep it for the next head on this connection, if this request may be repeated."""
    head = handler._head
    if head != handler._last_head:
        # Kept from the second time in a row only: a client whose heads never repeat (a new
        # target each time) would pay for a memo it never uses (measured: ~10k of ~263k
        # instructions a request, icount_proxy.py --vary).
        handler._last_head = head
        return
    if (ctx.repeat and head is not None and len(head) <= MAX_HEAD
            and port != ctx.bind_port and handler.rfile is EMPTY_BODY
            and not handler.close_connection and handler.request_version == "HTTP/1.1"
            and handler.command in ("GET", "HEAD")):
        handler._repeat = Repeat(head, handler.raw_requestline, handler.requestline,
                                 handler.command, handler.path, handler.headers,
                                 _Job(wire, False, host, port, None, ctx), (host.lower(), port))
    elif handler._repeat is not None:
        handler._repeat = None


def answer(handler: Any, head: bytes) -> bool:
    """``ProxyHandler._answer_repeat``: forward ``head`` if it is the kept one (False:
    parse it as usual)."""
    memo: Repeat = handler._repeat
    if head != memo.head:
        return False
    ctx = memo.job.ctx
    if (handler._ctx is not ctx or ctx.server is not handler.server
            or ctx.client is not handler.client_address):
        handler._repeat = None
        return False
    # The request, as parse_request set it from these bytes.
    handler.raw_requestline = memo.raw_requestline
    handler.requestline = memo.requestline
    handler.command = memo.command
    handler.path = memo.path
    handler.request_version = "HTTP/1.1"
    handler.headers = memo.headers
    handler.close_connection = False
    handler._body = handler.rfile = EMPTY_BODY
    try:  # as handle_one_request runs do_GET
        try:  # Exchange._exchange without a parent (never remembered, see eligible)
            handler._run(memo.job, memo.key)
        except Refuse as refusal:
            handler._send_plain(refusal.status, refusal.message, refusal.headers)
    except Exception as err:
        handler._deferred = None
        handler._method_failed(err)
    return True
