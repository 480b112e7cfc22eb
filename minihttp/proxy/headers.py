"""Header rules of the forward proxy (RFC 9110 sections 7.6 and 7.6.3), without I/O.

Which fields are hop-by-hop and never forwarded, which end-to-end fields a Connection header
may not name, Via loop detection, and the editable request / response heads that hooks see
(:class:`ProxyRequest`, :class:`ProxyResponse`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HOP_BY_HOP",
    "PROTECTED",
    "REQUEST_DROP",
    "ProxyRequest",
    "ProxyResponse",
    "connection_options",
    "end_to_end",
    "strip_fields",
    "via_has",
]

#: Fields that describe one connection, never forwarded (RFC 9110 sections 7.6.1, 11.7, 7.8;
#: RFC 9112 section 6.1). Trailer goes too: trailers are not relayed.
HOP_BY_HOP = frozenset({
    "connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "trailer",
})
#: End-to-end fields that a Connection header may not name (RFC 9110 section 7.6.1: "a
#: sender MUST NOT send a connection option corresponding to a header field that is intended
#: for all recipients of the content"); naming them is an attack on framing or routing.
PROTECTED = frozenset({
    "host", "content-length", "content-type", "content-encoding", "content-range",
    "authorization", "cookie", "cache-control", "via", "x-forwarded-for",
})
#: Request fields never forwarded as received: hop-by-hop ones, Host (rebuilt from the target,
#: RFC 9112 section 3.2.2), Content-Length (re-added with the framing), Expect (answered
#: here), X-Forwarded-For (rebuilt with the client's address).
REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "expect", "x-forwarded-for"}


class _Fields:
    """A mutable, ordered list of (name, value) header fields with case-insensitive lookup."""

    headers: list[tuple[str, str]]

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        lname = name.lower()
        return next((v for n, v in self.headers if n.lower() == lname), default)

    def remove_header(self, name: str) -> None:
        """Remove every field called ``name``."""
        lname = name.lower()
        self.headers[:] = [(n, v) for n, v in self.headers if n.lower() != lname]

    def set_header(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one with ``value``."""
        self.remove_header(name)
        self.headers.append((name, value))


@dataclass
class ProxyRequest(_Fields):
    """A request about to leave for the upstream; hooks may change any field.

    ``headers`` are end-to-end fields only (hop-by-hop and framing fields are removed and
    the framing is re-added by the proxy). Host is not in the list: it is always derived from
    ``url`` (RFC 9112 section 3.2.2). For CONNECT, ``url`` is the ``host:port`` authority.
    """

    method: str
    url: str
    headers: list[tuple[str, str]]
    client_address: tuple[Any, ...] = ()


@dataclass
class ProxyResponse(_Fields):
    """A response head on its way to the client, or a complete response made by a hook.

    ``body`` is None for upstream responses (the body is streamed untouched); a hook that
    answers a request itself sets ``body`` to bytes. Framing fields are set by the proxy.
    """

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None


def connection_options(values: Iterable[str]) -> set[str]:
    """Lower-cased tokens of every Connection field value (RFC 9110 section 7.6.1)."""
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


def end_to_end(fields: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> list[
        tuple[str, str]]:
    """``fields`` without hop-by-hop fields, Connection-listed fields and ``drop``."""
    remove = HOP_BY_HOP | {d.lower() for d in drop} if drop else HOP_BY_HOP
    return strip_fields(fields, remove)


def strip_fields(fields: Iterable[tuple[str, str]], remove: frozenset[str]) -> list[
        tuple[str, str]]:
    """``fields`` without the (lower-case) names in ``remove`` nor those Connection lists.

    ``remove`` must hold :data:`HOP_BY_HOP`; callers on the per-request path pass a set
    built once, at import. Each name is lower-cased once: this runs on every request.
    """
    fields = list(fields)
    lowered = [n.lower() for n, _ in fields]
    if "connection" in lowered:
        listed = connection_options(
            v for (_, v), low in zip(fields, lowered, strict=True) if low == "connection")
        remove = remove | (listed - PROTECTED)
    return [f for f, low in zip(fields, lowered, strict=True) if low not in remove]


def via_has(values: Iterable[str], pseudonym: str) -> bool:
    """True when one of the Via entries was received by ``pseudonym`` (RFC 9110 7.6.3)."""
    for value in values:
        for entry in value.split(","):
            parts = entry.split()
            if len(parts) >= 2 and parts[1].lower() == pseudonym.lower():
                return True
    return False
