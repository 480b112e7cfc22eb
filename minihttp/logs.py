"""The server's loggers and the escaping of request data written to them.

``minihttp.access`` gets one INFO line per request in Common Log Format
(``host - user [date] "request line" status size``); ``minihttp.error`` gets error responses
(INFO), failures of handlers and of response framing (ERROR, with tracebacks) and client
disconnects (DEBUG). Request bytes are attacker-controlled: control characters in them are
escaped before they reach a log line, so a request cannot forge log lines or send terminal
escape sequences to whoever reads the log (as the standard library's ``_control_char_table``).
"""

from __future__ import annotations

import itertools
import logging

__all__ = ["access_log", "control_escape", "error_log"]

access_log = logging.getLogger("minihttp.access")
error_log = logging.getLogger("minihttp.error")

# C0 controls, DEL and C1 controls as \xNN; the backslash doubled so escapes stay unambiguous.
_CONTROL_TABLE = str.maketrans(
    {c: rf"\x{c:02x}" for c in itertools.chain(range(0x20), range(0x7F, 0xA0))})
_CONTROL_TABLE[ord("\\")] = r"\\"


def control_escape(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` and backslashes doubled."""
    return text.translate(_CONTROL_TABLE)
