"""The general forwarding path: the request as a hook sees it, then as h11 sends it.

:class:`GeneralPath` gives :meth:`GeneralPath._forward`, taken when the handler's class
overrides ``request_hook`` (and for OPTIONS and TRACE, whose Max-Forwards is answered here);
everything else takes :mod:`minihttp.proxy.fast`, which must mean the same.

Rules of this module (RFC 9110 sections 7.6 and 7.6.2, RFC 9112 section 3.2.2):

* The outgoing fields are the received end-to-end ones (hop-by-hop fields, those Connection
  lists, Host, Content-Length, Expect and X-Forwarded-For removed), then our Via entry and
  X-Forwarded-For (received non-empty entries, plus the client's address when configured).
* OPTIONS and TRACE with ``Max-Forwards: 0`` are answered here (TRACE echoes the head
  without credentials); a larger value is forwarded one less.
* The request hook may change the request, re-target it (the new target is checked again:
  400, 508) or answer it with a :class:`ProxyResponse`. Host always comes from the target;
  the framing is ours (chunked for any Transfer-Encoding, else the Content-Length).
* Fields our strict parser accepted skip h11's per-field validation; a hook's fields get it
  all, and what h11 refuses is a 500 (our fault, not the upstream's).
"""

from __future__ import annotations

from typing import Any

import h11

from minihttp.proxy.config import ProxyConfig
from minihttp.proxy.headers import REQUEST_DROP, ProxyRequest, ProxyResponse, strip_fields
from minihttp.proxy.route import Refuse
from minihttp.proxy.upstream import H11_PARSED, Context, Exchange

__all__ = ["GeneralPath"]


class GeneralPath(Exchange):
    """The path for hooked requests and OPTIONS/TRACE (see above)."""

    def _outgoing(self, url: str, cfg: ProxyConfig) -> ProxyRequest:
        # Expect: 100-continue is answered by our server when we start reading the body; the
        # upstream never sees it (we send the body without waiting).
        headers = self.headers
        fields = strip_fields(headers.items(), REQUEST_DROP)
        command = self.command or "GET"
        if command == "OPTIONS" or command == "TRACE":
            hops = headers.get("Max-Forwards")
            if hops is not None:  # RFC 9110 section 7.6.2: forward one less (> 0 here)
                fields = [(n, v) for n, v in fields if n.lower() != "max-forwards"]
                fields.append(("Max-Forwards", str(int(hops) - 1)))
        version = self.request_version
        version = version[5:] if version.startswith("HTTP/") else "1.1"
        fields.append(("Via", f"{version} {cfg.via_name}"))
        xff = headers.get_all("X-Forwarded-For")
        if xff:
            xff = [v for v in xff if v.strip()]
        if cfg.forwarded_for:
            xff = xff or []
            xff.append(str(self.client_address[0]))
        if xff:
            fields.append(("X-Forwarded-For", ", ".join(xff)))
        return ProxyRequest(command, url, fields, tuple(self.client_address))

    def _max_forwards(self) -> bool:
        """Handle Max-Forwards for OPTIONS/TRACE (RFC 9110 section 7.6.2); True if answered."""
        value = self.headers.get("Max-Forwards")
        if self.command not in ("OPTIONS", "TRACE") or value is None:
            return False
        if not (value.strip().isascii() and value.strip().isdigit()):
            raise Refuse(400, "Bad Request: bad Max-Forwards.")
        if int(value) > 0:
            return False
        if self.command == "TRACE":
            head = self.raw_requestline + b"".join(
                f"{n}: {v}\r\n".encode("latin-1") for n, v in self.headers.items()
                if n.lower() not in ("proxy-authorization", "authorization", "cookie"))
            self._send_response(ProxyResponse(200, "OK", [("Content-Type", "message/http")],
                                              head))
        else:
            self._send_response(ProxyResponse(200, "OK", [("Allow", "GET, HEAD, OPTIONS")], b""))
        return True

    def _forward(self, ctx: Context) -> None:
        cfg = ctx.cfg
        host, port, path = self._target()
        if self._is_self(host, port):
            raise Refuse(508, "Loop Detected: the target is this proxy.")
        if (self.command == "OPTIONS" or self.command == "TRACE") and self._max_forwards():
            return
        authority = self._authority(host, port)
        url = f"http://{authority}{path}"
        request = self._outgoing(url, cfg)
        # Without a hook the fields are what our strict parser accepted plus our own: h11 need
        # not validate them again (see _exchange).
        trusted = not ctx.request_hook
        if not trusted:
            result = self.request_hook(request)
            if isinstance(result, ProxyResponse):
                self._send_response(result)
                return
            request = result or request
            if request.url != url:  # the hook re-targeted the request: check it again
                saved, self.path = self.path, request.url
                try:
                    host, port, path = self._target()
                finally:
                    self.path = saved
                if self._is_self(host, port):
                    raise Refuse(508, "Loop Detected: the target is this proxy.")
                authority = self._authority(host, port)
        framing = self._body_framing()
        try:
            h11_request = self._upstream_request(request, path, authority, framing, trusted)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            # h11 refused what a hook built: our fault, not the upstream's.
            raise Refuse(500, "Internal Server Error: request cannot be forwarded.") from exc
        self._exchange(h11_request, framing is not None and framing != ("Content-Length", "0"),
                       host, port, request, ctx)

    def _body_framing(self) -> tuple[str, str] | None:
        if self.headers.get("Transfer-Encoding"):
            return ("Transfer-Encoding", "chunked")
        length = self.headers.get("Content-Length")
        if length is not None:
            return ("Content-Length", length.strip())
        return None

    def _upstream_request(self, request: ProxyRequest, path: str, authority: str,
                          framing: tuple[str, str] | None, trusted: bool) -> Any:
        """The h11.Request for upstream: Host from the target, the framing we chose.

        Fields go to h11 as latin-1 bytes (RFC 9110 section 5.5: obs-text is allowed in
        values; h11 would encode str as ASCII). ``trusted`` fields (from our strict parser,
        which rejects every control byte h11 rejects and more, plus fields we built) skip
        h11's per-field regex validation; h11 still normalises the names and checks the
        framing fields. A hook's fields go through h11's full validation.
        """
        latin = "latin-1"
        fields = [(b"Host", authority.encode(latin))]
        if trusted:
            fields += [(n.encode(latin), v.encode(latin)) for n, v in request.headers]
        else:
            fields += [(n.encode(latin), v.encode(latin)) for n, v in request.headers
                       if n.lower() not in ("host", "content-length", "transfer-encoding")]
        if framing is not None:
            fields.append((framing[0].encode(latin), framing[1].encode(latin)))
        method, target = request.method.encode(latin), path.encode(latin)
        if trusted and H11_PARSED:
            return h11.Request(method=method, target=target, headers=fields, _parsed=True)
        return h11.Request(method=method, target=target, headers=fields)
