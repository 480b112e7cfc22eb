"""Who may use the proxy, where a request goes, and the short answers the proxy gives itself.

:class:`Routing` is the base of :class:`minihttp.proxy.handler.ProxyHandler`: everything both
forwarding paths (:mod:`minihttp.proxy.general`, :mod:`minihttp.proxy.fast`) and CONNECT
decide before any upstream byte moves, and how a refusal is answered.

Rules of this module (RFC 9110 sections 4.2, 7.6 and 11.7, RFC 9112 section 3.2):

* Admission: a client outside ``ProxyConfig.allow`` gets 403; with ``auth`` set, a request
  without matching Basic ``Proxy-Authorization`` gets 407 (compared in constant time); a
  Connection header naming an end-to-end field (:data:`PROTECTED`) gets 400; our own Via
  name in the request's Via gets 508.
* The one origin-form request answered here: ``GET /proxy.pac`` with the ``--pac`` file
  (allow-list applies, proxy authentication does not: browsers fetch it directly).
* Targets: only absolute-form ``http://`` is forwarded (origin-form and ``*`` get 400, other
  schemes must use CONNECT); userinfo, malformed hosts and ports get 400. A target that is
  this proxy (our bind address and port, loopback when we listen there, or the address a
  connection actually reached) gets 508.
* Every refusal is :class:`Refuse` (status, short text, extra fields), answered by
  :meth:`Routing._send_plain` as a plain-text response; a 400 also closes the connection
  (what follows a request we could not understand cannot be trusted).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from minihttp.auth import Credentials
from minihttp.proxy.config import REG_NAME as _REG_NAME
from minihttp.proxy.config import ProxyConfig
from minihttp.proxy.connections import ConnectionPool, IPNetwork, address_in
from minihttp.proxy.headers import (
    PROTECTED,
    ProxyRequest,
    ProxyResponse,
    connection_options,
    via_has,
)
from minihttp.server import BaseHTTPRequestHandler

__all__ = ["Refuse", "Routing", "client_allowed"]

_PORT = re.compile(r"[0-9]{1,5}")
#: Where ``--pac`` serves the proxy auto-config file, and its media type (the one browsers
#: expect; ``application/x-javascript-config`` is the older alias).
PAC_PATH = "/proxy.pac"
PAC_TYPE = "application/x-ns-proxy-autoconfig"


@functools.lru_cache(maxsize=256)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def client_allowed(ip: str, allow: tuple[IPNetwork, ...]) -> bool:
    """Allow-list decision, cached: parsing addresses costs more than the rest of admission."""
    return address_in(ip, allow)


class Refuse(Exception):
    """Answer the client with ``status`` and a short text, then go on with the connection."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, list(headers)


_FALLBACK: dict[str, Any] = {}
_FALLBACK_LOCK = threading.Lock()


class Routing(BaseHTTPRequestHandler):
    """Admission, target parsing, loop detection and the proxy's own answers (see above)."""

    if TYPE_CHECKING:  # defined by minihttp.proxy.ProxyHandler, whose subclasses override them
        def request_hook(self, request: ProxyRequest) -> ProxyRequest | ProxyResponse | None:
            ...

        def response_hook(
            self, request: ProxyRequest, response: ProxyResponse
        ) -> ProxyResponse | None:
            ...

    # -- configuration ---------------------------------------------------------------------

    @property
    def config(self) -> ProxyConfig:
        """The server's :class:`ProxyConfig`, or a process-wide default under another server."""
        cfg = getattr(self.server, "proxy_config", None)
        if isinstance(cfg, ProxyConfig):
            return cfg
        fallback: ProxyConfig = self._fallback()["config"]
        return fallback

    @property
    def pool(self) -> ConnectionPool:
        """The server's upstream pool, or a process-wide one under another server."""
        pool = getattr(self.server, "proxy_pool", None)
        if isinstance(pool, ConnectionPool):
            return pool
        fallback: ConnectionPool = self._fallback()["pool"]
        return fallback

    @staticmethod
    def _fallback() -> dict[str, Any]:
        with _FALLBACK_LOCK:
            if not _FALLBACK:
                _FALLBACK["config"] = ProxyConfig()
                _FALLBACK["pool"] = ConnectionPool()
            return _FALLBACK

    # -- admission: allow-list, authentication, loops ----------------------------------------

    def _admit_fields(self) -> None:
        """Refuse a Connection naming an end-to-end field (400) and a Via loop (508)."""
        headers = self.headers
        listed = headers.get_all("Connection")
        if listed and connection_options(listed) & PROTECTED:
            raise Refuse(400, "Bad Request: Connection lists an end-to-end field.")
        via = headers.get_all("Via")
        if via and via_has(via, self.config.via_name):
            raise Refuse(508, "Loop Detected: this request already passed this proxy.")

    def _authorized(self, auth: Credentials | tuple[str, str]) -> bool:
        """Whether Proxy-Authorization holds valid credentials (:mod:`minihttp.auth`: constant
        time, equal work for unknown users); the user goes to the access log."""
        if not isinstance(auth, Credentials):  # a pair: ProxyConfig turns it into these
            auth = Credentials.plain([auth])
        user = self.remote_user = auth.check(self.headers.get_all("Proxy-Authorization"))
        return user is not None

    def _is_self(self, host: str, port: int, sock: socket.socket | None = None) -> bool:
        """True when the target (or, with ``sock``, the address we reached) is this proxy.

        Before connecting only what needs no lookup is checked (our bind address, loopback
        names and literals when we listen there); after connecting, the real peer address.
        """
        bind_host, bind_port = self.server.server_address[:2]
        if port != bind_port:
            return False
        bind = _ip(str(bind_host))
        bind_any = bind is None or bind.is_unspecified
        local_ok = bind_any or (bind is not None and bind.is_loopback)
        if host.lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
            return local_ok
        candidates = [_ip(host)]
        if sock is not None:
            try:
                peer, here = sock.getpeername()[0], sock.getsockname()[0]
            except OSError:
                return False
            if bind_any and peer == here:
                return True  # a connection to one of this host's own addresses, our port
            candidates.append(_ip(str(peer)))
        for ip in candidates:
            if ip is None:
                continue
            if ip == bind or ip.is_unspecified or (local_ok and ip.is_loopback):
                return True
        return False

    # -- the target ----------------------------------------------------------------------------

    def _target(self) -> tuple[str, int, str]:
        """(host, port, request-target for upstream) from an absolute-form target."""
        target = self.path
        if target.startswith("/") or target == "*":
            raise Refuse(400, "Bad Request: this is a proxy; send absolute-form requests "
                               "(http://host/path), or configure it as your HTTP proxy.")
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() != "http":
            raise Refuse(400, "Bad Request: only http:// targets are forwarded "
                               "(use CONNECT for https).")
        end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, path = rest[:end], rest[end:].partition("#")[0]
        if "@" in authority:  # RFC 9110 section 4.2.4: userinfo is deprecated, treat as error
            raise Refuse(400, "Bad Request: userinfo in the target URI.")
        host, port = self._split_authority(authority, default_port=80)
        if not path:
            path = "*" if self.command == "OPTIONS" else "/"
        elif path.startswith("?"):
            path = "/" + path
        return host, port, path

    @staticmethod
    def _split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
        """(host, port) of ``host[:port]`` / ``[v6][:port]``; the port is required if no default."""
        if authority.startswith("["):
            host, sep, rest = authority[1:].partition("]")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                sep = ""
        else:
            host, colon, port_text = authority.partition(":")
            sep, rest = "]", colon + port_text
            if not _REG_NAME.fullmatch(host):
                sep = ""
        if not sep:
            raise Refuse(400, "Bad Request: malformed host in the target.")
        port_text = rest[1:]
        if rest in ("", ":") and default_port is not None:
            return host, default_port  # RFC 3986 section 3.2.3: empty port means default
        if not rest.startswith(":") or not _PORT.fullmatch(port_text):
            raise Refuse(400, "Bad Request: malformed port in the target.")
        port = int(port_text)
        if not 0 < port < 65536:
            raise Refuse(400, "Bad Request: bad port in the target.")
        return host, port

    @staticmethod
    def _authority(host: str, port: int, default: int = 80) -> str:
        h = f"[{host}]" if ":" in host else host
        return h if port == default else f"{h}:{port}"

    # -- the proxy's own resource: the PAC file ---------------------------------------------

    def _serve_pac(self) -> bool:
        """Answer a direct (origin-form) request for ``/proxy.pac`` with the configured PAC
        file; True when answered, False for every other request (they go on as before).

        Browsers fetch the PAC file directly, before they know they have a proxy, and
        without Proxy-Authorization: so the allow-list applies (403), proxy authentication
        does not. Only GET and HEAD (405 otherwise).
        """
        pac = self.config.pac
        if pac is None or self.path.partition("?")[0] != PAC_PATH:
            return False
        if not client_allowed(str(self.client_address[0]), self.config.allow):
            raise Refuse(403, "Forbidden: this client may not use the proxy.")
        if self.command not in ("GET", "HEAD"):
            raise Refuse(405, "Method Not Allowed: the PAC file is read with GET.",
                         [("Allow", "GET, HEAD")])
        self._send_response(ProxyResponse(200, "OK", [
            ("Content-Type", PAC_TYPE), ("Cache-Control", "max-age=300")], pac))
        return True

    # -- responses made here ------------------------------------------------------------------

    def _send_response(self, response: ProxyResponse) -> None:
        body = response.body or b""
        self.send_response(response.status, response.reason or None)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_plain(self, status: int, message: str,
                    headers: Sequence[tuple[str, str]] = ()) -> None:
        fields = [("Content-Type", "text/plain; charset=utf-8"), *headers]
        if status == 400:  # the request could not be understood: do not trust what follows
            fields.append(("Connection", "close"))
            self.close_connection = True
        self._send_response(ProxyResponse(status, "", fields, (message + "\n").encode()))
