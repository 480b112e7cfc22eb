"""``python -m minihttp``: see :mod:`minihttp.cli` (static file server, ``proxy`` mode)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
