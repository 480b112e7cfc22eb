"""minihttp: a minimal, fast and strict HTTP/1.1 server framework.

The programming model is the standard library's ``socketserver`` + ``http.server``;
the names are re-exported here as the modules that define them land.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
