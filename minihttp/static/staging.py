"""A file being uploaded: written under a temporary name, moved into place when complete.

Rules of this module:

* The temporary file is created in the target's own directory (so the final move is a
  rename within one file system, atomic), with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an
  existing file, never through a symlink) and mode ``0o666`` less the umask, as any new
  file. Its name starts with a dot and ends in ``.part``: ``.NAME.1a2b3c4d.part``.
* Nothing half-written ever carries the final name: the final name appears in one step,
  ``os.link`` (refuses an existing name: no overwrite, atomically) or ``os.replace`` (when
  replacing is allowed), only after the whole body was written and the file closed.
* :meth:`StagedFile.discard` removes the temporary file whatever happened (client gone,
  short or invalid body, too large, conflict); it is safe to call twice and after commit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from typing import BinaryIO

from minihttp.errors import Forbidden, HTTPError

__all__ = ["Conflict", "InsufficientStorage", "StagedFile", "is_staging"]

_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
          | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_STEM_MAX = 200  # bytes of the final name kept in the temporary one (NAME_MAX is 255)
_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG})


class Conflict(HTTPError):
    """409: the upload's target is in a state that does not allow it (RFC 9110 15.5.10)."""

    status = 409
    reason = "Conflict"
    close = False


class InsufficientStorage(HTTPError):
    """507: the disk is full or over quota (RFC 4918 section 11.5)."""

    status = 507
    reason = "Insufficient Storage"


_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.part")


def is_staging(name: str) -> bool:
    """Whether ``name`` is an upload on its way (:func:`_temp_name`'s form): listings leave
    it out and the upload handler never serves it, so nothing half-written is visible."""
    return name.endswith(".part") and _TEMP.fullmatch(name) is not None


def _temp_name(name: str) -> str:
    stem = name.encode("utf-8")[:_STEM_MAX].decode("utf-8", "ignore")
    return f".{stem}.{secrets.token_hex(4)}.part"


class StagedFile:
    """One upload on its way to ``directory/name`` (see the module's rules)."""

    def __init__(self, directory: str, name: str, buffer_size: int = 64 * 1024) -> None:
        self.directory = directory
        self.name = name
        #: Bytes written so far.
        self.size = 0
        self.committed = False
        #: The commit replaced a file of the same name.
        self.replaced = False
        for _attempt in range(16):
            path = os.path.join(directory, _temp_name(name))
            try:
                fd = os.open(path, _FLAGS, 0o666)
                break
            except FileExistsError:
                continue
            except PermissionError:
                raise Forbidden("the directory is not writable") from None
            except OSError as exc:
                if exc.errno in _FULL:
                    raise InsufficientStorage() from None
                raise
        else:  # pragma: no cover - 16 collisions of 32 random bits
            raise Conflict("could not create a temporary file")
        self.temp_path = path
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=buffer_size)

    @property
    def path(self) -> str:
        """Where the file goes when committed."""
        return os.path.join(self.directory, self.name)

    def write(self, data: bytes) -> None:
        """Append ``data`` (507 when the disk is full)."""
        assert self._file is not None, "write after finish"
        try:
            self._file.write(data)
        except OSError as exc:
            if exc.errno in _FULL:
                raise InsufficientStorage() from None
            raise
        self.size += len(data)

    def finish(self) -> None:
        """All content written: flush and close the temporary file (keeps it on disk)."""
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                if exc.errno in _FULL:
                    raise InsufficientStorage() from None
                raise

    def commit(self, replace: bool) -> bool:
        """Give the file its final name; True when it replaced a file of that name.

        Without ``replace`` an existing name is a :class:`Conflict` (and the temporary
        file stays, for :meth:`discard`).
        """
        self.finish()
        final = self.path
        if os.path.isdir(final):
            raise Conflict("a directory has that name")
        if replace:
            existed = os.path.lexists(final)
            os.replace(self.temp_path, final)
            self.committed = True
            self.replaced = existed
            return existed
        try:
            os.link(self.temp_path, final)
        except FileExistsError:
            raise Conflict("a file of that name exists") from None
        except OSError as exc:
            # A file system without hard links (FAT, some network ones): check, then
            # rename. Not atomic against a concurrent upload of the same name.
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                                 errno.ENOSYS):
                raise
            if os.path.lexists(final):
                raise Conflict("a file of that name exists") from None
            os.rename(self.temp_path, final)
            self.committed = True
            return False
        self.committed = True
        with contextlib.suppress(OSError):
            os.unlink(self.temp_path)
        return False

    def discard(self) -> None:
        """Close and remove the temporary file, if it is still there."""
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
        if not self.committed or os.path.lexists(self.temp_path):
            with contextlib.suppress(OSError):
                os.unlink(self.temp_path)

    def uncommit(self) -> None:
        """Remove the file this upload stored (to undo a form whose later file failed),
        unless it replaced one: the old contents are gone, the new ones are better than none."""
        if self.committed and not self.replaced:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.committed = False
