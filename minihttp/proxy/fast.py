"""The hook-less fast path: a request forwarded in one pass over its fields.

:class:`FastPath` gives :meth:`FastPath._forward_fast`, which does what
:meth:`minihttp.proxy.general.GeneralPath._forward` (with
:meth:`minihttp.proxy.route.Routing._admit_fields`) does for a handler without a request
hook, and gives the same answer for every request (tests/proxy/test_fast.py checks that).

Rules of this module:

* Taken only when the handler's class does not override ``request_hook``, this h11 adopts
  its own field list as given (:data:`minihttp.proxy.upstream.H11_HEADERS`), and the method
  is not OPTIONS or TRACE (Max-Forwards is the general path's).
* The same rules in the same order as the general path: Connection (400 when it names a
  protected field, else the fields it names are dropped), Via loop (508), the target (400),
  the target being this proxy (508), then Host, Via, X-Forwarded-For and the framing
  field (RFC 9112 section 6.3: chunked when Transfer-Encoding is there, else the
  Content-Length) are rebuilt.
* Field names are classified by a bounded table (:data:`_NAMES`, cleared when full, keyed on
  names, never on values); values are encoded on every request.

Speed: what the server and the config say is looked up once per client connection
(:class:`minihttp.proxy.upstream.Context`); the fields go to h11 as its own
``(raw name, lower-case name, value)`` list, which it adopts without re-normalising (the
framing field is ours, in normal form; a Content-Length that is not plain digits goes as
pairs, which h11 checks); a plain ``http://reg-name`` target is split by string operations
and a bounded table of destinations (:data:`_DESTINATIONS`), the regex running once per
destination.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from minihttp.proxy import repeat
from minihttp.proxy.config import REG_NAME as _REG_NAME
from minihttp.proxy.headers import (
    PROTECTED,
    REQUEST_DROP,
    ProxyRequest,
    connection_options,
    via_has,
)
from minihttp.proxy.route import Refuse
from minihttp.proxy.upstream import H11_HEADERS, Context, Exchange

__all__ = ["FastPath"]

#: Absolute-form ``http://reg-name[:port][/path-or-?query][#fragment]`` (RFC 9112 section
#: 3.2.2, RFC 3986 section 3.2.2 reg-name): the common target in one match. Anything else
#: (IPv6 literals, userinfo, other schemes, bad ports) goes to ``Routing._target``
#: (:mod:`minihttp.proxy.route`), which accepts or refuses it with a precise message.
_ABSOLUTE = re.compile(
    r"(?i:http)://(" + _REG_NAME.pattern + r")(?::([0-9]{1,5})?)?(?:([/?][^#]*)(?:#.*)?)?",
    re.DOTALL)


def _fast_target(target: str) -> tuple[str, int, str] | None:
    """(host, port, origin-form path) of a plain ``http://reg-name[:port]...`` target, or
    None for anything ``Routing._target`` must look at (it gives the same answer for every
    target this accepts; tests/proxy/test_fast.py checks that)."""
    split = _split_target(target)
    return None if split is None else split[:3]


#: Authorities of ``http://`` targets -> (host, port, the Host field we send) when
#: :data:`_ABSOLUTE` takes ``http://authority`` (its port in range), else ``()``: what
#: :func:`_split_absolute` makes of a target is its authority's alone plus the path, so the
#: regex runs once per destination, not once per request (a client of a proxy sends many
#: requests to few destinations). Keyed on destinations (like the server's Host cache),
#: never on whole targets; bounded, cleared when full.
_DESTINATIONS: dict[str, tuple[str, int, str] | tuple[()]] = {}
_DESTINATIONS_MAX = 256


def _split_target(target: str) -> tuple[str, int, str, str] | None:
    """:func:`_split_absolute` plus the authority to send as Host (``host`` for port 80,
    else ``host:port``, as ``Routing._authority`` gives for a reg-name).

    A lower-case ``http://`` target without ``#`` whose authority (up to the first ``/``)
    holds no ``?`` is split by string operations and :data:`_DESTINATIONS`: the regex's
    authority holds none of ``/?#``, and its ``[/?][^#]*`` takes the rest whole. Any other
    target is matched by the regex.
    """
    if target.startswith("http://") and "#" not in target:
        end = target.find("/", 7)
        authority = target[7:] if end < 0 else target[7:end]
        if "?" not in authority:
            dest = _DESTINATIONS.get(authority)
            if dest is None:
                dest = _destination(authority)
            if not dest:
                return None
            host, port, field = dest
            return host, port, "/" if end < 0 else target[end:], field
    split = _split_absolute(target)
    if split is None:
        return None
    host, port, path = split
    return host, port, path, host if port == 80 else f"{host}:{port}"


def _destination(authority: str) -> tuple[str, int, str] | tuple[()]:
    """:data:`_DESTINATIONS`' entry for ``authority`` (no ``/?#`` in it), made and kept."""
    split = _split_absolute("http://" + authority)
    dest: tuple[str, int, str] | tuple[()] = ()
    if split is not None:
        host, port, _ = split
        dest = (host, port, host if port == 80 else f"{host}:{port}")
    if len(_DESTINATIONS) >= _DESTINATIONS_MAX:
        _DESTINATIONS.clear()
    _DESTINATIONS[authority] = dest
    return dest


def _split_absolute(target: str) -> tuple[str, int, str] | None:
    """:func:`_fast_target` by the regex (:data:`_ABSOLUTE`), for any target."""
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        return None
    host, port_text, path = match.group(1, 2, 3)
    port = 80
    if port_text:
        port = int(port_text)
        if not 0 < port < 65536:
            return None
    if not path:
        path = "/"
    elif path[0] == "?":
        path = "/" + path
    return host, port, path


# What the fast path does with each request field (by lower-case name).
_KEEP, _DROP, _CONNECTION, _VIA, _XFF, _TE, _CL = range(7)
_REQUEST_ACTIONS: dict[str, int] = {
    **{name: _DROP for name in REQUEST_DROP},
    "connection": _CONNECTION, "via": _VIA, "x-forwarded-for": _XFF,
    "transfer-encoding": _TE, "content-length": _CL,
}
#: Field name as received -> (name bytes, lower-case name bytes, action). Field names are a
#: small vocabulary (the same dozen on most requests), so each is encoded and classified
#: once; the table is bounded (cleared when full) so odd names cannot grow it. Values are
#: never cached: they are encoded on every request.
_NAMES: dict[str, tuple[bytes, bytes, int]] = {}
_NAMES_MAX = 512


#: Request field blocks (:meth:`minihttp.headers.Headers.field_block`, as the client sent
#: them) with no field the rules act on but those dropped (no Connection, Via,
#: X-Forwarded-For, Transfer-Encoding, Content-Length) -> the lines the block contributes to
#: the raw request, as bytes. A keep-alive client sends the same block request after
#: request, so the split, the classification, the encoding and the join are done once.
#: Measured: cpu_proxy.py --fake, see the commit. Bounded: blocks up to
#: :data:`_BLOCK_CACHE_MAX` characters, :data:`_BLOCKS_MAX` of them, cleared when full.
_BLOCKS: dict[str, bytes] = {}
_BLOCKS_MAX = 256
_BLOCK_CACHE_MAX = 2048


def _name_entry(name: str) -> tuple[bytes, bytes, int]:
    low = name.lower()
    entry = (name.encode("latin-1"), low.encode("latin-1"), _REQUEST_ACTIONS.get(low, _KEEP))
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[name] = entry
    return entry


class FastPath(Exchange):
    """The hook-less fast path (see above)."""

    #: The last head the fast path forwarded on this connection (see repeat.remember).
    _last_head: bytes | None = None

    def _forward_fast(self, ctx: Context) -> None:
        """:meth:`_admit_fields` + :meth:`_forward` without a request hook, in one pass.

        The same rules, in the same order, as the general path; the request's fields are
        classified by a table (:data:`_NAMES`) and go straight into h11's own field list
        (:data:`H11_HEADERS`), so h11 neither copies nor re-checks what our strict parser
        accepted. Only http:// targets with a reg-name host take the quick split.
        """
        latin = "latin-1"
        block = self.headers.field_block()
        if block is not None and not ctx.response_hook:
            kept = _BLOCKS.get(block)
            if kept is not None:
                self._forward_known(ctx, kept)
                return
        names = _NAMES
        host_slot = (b"Host", b"host", b"")
        fields = [host_slot]
        special: list[tuple[int, str]] | None = None
        for name, value in self.headers.items():
            entry = names.get(name) or _name_entry(name)
            action = entry[2]
            if action == _KEEP:
                fields.append((entry[0], entry[1], value.encode(latin)))
            elif action != _DROP:
                if action == _VIA:
                    fields.append((entry[0], entry[1], value.encode(latin)))
                if special is None:
                    special = []
                special.append((action, value))
        framing: tuple[bytes, bytes, bytes] | None = None
        xff: list[str] | None = None
        if special is not None:
            fields, framing, xff = self._special_fields(ctx, fields, special)
        host, port, path, authority = self._fast_destination(ctx)
        fields[0] = (b"Host", b"host", authority.encode(latin))
        version = self.request_version
        if version == "HTTP/1.1":
            fields.append((b"Via", b"via", ctx.via_request))
        else:
            version = version[5:] if version.startswith("HTTP/") else "1.1"
            fields.append((b"Via", b"via", f"{version} {ctx.cfg.via_name}".encode(latin)))
        if xff:
            if ctx.xff is not None:
                xff.append(str(self.client_address[0]))
            fields.append((b"X-Forwarded-For", b"x-forwarded-for", ", ".join(xff).encode(latin)))
        elif ctx.xff is not None:
            fields.append((b"X-Forwarded-For", b"x-forwarded-for", ctx.xff))
        method = self.command or "GET"
        request = None
        if ctx.response_hook:  # the hook is given the request as a hook would have seen it
            request = ProxyRequest(method, f"http://{authority}{path}",
                                   [(n.decode(latin), v.decode(latin)) for n, _, v in fields[1:]],
                                   tuple(self.client_address))
        if framing is None:
            # A bodyless request (the usual GET) goes out as the bytes h11 would write for
            # it, and its response is read by our own parser (UpstreamConnection.send_raw):
            # measured, one h11 client cycle was ~35 us of the ~72 us of Python a proxied
            # hello cost (cpu_proxy.py --fake); see benchmarks/README.md.
            lines = [b"%s: %s\r\n" % (f[0], f[2]) for f in fields]
            if special is None and block is not None and len(block) <= _BLOCK_CACHE_MAX:
                # The client's own fields: after Host, before Via (and X-Forwarded-For).
                if len(_BLOCKS) >= _BLOCKS_MAX:
                    _BLOCKS.clear()
                _BLOCKS[block] = b"".join(lines[1:-2 if ctx.xff is not None else -1])
            wire = b"%s %s HTTP/1.1\r\n%s\r\n" % (
                method.encode(latin), path.encode(latin), b"".join(lines))
            if special is None and ctx.repeat:
                repeat.remember(self, ctx, wire, host, port)
            self._exchange(wire, False, host, port, request, ctx)
            return
        has_body = False
        headers: Any = fields
        if framing is not None:
            fields.append(framing)
            value = framing[2]
            has_body = value != b"0"
            if value != b"chunked" and not (value.isdigit() and len(value) < 19):
                headers = [(n, v) for n, _, v in fields]  # h11 normalises and checks it
        try:
            h11_request = h11.Request(
                method=method.encode(latin), target=path.encode(latin),
                headers=H11_HEADERS(fields) if headers is fields else headers, _parsed=True)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc
        self._exchange(h11_request, has_body, host, port, request, ctx)

    def _fast_destination(self, ctx: Context) -> tuple[str, int, str, str]:
        """(host, port, origin-form path, authority) of this request's target, by the
        target's rules (:func:`_split_target` for a plain ``http://reg-name`` target), after
        the check that it is not this proxy (508)."""
        target = _split_target(self.path)
        if target is not None:
            # The authority is _authority's answer for a reg-name (no brackets).
            host, port, path, authority = target
        else:
            host, port, path = self._target()
            authority = self._authority(host, port)
        if port == ctx.bind_port and self._is_self(host, port):
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        return host, port, path, authority

    def _forward_known(self, ctx: Context, kept: bytes) -> None:
        """:meth:`_forward_fast` for a field block seen before (:data:`_BLOCKS`): it had no
        field the rules act on, so what is left is the target's rules and our own fields,
        in the same order, giving the same bytes."""
        host, port, path, authority = self._fast_destination(ctx)
        version = self.request_version
        if version == "HTTP/1.1":
            via = ctx.via_request
        else:
            version = version[5:] if version.startswith("HTTP/") else "1.1"
            via = f"{version} {ctx.cfg.via_name}".encode("latin-1")
        # One encode of what varies (the line and Host are latin-1 text by the parser's
        # rules), then one formatting of the bytes.
        line = f"{self.command or 'GET'} {path} HTTP/1.1\r\nHost: {authority}\r\n"
        if ctx.xff is None:
            wire = b"%s%sVia: %s\r\n\r\n" % (line.encode("latin-1"), kept, via)
        else:
            wire = b"%s%sVia: %s\r\nX-Forwarded-For: %s\r\n\r\n" % (
                line.encode("latin-1"), kept, via, ctx.xff)
        if ctx.repeat:
            if self._head == self._last_head:
                repeat.remember(self, ctx, wire, host, port)
            else:  # repeat.remember's first test, without the call (see there)
                self._last_head = self._head
        self._exchange(wire, False, host, port, None, ctx)

    def _special_fields(
        self, ctx: Context, fields: list[tuple[bytes, bytes, bytes]],
        special: list[tuple[int, str]],
    ) -> tuple[list[tuple[bytes, bytes, bytes]], tuple[bytes, bytes, bytes] | None,
               list[str] | None]:
        """The rules for the request fields the fast path set aside: Connection (400 if it
        names a protected field, else the fields it names are dropped), Via (508 on a
        loop), X-Forwarded-For (kept, non-empty entries), framing (RFC 9112 section 6.3:
        chunked when Transfer-Encoding is there, else the Content-Length).

        Returns the fields, the framing field (or None) and the received X-Forwarded-For
        values (or None).
        """
        listed = [v for a, v in special if a == _CONNECTION]
        if listed:
            options = connection_options(listed)
            if options & PROTECTED:
                raise Refuse(400, "Bad Request: Connection lists an end-to-end field.")
            drop = {o.encode("latin-1") for o in options}
            fields = [f for f in fields if f[1] not in drop]
        via = [v for a, v in special if a == _VIA]
        if via and via_has(via, ctx.cfg.via_name):
            raise Refuse(508, "Loop Detected: this request already passed this proxy.")
        xff = [v for a, v in special if a == _XFF and v.strip()] or None
        framing: tuple[bytes, bytes, bytes] | None = None
        te = next((v for a, v in special if a == _TE), None)
        if te:
            framing = (b"Transfer-Encoding", b"transfer-encoding", b"chunked")
        else:
            length = next((v for a, v in special if a == _CL), None)
            if length is not None:
                framing = (b"Content-Length", b"content-length",
                           length.strip().encode("latin-1"))
        return fields, framing, xff
