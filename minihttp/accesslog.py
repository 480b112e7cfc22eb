"""Access log lines in a chosen format: Common, Combined, JSON lines, or a template.

``--access-log-format`` of every command line. The handler's own line (Common Log Format,
written by ``BaseHTTPRequestHandler`` when the request ends) stays the default and costs
nothing extra; another format installs :class:`AccessLogMixin` on the handler class
(:func:`with_access_log`), which writes the line itself from the request it just served.

Rules of this module:

* Request data is attacker-controlled: in text formats control characters are escaped as in
  the default line (:func:`minihttp.logs.control_escape`); JSON lines are written by
  ``json.dumps``, which escapes them.
* Lines go to the ``minihttp.access`` logger at INFO, like the default line: ``-q`` and
  ``--access-log FILE`` act on them the same way. Other messages the handler logs through
  ``log_message`` (error responses) go to ``minihttp.error`` as before.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from functools import partial
from typing import Any

from .logs import access_log, control_escape, error_log

__all__ = ["ACCESS_FIELDS", "ACCESS_PRESETS", "AccessLogMixin", "access_format",
           "with_access_log"]


#: The fields an ``--access-log-format`` template may use, ``{name}``.
ACCESS_FIELDS = ("remote", "user", "time", "request", "method", "path", "protocol", "status",
                 "size", "referer", "agent", "host", "duration_ms", "pid")
ACCESS_PRESETS = {
    "common": '{remote} - {user} [{time}] "{request}" {status} {size}',
    "combined": '{remote} - {user} [{time}] "{request}" {status} {size} "{referer}" "{agent}"',
    "json": "json",
}


def access_format(text: str) -> str:
    """argparse type of ``--access-log-format``: a preset name or a checked template."""
    template = ACCESS_PRESETS.get(text, text)
    if template == "json":
        return template
    try:
        template.format_map({name: "" for name in ACCESS_FIELDS})
    except (KeyError, ValueError, IndexError) as exc:
        raise argparse.ArgumentTypeError(
            f"bad access log format {text!r} ({type(exc).__name__}: {exc}); fields: "
            f"{', '.join(ACCESS_FIELDS)}") from None
    return template


class AccessLogMixin:
    """Handler mix-in: access log lines in ``access_format`` (see :data:`ACCESS_FIELDS`).

    Only installed when the format is not the default (whose line the handler writes
    itself, for nothing when the logger is off). Request data is escaped as the default
    line's is (control characters), or written by ``json.dumps``.
    """

    access_format: str = ACCESS_PRESETS["common"]
    _started: float = 0.0
    headers: Any
    command: str | None
    path: str
    request_version: str

    def parse_request(self) -> bool:
        self._started = time.perf_counter()
        return bool(super().parse_request())  # type: ignore[misc]

    def log_message(self, format: str, *args: Any) -> None:
        if format != '"%s" %s %s' or len(args) != 3:  # an error line (log_error)
            if error_log.isEnabledFor(logging.INFO):
                error_log.info("%s - - [%s] %s", self.address_string(),  # type: ignore[attr-defined]
                               self.log_date_time_string(),  # type: ignore[attr-defined]
                               control_escape(format % args))
            return
        if not access_log.isEnabledFor(logging.INFO):
            return
        headers = getattr(self, "headers", None)
        field = headers.get if headers is not None else (lambda _n, d=None: d)
        started = self._started
        values: dict[str, Any] = {
            "remote": self.address_string(),  # type: ignore[attr-defined]
            # the authenticated user (minihttp.auth), CLF's authuser; "-" without one
            "user": (getattr(self, "remote_user", None) or "-").replace(" ", "\\x20"),
            "time": self.log_date_time_string(),  # type: ignore[attr-defined]
            "request": args[0], "method": self.command or "-",
            "path": getattr(self, "path", "-"), "protocol": getattr(self, "request_version", "-"),
            "status": args[1], "size": args[2],
            "referer": field("Referer", "-"), "agent": field("User-Agent", "-"),
            "host": field("Host", "-"),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else "-",
            "pid": os.getpid(),
        }
        if self.access_format == "json":
            for key in ("status", "size"):
                if str(values[key]).isdigit():
                    values[key] = int(values[key])
            access_log.info("%s", json.dumps(values, ensure_ascii=False))
        else:
            access_log.info("%s", control_escape(self.access_format.format_map(values)))


def with_access_log(handler: Any, template: str) -> Any:
    """``handler`` (a class, or a ``functools.partial`` of one) writing ``template`` lines;
    itself when the template is the default (the handler's own line, cheaper)."""
    if template == ACCESS_PRESETS["common"]:
        return handler
    if isinstance(handler, partial):
        return partial(with_access_log(handler.func, template), *handler.args,
                       **handler.keywords)
    return type(handler.__name__, (AccessLogMixin, handler), {"access_format": template})
