"""The server's loggers, where their lines go, and the escaping of request data in them.

``minihttp.access`` gets one INFO line per request in Common Log Format
(``host - user [date] "request line" status size``); ``minihttp.error`` gets error responses
(INFO), failures of handlers and of response framing (ERROR, with tracebacks) and client
disconnects (DEBUG). Request bytes are attacker-controlled: control characters in them are
escaped before they reach a log line, so a request cannot forge log lines or send terminal
escape sequences to whoever reads the log (as the standard library's ``_control_char_table``).

Where a line of ``BaseHTTPRequestHandler.log_message`` / ``log_error`` goes is a *route*,
decided from the logging configuration (:func:`access_route`, :func:`error_route`):

* **stderr, as http.server** (``_to_stderr``): nothing is configured for the logger (no
  handler on it, on ``minihttp`` or on the root logger: logging's "last resort" would
  apply, and it drops INFO). A program ported from ``http.server`` then prints what
  ``http.server`` prints, where it prints it: ``host - - [date] message`` on ``sys.stderr``.
  An explicit level above INFO on the logger or on ``minihttp`` silences it.
* **a line handler** (:class:`LineHandler`, what the command lines install): when it is the
  only handler a record would reach and nothing would change the line (no filter, no
  formatter of the user's), the pre-formatted line goes to its batching writer
  (:mod:`minihttp._linewriter`) without a ``LogRecord``.
* **logging** (:data:`VIA_LOGGING`): any other configuration. The record is logged as
  before (``"%s - - [%s] %s"`` and its three arguments), so the application's handlers,
  formatters and filters apply.
* **off** (None): the logger is disabled, or not enabled for INFO.

Rules of this module:

* A route is a pure function of the logging configuration; it is recomputed whenever a
  part of the configuration it depends on differs from the last check. A level change
  applies to the next line, as in logging. Handlers, filters and propagation are compared
  on every call made without a time (``log_message``, ``log_error``) and by the request
  path at most every :data:`RECHECK` (1 ms): a handler added or removed while the server
  runs takes effect on the next request, or within 1 ms under load.
* A :class:`LineHandler`'s lines, fast or through records, share one writer: their order is
  the order they were handed over, and records at WARNING or above are written at once.
* Nothing here raises into a request: writing to a broken descriptor drops the line.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ._linewriter import EXIT_TIMEOUT, LineWriter

__all__ = [
    "TO_STDERR",
    "VIA_LOGGING",
    "LineHandler",
    "RecordFunction",
    "RouteFunction",
    "access_log",
    "access_record",
    "access_route",
    "access_to",
    "configure",
    "control_escape",
    "error_log",
    "error_route",
    "log_date",
    "render_access",
]

#: Created before its children so that their parent never changes afterwards.
package_log = logging.getLogger("minihttp")
access_log = logging.getLogger("minihttp.access")
error_log = logging.getLogger("minihttp.error")

_INFO = logging.INFO

# C0 controls, DEL and C1 controls as \xNN; the backslash doubled so escapes stay unambiguous.
_CONTROL_TABLE = str.maketrans(
    {c: rf"\x{c:02x}" for c in itertools.chain(range(0x20), range(0x7F, 0xA0))})
_CONTROL_TABLE[ord("\\")] = r"\\"


def control_escape(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` and backslashes doubled."""
    # Every character the table maps but the backslash is a control (category Cc), which
    # isprintable() rejects: the common clean line skips the 1 us translate (measured:
    # timeit, 0.06 us for the test on a request line).
    if text.isprintable() and "\\" not in text:
        return text
    return text.translate(_CONTROL_TABLE)


#: A route: takes a whole line (``str``, no newline). Every route but :data:`VIA_LOGGING`
#: and :data:`TO_STDERR` (a :class:`LineHandler`'s writer) also takes an access record:
#: ``(client address, log_date(time), request line, status, size)`` (the handler's
#: ``client_address``, whose first item is the host, and the date text of the line's time:
#: :func:`log_date`), formatted on the writer's thread (:func:`render_access`).
Emit = Callable[[Any], None]


def _via_logging(text: str) -> None:  # pragma: no cover - a marker, never called
    raise AssertionError("VIA_LOGGING is a marker: log a record instead")


#: The route "log a record": the caller calls ``logger.info(...)`` itself.
VIA_LOGGING: Emit = _via_logging


def _to_stderr(text: Any) -> None:
    """http.server's ``log_message``: the line on ``sys.stderr`` (looked up each time, so
    a redirection by the program or its tests is followed)."""
    stream = sys.stderr
    if stream is not None:
        try:
            stream.write(text + "\n")
        except (OSError, ValueError):  # closed or broken stderr: a log never breaks a response
            pass


#: The route "as http.server": the line on ``sys.stderr``, now (takes only ``str``).
TO_STDERR: Emit = _to_stderr

_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
#: (text, the second it is for, the next second): a clock set back makes it stale too.
_log_date: tuple[str, float, float] = ("", 0.0, 0.0)


def log_date(now: float) -> str:
    """``http.server``'s ``log_date_time_string`` for the time ``now`` (local time), cached
    for the second (measured: 0.1 us instead of 1.3 us)."""
    cached = _log_date
    if cached[1] <= now < cached[2]:
        return cached[0]
    return _date_entry(now)[0]


def _date_entry(now: float) -> tuple[str, float, float]:
    """:func:`log_date`'s cache entry for ``now``, computed (and kept as the cache)."""
    global _log_date
    second = int(now // 1)
    year, month, day, hh, mm, ss, _x, _y, _z = time.localtime(second)
    text = f"{day:02d}/{_MONTHS[month]}/{year:04d} {hh:02d}:{mm:02d}:{ss:02d}"
    entry = _log_date = (text, float(second), float(second + 1))
    return entry


#: The ASCII characters an access line must not hold as they are (see control_escape).
_BAD_ASCII = bytes(range(0x20)) + b"\x7f\\"


def render_access(batch: list[Any]) -> list[str]:
    """The lines of a batch: access records (see :data:`Emit`) formatted as
    ``BaseHTTPRequestHandler.log_message`` would, ``str`` units as they are.

    A record equal to the previous one (client, date text, request line, size) with the
    same code object (200, HTTPStatus.OK and True compare equal) reuses its line (a health
    check, a load balancer's client address, a busy page, a benchmark); control
    characters are looked for in the new lines alone, all at once. A batch holding a
    ``str`` unit (an error line, a record's line) goes line by line. measured
    (instructions per line, valgrind --tool=callgrind, batches of 50,000 records, minus
    building them): the previous loop (records carrying the time, compared field by
    field) 0.9k for a repeated record; this (the date text in the record: one tuple
    comparison) 0.67k, 0.77k with the batch's join, encoding and write. Formatting every
    line with one ``%`` in C (``map``) instead cost ~3k a line (int conversions, the
    escape check of every line).
    """
    out: list[str] = []
    append = out.append
    new: list[str] = []
    fresh = new.append
    last: Any = None
    line = ""
    for item in batch:
        if item == last and item[3] is last[3]:
            append(line)
            continue
        if item.__class__ is not tuple:  # a str unit among them: rare
            return [_render_one(x) for x in batch]
        client, date, requestline, code, size = item
        line = f'{client[0] if client else "-"} - - [{date}] "{requestline}" {code} {size}'
        fresh(line)
        append(line)
        last = item
    joined = "".join(new)
    if joined.isascii() and len(joined.encode("ascii").translate(None, _BAD_ASCII)) == len(
            joined):  # measured: 60 ns a line; isprintable() scans at 125 ns a line
        return out
    return [_render_one(item) for item in batch]  # escape the message only, as log_message


def _render_one(item: Any) -> str:
    """One unit of :func:`render_access`'s batch, alone."""
    if item.__class__ is str:
        return str(item)
    client, date, requestline, code, size = item
    return (f"{client[0] if client else '-'} - - [{date}] "
            + control_escape(f'"{requestline}" {code} {size}'))


class LineHandler(logging.Handler):
    """A logging handler writing lines to a binary descriptor through a :class:`LineWriter`.

    ``with_pid`` prefixes every line with ``[pid] `` (pre-forked workers). Records are
    formatted as usual; minihttp's access and error lines skip the record when this handler
    is the only one they would reach and has no formatter or filter of the user's (see
    :meth:`fast`). ``fd`` is not closed by :meth:`close`.
    """

    def __init__(self, fd: int, *, with_pid: bool = False, level: int = logging.NOTSET,
                 close_fd: bool = False) -> None:
        super().__init__(level)
        self.writer = LineWriter(fd, render=render_access)
        self.with_pid = with_pid
        #: Close ``fd`` with the handler (a file :func:`access_to` opened).
        self.close_fd = close_fd
        self.reset_prefix()
        _line_handlers.add(self)

    def reset_prefix(self) -> None:
        """Set the writer's ``[pid] `` prefix (at creation, when ``with_pid`` changes, and
        in a forked child)."""
        self.writer.prefix = f"[{os.getpid()}] " if self.with_pid else ""

    def fast(self) -> bool:
        """Whether a line may skip the record: nothing of the user's would change it."""
        return self.formatter is None and not self.filters and self.level <= _INFO

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record))
            if record.levelno >= logging.WARNING:  # failures: at once, not within DELAY
                self.writer.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.writer.flush(EXIT_TIMEOUT)

    def close(self) -> None:
        self.writer.close()
        if self.close_fd:
            self.close_fd = False
            try:
                os.close(self.writer.fd)
            except OSError:
                pass
        super().close()


_line_handlers: weakref.WeakSet[LineHandler] = weakref.WeakSet()


def _reset_prefixes() -> None:
    for handler in list(_line_handlers):
        handler.reset_prefix()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_prefixes)


class RecordFunction(Protocol):
    """:data:`access_record`: ``(client address, request line, code, size, time) -> route
    or None``."""

    def __call__(self, client: Any, requestline: str, code: Any, size: Any,
                 now: float) -> Emit | None: ...


class RouteFunction(Protocol):
    """:func:`access_route` / :func:`error_route`: ``(now=-1.0) -> route``."""

    def __call__(self, now: float = -1.0) -> Emit | None: ...


class _NoHandler:
    """Our handler's settings when the route is not a LineHandler's (the full check reads
    the same fields whatever the route)."""

    def __init__(self) -> None:
        self.formatter: Any = None
        self.filters: list[Any] = []
        self.level = 0


_NOBODY = _NoHandler()
#: The record function's window when the route is not a LineHandler's: always shut.
_SHUT: tuple[Any, ...] = (math.inf, -math.inf, None, None, "")
#: A state before any check: no window, and a configuration that compares unequal to any.
_NO_STATE: tuple[Any, ...] = (_SHUT, (None, None, _NOBODY, None, None), math.inf, -math.inf)


def _router(lg: logging.Logger) -> tuple[RouteFunction, RecordFunction]:
    """The route function of ``lg``: recomputed when the configuration it depends on changes.

    ``now`` is ``time.time()`` (the request path) or negative (a full check now). The chain
    is fixed: the logger, ``minihttp`` (created first, so it is the parent), the root. The
    full check: the handlers, filters and propagation along the chain that logging would
    walk for a record of the logger, and our handler's settings, compared with what the
    last computation read; then the level: for the stderr route, the levels of the logger
    and of ``minihttp``, ``disabled`` and ``logging.disable``; for the others
    ``lg.disabled`` and ``logger.isEnabledFor(INFO)`` (logging's own cached answer, read
    in place). A full check with a time opens a *window*: until :data:`RECHECK` seconds
    later and within the same second, only the level is checked.

    The state is one tuple, replaced whole, so that threads recomputing at once never pair
    a route with another configuration: (the record function's window: (start, end, the
    LineHandler writer's ``pending`` list, that writer, the date text of the window's
    second), or :data:`_SHUT` when the route is not a LineHandler's; the configuration:
    (route, stderr levels or None, our handler or :data:`_NOBODY`, what the full check
    compares, the root's handlers); the window's start (its second) and end).

    Returned with it: the request path's record function (:data:`access_record`), which
    makes the same decision and, on the command line's route, hands the record over
    itself, in the same call.

    measured (Python 3.11 bytecodes executed, counted with ``sys.settrace`` opcode
    events): a record inside the window, 53 before this layout, 43 with it; a record
    with a full check, ~211 either way: ~3.0k instructions (benchmarks/icount_hello.py
    with and without ``--recheck 1e9``), paid on nearly every request under valgrind,
    where a request takes over a millisecond, and at most once a millisecond for real.
    The full check compares one tuple of what it reads with the last one (in C; field by
    field in Python was no cheaper: ``attrgetter`` was twice as dear); the window's
    bounds and date come from :func:`log_date`'s cache entry (no ``now // 1``: an fmod).
    """
    parent = lg.parent
    if parent is None:  # pragma: no cover - every logger but the root has a parent
        raise ValueError(f"{lg.name} has no parent logger")
    root = logging.root
    state = _NO_STATE
    # logging's own cache of isEnabledFor answers, read in place (cleared, never replaced,
    # when levels change). Read as an attribute, not through vars(): vars() turns the
    # logger's attributes into a dict, after which Python 3.11 no longer specializes
    # reading them, here and in logging itself (measured, the request path's record
    # function alone: 3.6k instructions a call with vars(), 3.4k without).
    cache = getattr(lg, "_cache", None)
    enabled_cache: dict[int, bool] = cache if isinstance(cache, dict) else {}

    def route(now: float = -1.0) -> Emit | None:
        nonlocal state
        st = state
        c = st[1]
        if not st[2] <= now < st[3]:  # the full check (a negative time is never inside)
            ours = c[2]
            if ((lg.handlers, parent.handlers, lg.filters, lg.propagate, parent.propagate,
                 ours.formatter, ours.filters, ours.level) != c[3]
                    or (parent.propagate and root.handlers != c[4])):
                return compute(now)
            if now >= 0.0:
                state = _opened(st[0], c, now)
        levels = c[1]
        if levels is not None:  # stderr (or off by a level): no handler at all
            if levels == (lg.level, parent.level, lg.disabled, lg.manager.disable):
                return c[0]  # type: ignore[no-any-return]
            return compute(now)
        if lg.disabled:
            return None
        try:
            enabled = enabled_cache[_INFO]
        except KeyError:
            enabled = lg.isEnabledFor(_INFO)
        return c[0] if enabled else None

    def compute(now: float) -> Emit | None:
        nonlocal state
        found: list[logging.Handler] = []
        node: logging.Logger | None = lg
        while node is not None:
            found.extend(node.handlers)
            node = node.parent if node.propagate else None
        ours: LineHandler | None = None
        levels: tuple[Any, ...] | None = None
        emit: Emit | None
        pkg: logging.Logger = parent
        if lg.parent is not pkg:  # "minihttp" replaced in the manager: never expected
            emit = VIA_LOGGING
        elif not found:  # logging's last resort would apply (and drop INFO): as http.server
            levels = (lg.level, pkg.level, lg.disabled, lg.manager.disable)
            level = lg.level or pkg.level
            enabled = not lg.disabled and lg.manager.disable < _INFO and level <= _INFO
            emit = _to_stderr if enabled else None
        elif len(found) == 1 and isinstance(found[0], LineHandler) and not lg.filters:
            ours = found[0]
            emit = ours.writer.write if ours.fast() else VIA_LOGGING
        else:
            emit = VIA_LOGGING
        writer = ours.writer if ours is not None and emit is not VIA_LOGGING else None
        held = ours if ours is not None else _NOBODY
        read = (list(lg.handlers), list(parent.handlers), list(lg.filters), lg.propagate,
                parent.propagate, held.formatter, list(held.filters), held.level)
        window = _SHUT if writer is None else (math.inf, -math.inf, writer.pending, writer, "")
        c = (emit, levels, held, read, list(root.handlers))
        state = _opened(window, c, now) if now >= 0.0 else (window, c, math.inf, -math.inf)
        if levels is None and not lg.isEnabledFor(_INFO):
            return None  # the route stays: the level is checked on every call
        return emit

    def record(client: Any, requestline: str, code: Any, size: Any, now: float) -> Emit | None:
        """The access record of a request that just ended, to its route: ``None`` when
        that is done (handed to the command line's writer, or the line is off), else the
        route (:data:`VIA_LOGGING`, :data:`TO_STDERR`) for the caller to write the line.

        ``now`` is the line's time (the request's ``send_response``, as http.server's);
        ``client`` the handler's ``client_address`` (its first item is the line's host,
        ``-`` when empty). Inside the window of a LineHandler's route (see
        :func:`_router`) this costs the level check and an append of ``(client, date
        text, request line, code, size)`` (:meth:`LineWriter.write` inlined: the thread
        woken when idle; the ``limit`` is checked when a window opens, so at most the
        lines of one window more wait); outside it, :func:`route` decides first.
        """
        since, until, pending, writer, date = state[0]
        if not since <= now < until:
            emit = route(now)  # the full check; opens the window
            since, until, pending, writer, date = state[0]
            if not since <= now < until:  # not a LineHandler's route (or a race): as route
                if emit is None or emit is VIA_LOGGING or emit is TO_STDERR:
                    return emit
                emit((client, log_date(now), requestline, code, size))
                return None
        if lg.disabled:
            return None
        try:
            if not enabled_cache[_INFO]:
                return None
        except KeyError:
            if not lg.isEnabledFor(_INFO):
                return None
        pending.append((client, date, requestline, code, size))
        if writer.idle:
            writer.kick()
        return None

    return route, record


def _opened(window: tuple[Any, ...], c: tuple[Any, ...], now: float) -> tuple[Any, ...]:
    """The state of a configuration ``c`` whose full check just passed at ``now``: a
    window until :data:`RECHECK` later and within ``now``'s second (its date text kept
    for the record function, when the route is a LineHandler's). Lines waiting past the
    writer's ``limit`` are written now (the record function only wakes the thread)."""
    date = _log_date
    if not date[1] <= now < date[2]:
        date = _date_entry(now)
    until = now + RECHECK
    if until > date[2]:
        until = date[2]
    writer = window[3]
    if writer is None:  # not a LineHandler's route: the record function's window stays shut
        return (window, c, date[1], until)
    if len(writer.pending) >= writer.limit:
        writer.kick()
    return ((date[1], until, window[2], writer, date[0]), c, date[1], until)


#: Seconds between two full checks of the handlers by the request path (see _router): a
#: handler added or removed while requests come less than this apart takes effect within
#: it; a level, on the next line.
RECHECK = 0.001

#: The route of a ``minihttp.access`` INFO line (None: not logged). Cheap: call per line,
#: with ``time.time()`` on the request path (see _router). ``access_record``: the request
#: path's default line, handed over in the same call when the route is a LineHandler's.
access_route, access_record = _router(access_log)
#: The route of a ``minihttp.error`` INFO line (error responses).
error_route = _router(error_log)[0]


def configure(quiet: bool = False, with_pid: bool = False, fd: int | None = None) -> None:
    """The command lines' logging: ``minihttp``'s records at INFO and above to ``fd``
    (default: standard error) through a :class:`LineHandler`, not propagated to the root.

    ``quiet`` silences the per-request lines (access log, error responses at INFO);
    failures (ERROR) stay. ``with_pid`` prefixes lines with the process id (``--workers``).
    Called again (in-process tests, a second command), it adjusts what it installed.
    """
    pkg = package_log
    if not pkg.handlers:
        pkg.addHandler(_default_handler(fd))
    for handler in pkg.handlers:
        if isinstance(handler, LineHandler):
            handler.with_pid = with_pid
            handler.reset_prefix()
        elif isinstance(handler, logging.StreamHandler):
            handler.setFormatter(logging.Formatter(
                "[%(process)d] %(message)s" if with_pid else "%(message)s"))
    pkg.setLevel(logging.INFO)
    pkg.propagate = False
    # Per-request lines: access log, and error responses (INFO on minihttp.error).
    # Handler failures stay visible: they are logged at ERROR.
    for logger in (access_log, error_log):
        logger.setLevel(logging.WARNING if quiet else logging.NOTSET)


def access_to(path: str) -> LineHandler:
    """``--access-log FILE``: the access log alone to ``path``, appended (created if
    needed; ``-``: standard output), through a :class:`LineHandler` on
    ``minihttp.access`` that does not propagate. Raises OSError if it cannot be opened."""
    if path == "-":
        sys.stdout.flush()
        handler = LineHandler(sys.stdout.fileno())
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        handler = LineHandler(fd, close_fd=True)
    for old in list(access_log.handlers):
        access_log.removeHandler(old)
        old.close()
    access_log.addHandler(handler)
    access_log.propagate = False
    return handler


def _default_handler(fd: int | None) -> logging.Handler:
    if fd is None:
        try:
            stream = sys.stderr
            if stream is None:
                raise ValueError("no stderr")
            stream.flush()
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # redirected to an object without a
            return logging.StreamHandler()  # descriptor (a test's capture): write to it
    return LineHandler(fd)
