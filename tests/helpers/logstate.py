"""A clean, restored logging configuration for tests of where minihttp's log lines go, and a
pipe drained by a thread (where a LineHandler writes in those tests).

pytest puts its own handlers on the root logger while a test runs; a test of the routes of
:mod:`minihttp.logs` (which look at the root's handlers) needs them out of the way, and the
configuration it makes undone afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

_NAMES = ("", "minihttp", "minihttp.access", "minihttp.error")


@contextlib.contextmanager
def access_messages() -> Iterator[list[str]]:
    """The ``minihttp.access`` logger's messages while the block runs (the logger at INFO,
    its level and handlers restored after)."""
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    keep = Keep()
    log = logging.getLogger("minihttp.access")
    level = log.level
    log.addHandler(keep)
    log.setLevel(logging.INFO)
    try:
        yield got
    finally:
        log.removeHandler(keep)
        log.setLevel(level)


@contextlib.contextmanager
def isolated_logging() -> Iterator[None]:
    """No handler, filter or level on the root and minihttp's loggers inside the block (the
    state of a program that configured nothing); everything restored after it. Handlers
    added inside are closed."""
    saved: list[tuple[logging.Logger, dict[str, Any]]] = []
    for name in _NAMES:
        logger = logging.getLogger(name)
        saved.append((logger, {"handlers": list(logger.handlers),
                               "filters": list(logger.filters), "level": logger.level,
                               "propagate": logger.propagate, "disabled": logger.disabled}))
        logger.handlers.clear()
        logger.filters.clear()
        logger.setLevel(logging.WARNING if not name else logging.NOTSET)
        logger.propagate = True
        logger.disabled = False
    disable = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    try:
        yield
    finally:
        for logger, state in saved:
            for handler in logger.handlers:
                if handler not in state["handlers"]:
                    handler.close()
            logger.handlers[:] = state["handlers"]
            logger.filters[:] = state["filters"]
            logger.setLevel(state["level"])
            logger.propagate = state["propagate"]
            logger.disabled = state["disabled"]
        logging.disable(disable)


class PipeReader:
    """The read end of a pipe drained by a thread (``pause`` seconds between reads of at
    most ``size`` bytes: a slow reader keeps the pipe full)."""

    def __init__(self, fd: int, size: int = 65536, pause: float = 0.0) -> None:
        self.fd, self.size, self.pause = fd, size, pause
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            data = os.read(self.fd, self.size)
            if not data:
                break
            self.chunks.append(data)
            if self.pause:
                time.sleep(self.pause)

    def data(self, timeout: float = 20.0) -> bytes:
        """Everything, once the write end is closed (bounded wait)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pipe was not closed"
        os.close(self.fd)
        return b"".join(self.chunks)

    def text(self) -> str:
        return b"".join(self.chunks).decode()
