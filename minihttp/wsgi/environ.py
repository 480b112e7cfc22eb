"""The WSGI ``environ`` of a request (PEP 3333 "environ Variables"), built from a parsed head.

Rules of this module:

* Every key PEP 3333 requires is present: ``REQUEST_METHOD``, ``SCRIPT_NAME``,
  ``PATH_INFO``, ``QUERY_STRING``, ``SERVER_NAME``, ``SERVER_PORT``, ``SERVER_PROTOCOL``
  and the ``wsgi.*`` keys; ``CONTENT_TYPE`` / ``CONTENT_LENGTH`` when the request has them,
  ``HTTP_*`` for the other fields. Values are native strings: request bytes decoded as
  latin-1 (PEP 3333 "Unicode Issues"), so an application gets back the exact bytes with
  ``.encode("latin-1")``.
* ``PATH_INFO`` is the percent-decoded path (CGI, RFC 3875 section 4.1.5); ``RAW_URI`` keeps
  the target as sent. With a root path (``/app``), a path at or below it is split:
  ``SCRIPT_NAME=/app``, ``PATH_INFO`` the rest; a path outside it is not the application's
  (:func:`split_root` returns None and the gateway answers 404).
* A field whose name contains ``_`` is dropped: ``X_Forwarded_For`` and ``X-Forwarded-For``
  would both become ``HTTP_X_FORWARDED_FOR``, letting a client overwrite what a proxy wrote
  (nginx and gunicorn drop them too). Repeated fields are joined with ``,`` (RFC 9110
  section 5.3), ``Cookie`` with ``;`` (RFC 6265 section 5.4).
* ``REMOTE_ADDR`` is ``handler.client_address``: already the real client when the peer is
  a trusted proxy (:mod:`minihttp.forwarded` rewrote it in ``parse_request``); IPv4-mapped
  IPv6 addresses (a dual-stack listener) are written as IPv4.
* ``wsgi.url_scheme`` is ``https`` on a TLS connection; otherwise it is what a *trusted*
  peer says in ``X-Forwarded-Proto`` (or ``Forwarded: proto=``, whichever header the
  server believes), never what an untrusted client says.
* ``wsgi.errors`` writes lines to the ``minihttp.wsgi.errors`` logger (ERROR).
"""

from __future__ import annotations

import io
import logging
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from .. import __version__
from ..forwarded import FORWARDED, X_FORWARDED_FOR, TrustedProxies, trusted_proxies

__all__ = ["ERRORS", "ErrorStream", "base_environ", "fields_environ", "forwarded_proto",
           "normalize_root", "remote", "request_environ", "split_root", "url_scheme"]

errors_log = logging.getLogger("minihttp.wsgi.errors")

_CACHE_MAX = 1024
#: Field name as sent -> environ key, or "" for a field that is dropped.
_keys: dict[str, str] = {}
_SPECIAL = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _key(name: str) -> str:
    key = _keys.get(name)
    if key is None:
        if "_" in name:
            key = ""
        else:
            key = _SPECIAL.get(name.lower()) or "HTTP_" + name.upper().replace("-", "_")
        if len(_keys) >= _CACHE_MAX:
            _keys.clear()
        _keys[name] = key
    return key


class ErrorStream(io.TextIOBase):
    """``wsgi.errors``: text written here becomes log records, one per line.

    One stream serves every request; a line written in pieces by one thread is assembled in
    that thread's buffer, so threads never interleave inside a line.
    """

    def __init__(self, logger: logging.Logger = errors_log) -> None:
        super().__init__()
        self._logger = logger
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"wsgi.errors takes str, not {type(s).__name__}")
        pending = getattr(self._local, "pending", "") + s
        *lines, rest = pending.split("\n")
        for line in lines:
            self._logger.error("%s", line)
        self._local.pending = rest
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log a pending partial line (PEP 3333: flush makes output visible)."""
        rest = getattr(self._local, "pending", "")
        if rest:
            self._local.pending = ""
            self._logger.error("%s", rest)


#: The one ``wsgi.errors`` of the process.
ERRORS = ErrorStream()


def normalize_root(root: str) -> str:
    """A root path as compared with ``PATH_INFO``: ``""`` or ``/a/b`` (no trailing ``/``),
    as the latin-1 text of its UTF-8 bytes (the way ``PATH_INFO`` is written)."""
    root = root.strip()
    if root in ("", "/"):
        return ""
    if not root.startswith("/"):
        raise ValueError(f"root path must start with '/': {root!r}")
    return root.rstrip("/").encode("utf-8").decode("latin-1")


def split_root(path_info: str, root: str) -> tuple[str, str] | None:
    """``(SCRIPT_NAME, PATH_INFO)`` for a decoded path under ``root``; None outside it."""
    if not root:
        return "", path_info
    if path_info == root or path_info.startswith(root + "/"):
        return root, path_info[len(root):]
    return None


def remote(addr: Any) -> tuple[str, str]:
    """``(REMOTE_ADDR, REMOTE_PORT)`` of a client address; IPv4-mapped IPv6 as IPv4, and
    ``("", "")`` for a peer without an address (a Unix socket)."""
    if not addr or not isinstance(addr, tuple):
        return "", ""
    host = str(addr[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, str(addr[1])


def base_environ(server: Any, *, tls: bool, root: str, multiprocess: bool,
                 file_wrapper: Any, client_address: Any = None) -> dict[str, Any]:
    """The keys that are the same for every request of a connection (``REMOTE_*`` are
    the connection's peer: :func:`request_environ` replaces them when a trusted proxy
    names another client)."""
    name = getattr(server, "server_name", None) or "localhost"
    port = getattr(server, "server_port", None)
    host, remote_port = remote(client_address)
    return {
        "SERVER_NAME": str(name),
        "SERVER_PORT": "" if port is None else str(port),
        "SERVER_SOFTWARE": f"minihttp/{__version__}",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SCRIPT_NAME": root,
        "REMOTE_ADDR": host,
        "REMOTE_PORT": remote_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if tls else "http",
        "wsgi.errors": ERRORS,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": file_wrapper,
    }


def _origin_path(path: str) -> str:
    """The path of an absolute-form target (RFC 9112 section 3.2.2); others as they are
    (asterisk-form ``*``, authority-form)."""
    scheme, sep, rest = path.partition("://")
    if sep and scheme.isalpha():
        slash = rest.find("/")
        return "/" if slash < 0 else rest[slash:]
    return path


def fields_environ(base: dict[str, Any], handler: Any) -> dict[str, Any]:
    """``base`` plus what the request's header fields decide: ``HTTP_*``, ``CONTENT_TYPE``,
    ``CONTENT_LENGTH`` and a trusted proxy's ``wsgi.url_scheme`` (a new dict).

    The part of the environ a keep-alive client's next request often repeats byte for byte
    (the gateway keeps it per connection: :mod:`minihttp.wsgi.repeat`). Splitting the
    fields is most of it (measured: ~11k of the ~20k instructions of a WSGI hello's environ
    with three fields, benchmarks/icount_wsgi.py).
    """
    environ = base.copy()
    keys_get = _keys.get
    for name, value in handler.headers.items():
        key = keys_get(name)
        if key is None:
            key = _key(name)
        if not key:
            continue
        old = environ.get(key)
        if old is None:
            environ[key] = value
        else:
            environ[key] = old + ("; " if key == "HTTP_COOKIE" else ",") + value
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_FORWARDED" in environ:
        environ["wsgi.url_scheme"] = url_scheme(environ, handler)
    return environ


def request_environ(template: dict[str, Any], handler: Any, root: str,
                    wsgi_input: Any, copy: bool = True) -> dict[str, Any] | None:
    """The environ of the request ``handler`` just parsed: a copy of ``template`` (what
    :func:`fields_environ` made of its fields; ``copy=False``: ``template`` itself, a dict
    nobody else holds) with the request line's keys and ``wsgi.input``; None if its path is
    outside ``root`` (the application does not serve it).

    Measured (benchmarks/bench_wsgi.py --cpu): the environ is the gateway's largest cost per
    request, so the common case (origin-form, no ``%``, no root path) takes the short way.
    """
    target = handler.path
    path, _, query = target.partition("?")
    if path[:1] != "/":
        path = _origin_path(path)
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    if root:
        split = split_root(path, root)
        if split is None:
            return None
        path = split[1]
    # measured: copy + item sets 0.24 us, a {**base, ...} display 0.42
    environ = template.copy() if copy else template
    environ["REQUEST_METHOD"] = handler.command
    environ["SERVER_PROTOCOL"] = handler.request_version
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = target
    environ["wsgi.input"] = wsgi_input
    return environ


@lru_cache(maxsize=1024)
def _trusted_peer(peer: str, trusted: TrustedProxies) -> bool:
    """Memo of ``trusted.trusts(peer)`` (parsing an address costs microseconds)."""
    return trusted.trusts(peer)


def url_scheme(environ: dict[str, Any], handler: Any) -> str:
    """``wsgi.url_scheme``: the connection's, or a trusted proxy's ``X-Forwarded-Proto``
    (or ``Forwarded: proto=``, RFC 7239 section 5.4) when it says http or https."""
    scheme: str = environ["wsgi.url_scheme"]
    allowed = getattr(handler.server, "forwarded_allow_ips", None)
    if scheme == "https" or not allowed:
        return scheme
    trusted = trusted_proxies(allowed, getattr(handler.server, "forwarded_header",
                                               X_FORWARDED_FOR))
    peer = getattr(handler, "peer_address", None) or handler.client_address  # not __dict__
    if not peer or not isinstance(peer, tuple) or not _trusted_peer(str(peer[0]), trusted):
        return scheme
    if trusted.header == FORWARDED:
        value = forwarded_proto(environ.get("HTTP_FORWARDED", ""))
    else:
        value = environ.get("HTTP_X_FORWARDED_PROTO", "").rpartition(",")[2]
    value = value.strip().lower()
    return value if value in ("http", "https") else scheme


def forwarded_proto(value: str) -> str:
    """The ``proto=`` of the last (nearest) element of a ``Forwarded`` value, or ``""``."""
    last = value.rpartition(",")[2]
    for pair in last.split(";"):
        name, eq, val = pair.partition("=")
        if eq and name.strip().lower() == "proto":
            return val.strip().strip('"')
    return ""
