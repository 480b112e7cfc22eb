"""``--reload``: run the command in a child process and restart it when a source file changes.

For development only. The parent process never imports the application: it starts
``python -m minihttp <the same arguments without --reload>`` with the same standard
streams, polls the modification times of the ``.py`` files under the watched directory
(the current one) once a second, and on a change stops the child with SIGTERM (in-flight
requests finish) and starts a new one. No new dependency (no inotify binding): a poll of a
few hundred files a second costs nothing worth measuring.

Rules of this module:

* The parent exits when the child exits on its own (a bad target: its status, 2, is
  returned; a crash: the parent waits for the next change, then tries again).
* SIGINT/SIGTERM to the parent stops the child (SIGTERM, then SIGKILL after a grace) and
  then the parent; whatever ends the parent's loop, the child is stopped in a ``finally``.
* The scan is bounded (``MAX_FILES``) and skips hidden directories, ``__pycache__`` and
  virtual environments.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

__all__ = ["MAX_FILES", "POLL_INTERVAL", "run_with_reload", "snapshot"]

log = logging.getLogger("minihttp.reload")

POLL_INTERVAL = 1.0
MAX_FILES = 20_000
_SKIP = {"__pycache__", "node_modules", "venv", ".venv", "env", "site-packages"}


def snapshot(root: Path) -> dict[str, float]:
    """``{path: mtime}`` of the ``.py`` files under ``root`` (bounded, see the rules)."""
    found: dict[str, float] = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in _SKIP]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                try:
                    found[path] = os.stat(path).st_mtime
                except OSError:
                    continue
                if len(found) >= MAX_FILES:
                    return found
    return found


def _changed(old: dict[str, float], new: dict[str, float]) -> str | None:
    for path, mtime in new.items():
        if old.get(path) != mtime:
            return path
    for path in old:
        if path not in new:
            return path
    return None


def run_with_reload(argv: Sequence[str], root: Path | None = None,
                    interval: float = POLL_INTERVAL) -> int:
    """Run ``python -m minihttp ARGV`` and restart it on changes; the exit status."""
    root = root or Path.cwd()
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    child: subprocess.Popen[bytes] | None = None
    try:
        seen = snapshot(root)
        child = _start(argv)
        while not stopping:
            time.sleep(interval)
            if child is not None and child.poll() is not None:
                if child.returncode == 2:  # a usage error or a bad target: say it once
                    return 2
                log.warning("server exited with status %d; waiting for a change",
                            child.returncode)
                child = None
            now = snapshot(root)
            path = _changed(seen, now)
            if path is None:
                continue
            seen = now
            log.warning("%s changed: restarting", os.path.relpath(path, root))
            _stop(child)
            child = _start(argv)
        return 0
    finally:
        _stop(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "minihttp", *argv])


def _stop(child: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
