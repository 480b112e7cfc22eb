"""minihttp: a minimal, fast and strict HTTP/1.1 server framework.

The programming model is the standard library's ``socketserver`` + ``http.server``: code
written for ``http.server`` runs after changing its imports to ``minihttp`` (or
``minihttp.server``). The proxy is imported on first use, so that serving files or writing
handlers never pays for loading h11.
"""

from __future__ import annotations

from typing import Any

# Before the imports below: submodules read it while the package initialises.
__version__ = "0.1.0"

from .config import DEFAULT_LIMITS, Limits
from .errors import HTTPError
from .eventloop import PooledHTTPServer
from .headers import Headers
from .server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from .static import SimpleHTTPRequestHandler

__all__ = [
    "DEFAULT_LIMITS",
    "BaseHTTPRequestHandler",
    "HTTPError",
    "HTTPServer",
    "Headers",
    "Limits",
    "PooledHTTPServer",
    "ProxyHandler",
    "ProxyServer",
    "SimpleHTTPRequestHandler",
    "ThreadingHTTPServer",
    "__version__",
]

#: Names served lazily (PEP 562): attribute -> module that defines it.
_LAZY = {"ProxyHandler": "proxy", "ProxyServer": "proxy"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'minihttp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
