"""Cross-origin resource sharing (CORS): ``--cors [ORIGIN]`` for the file server.

A page on another origin may read our responses when they carry
``Access-Control-Allow-Origin``; a ``fetch()`` that is not "simple" (a ``PUT``, a JSON
``Content-Type``, a custom header) first sends a *preflight*: ``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method`` (Fetch standard, "CORS protocol"). :class:`CORSPolicy`
decides the fields (pure, unit-tested as a table); :class:`CORSMixin` puts them on every
response of a handler and answers preflights. ``--cors`` alone allows any origin (``*``);
``--cors https://app.example`` (repeatable, or comma-separated) allows those only.

Rules of this module:

* With a list of origins, the request's ``Origin`` is echoed only when listed, and every
  response carries ``Vary: Origin`` (a cache must not hand one origin's answer to another);
  with ``*`` nothing varies and no ``Vary`` is sent.
* Credentials are never allowed (no ``Access-Control-Allow-Credentials``): ``*`` would then be
  unsafe, and the browser would refuse it anyway.
* A preflight echoes ``Access-Control-Request-Headers`` only when it is a list of tokens (RFC
  9110 section 5.6.2), so nothing the client sends can inject a field; otherwise no
  ``Access-Control-Allow-Headers`` is sent and the browser refuses the request.
* ``Access-Control-Allow-Methods`` lists the methods the handler defines (its ``do_*``), so a
  preflight never promises what the server would answer with 501.
* A preflight from an origin that is not allowed gets the plain ``OPTIONS`` answer (204 with
  ``Allow``) and no CORS fields: the browser then blocks the request.
* Off (no ``--cors``), nothing here runs: :func:`apply` returns the handler class unchanged.
"""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from minihttp.server import BaseHTTPRequestHandler

__all__ = ["CORSMixin", "CORSPolicy", "add_arguments", "apply", "parse_origins"]

#: Response fields a cross-origin script may read beyond the CORS-safelisted ones (Fetch
#: standard: Cache-Control, Content-Language, Content-Length, Content-Type, Expires,
#: Last-Modified, Pragma): what resuming downloads, revalidation and uploads need.
EXPOSE = ("Accept-Ranges", "Content-Range", "Content-Encoding", "Content-Disposition", "ETag",
          "Location")
#: Seconds a browser may cache a preflight answer (Chromium caps it at 7200).
MAX_AGE = 7200

_H = TypeVar("_H", bound=BaseHTTPRequestHandler)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origins(text: str) -> tuple[str, ...]:
    """``*`` or comma-separated serialized origins (``scheme://host[:port]``), normalized.

    Raises ValueError for anything else: a path, a query, user info, or ``null`` (the origin
    of sandboxed and ``file:`` pages, which any page can forge: never allow it).
    """
    origins = []
    for item in text.split(","):
        item = item.strip()
        if item == "*":
            origins.append("*")
            continue
        if item.lower() == "null":
            raise ValueError("'null' is not a safe origin to allow")
        parts = urllib.parse.urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid origin {item!r}: bad port") from None
        path = parts.path.rstrip("/") if "//" in item else parts.path
        if (not _SCHEME.fullmatch(parts.scheme.lower()) or not parts.hostname or path
                or parts.query or parts.fragment or "?" in item or "#" in item
                or parts.username is not None or any(c.isspace() for c in item)):
            raise ValueError(f"invalid origin {item!r}: expected scheme://host[:port]")
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        scheme = parts.scheme.lower()
        if port == _DEFAULT_PORTS.get(scheme):
            port = None  # browsers leave the default port out of Origin
        origins.append(f"{scheme}://{host}" + (f":{port}" if port is not None else ""))
    if not origins:
        raise ValueError("no origin given")
    return tuple(dict.fromkeys(origins))


def _token_list(value: str) -> str | None:
    """``value`` as a normalized comma-separated token list, or None if it is not one."""
    items = [item.strip(" \t") for item in value.split(",")]
    items = [item for item in items if item]
    if not items or not all(_TOKEN.fullmatch(item) for item in items):
        return None
    return ", ".join(items)


@dataclass(frozen=True, slots=True)
class CORSPolicy:
    """Which origins may read responses, and what a preflight answer says."""

    origins: tuple[str, ...] = ("*",)
    max_age: int = MAX_AGE
    expose: tuple[str, ...] = EXPOSE

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    def allow_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``."""
        if self.any_origin:
            return "*"
        if origin is not None and origin.lower() in self.origins:
            return origin.lower()
        return None

    def response_fields(self, origin: str | None) -> list[tuple[str, str]]:
        """Fields for an ordinary response to a request from ``origin``."""
        fields: list[tuple[str, str]] = [] if self.any_origin else [("Vary", "Origin")]
        allowed = self.allow_origin(origin)
        if allowed is not None:
            fields.append(("Access-Control-Allow-Origin", allowed))
            if self.expose:
                fields.append(("Access-Control-Expose-Headers", ", ".join(self.expose)))
        return fields

    def preflight_fields(self, origin: str | None, request_headers: str | None,
                         methods: Sequence[str]) -> list[tuple[str, str]] | None:
        """Fields answering a preflight, or None when ``origin`` is not allowed."""
        allowed = self.allow_origin(origin)
        if allowed is None:
            return None
        vary = [] if self.any_origin else ["Origin"]
        fields = [("Access-Control-Allow-Origin", allowed),
                  ("Access-Control-Allow-Methods", ", ".join(methods))]
        if request_headers is not None:
            vary.append("Access-Control-Request-Headers")
            echoed = _token_list(request_headers)
            if echoed is not None:
                fields.append(("Access-Control-Allow-Headers", echoed))
        fields.append(("Access-Control-Max-Age", str(self.max_age)))
        if vary:
            fields.append(("Vary", ", ".join(vary)))
        return fields


class CORSMixin(BaseHTTPRequestHandler):
    """Put :attr:`cors`'s fields on every response and answer preflights (204).

    Mix in before the handler class: ``class H(CORSMixin, SimpleHTTPRequestHandler)`` with
    ``cors = CORSPolicy(("https://app.example",))``.
    """

    cors: CORSPolicy | None = CORSPolicy()
    _cors_sent = False  # this response's CORS fields are out already (a preflight's)

    def end_headers(self) -> None:
        policy = self.cors
        if policy is not None:
            if self._cors_sent:
                self._cors_sent = False
            else:
                # No command: this head did not parse, and ``headers`` (if any) are still
                # the previous request's on this connection; its Origin is not this one's.
                parsed = getattr(self, "command", None) is not None
                headers = getattr(self, "headers", None) if parsed else None
                origin = headers.get("Origin") if headers is not None else None
                for name, value in policy.response_fields(origin):
                    self.send_header(name, value)
        super().end_headers()

    def do_OPTIONS(self) -> None:
        """A preflight gets 204 with the CORS fields; any other OPTIONS the plain answer."""
        policy, headers = self.cors, self.headers
        method = headers.get("Access-Control-Request-Method")
        origin = headers.get("Origin")
        if policy is None or method is None or origin is None:
            self.send_options()
            return
        fields = policy.preflight_fields(origin, headers.get("Access-Control-Request-Headers"),
                                         self.cors_methods())
        if fields is None:
            self.send_options()  # the browser sees no Allow-Origin and blocks the request
            return
        self.send_response(204)
        self.send_header("Allow", ", ".join(self.cors_methods()))
        for name, value in fields:
            self.send_header(name, value)
        self._cors_sent = True
        self.end_headers()

    def cors_methods(self) -> list[str]:
        """The methods this handler answers (its ``do_*``), sorted."""
        cls = type(self)
        return sorted(n[3:] for n in dir(cls) if n.startswith("do_") and callable(getattr(cls, n)))


# -- command line ----------------------------------------------------------------------------


def _origins_arg(text: str) -> tuple[str, ...]:
    try:
        return parse_origins(text)
    except ValueError as exc:
        hint = (" (a port? give it before --cors, or write --cors='*')" if text.isdigit()
                else "")
        raise argparse.ArgumentTypeError(f"{exc}{hint}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cors [ORIGIN]`` of the file server."""
    parser.add_argument("--cors", action="append", nargs="?", const=("*",), type=_origins_arg,
                        metavar="ORIGIN",
                        help="let pages of other origins read responses "
                        "(Access-Control-Allow-Origin) and answer CORS preflights; alone: "
                        "any origin (*); or the allowed origins, e.g. https://app.example "
                        "(repeatable, or comma-separated)")


def apply(handler_class: type[_H], args: argparse.Namespace) -> type[_H]:
    """``handler_class`` with :class:`CORSMixin` in front when ``--cors`` was given."""
    given = getattr(args, "cors", None)
    if not given:
        return handler_class
    origins = tuple(dict.fromkeys(o for group in given for o in group))
    policy = CORSPolicy(("*",) if "*" in origins else origins)
    return cast("type[_H]", type(handler_class.__name__, (CORSMixin, handler_class),
                                 {"cors": policy}))
