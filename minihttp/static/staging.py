"""A file being uploaded: written under a temporary name, moved into place when complete.

Rules of this module:

* The target directory is held open (:class:`TargetDir`, from :func:`open_target`): opened
  from the served root down, one segment at a time with ``O_NOFOLLOW | O_DIRECTORY``, and
  every later step (create, link, rename, unlink, the existence checks) names files
  relative to that descriptor (``dir_fd``). So a directory swapped for a symlink after the
  upload's checks can never take the file elsewhere: the swap either happened before the
  walk (which then refuses the link: 404) or after it (the descriptor still names the
  directory inside the root). Where the platform has no ``dir_fd`` calls, paths are used.
* The temporary file is created in the target's own directory (so the final move is a
  rename within one file system, atomic), with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an
  existing file, never through a symlink) and mode ``0o666`` less the umask, as any new
  file. Its name starts with a dot and ends in ``.part``: ``.NAME.1a2b3c4d.part``.
* Nothing half-written ever carries the final name: the final name appears in one step,
  ``os.link`` (refuses an existing name: no overwrite, atomically) or ``os.replace`` (when
  replacing is allowed), only after the whole body was written and the file closed.
* Durable: the file's contents are ``fsync``-ed before it gets its name, and the
  directory after, so after a power cut the name is absent or names the whole file, never
  an empty or partial one. A file system that cannot sync (``EINVAL``) is carried on with;
  a directory that cannot be synced (some file systems, a descriptor opened without read
  permission) too: the contents are safe, the name may be lost. Measured, two fsyncs per
  file (one PUT at a time to a threaded server on loopback, ext4 on a shared virtual disk,
  median of 30 rounds, runs alternating, indicative only): with the disk quiet, 1 MiB
  1.35 -> 2.2 ms, ten 4 KiB files 4.7 -> 7-9.6 ms (0.1-0.5 ms per fsync); while others
  loaded the disk, 8 ms and 63-76 ms (3.5 ms per fsync: the disk's queue). Small next to
  an upload's transfer, and the point of it: always on, no switch.
* :meth:`StagedFile.discard` removes the temporary file whatever happened (client gone,
  short or invalid body, too large, conflict); it is safe to call twice and after commit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from types import TracebackType
from typing import BinaryIO

from minihttp.errors import Forbidden, HTTPError, NotFound

__all__ = ["Conflict", "InsufficientStorage", "StagedFile", "TargetDir", "is_staging",
           "open_target"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
          | getattr(os, "O_BINARY", 0))
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
#: Whether every call of an upload can name files relative to a directory descriptor.
_DIR_FD = (hasattr(os, "O_DIRECTORY") and bool(_NOFOLLOW)
           and {os.open, os.link, os.rename, os.unlink, os.stat} <= os.supports_dir_fd)
_LINK_NOFOLLOW = os.link in os.supports_follow_symlinks
_STEM_MAX = 200  # bytes of the final name kept in the temporary one (NAME_MAX is 255)
_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG})
#: What fsync says on a file system that cannot sync (the contents go as they would).
_CANNOT_SYNC = frozenset({errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL),
                          getattr(errno, "EOPNOTSUPP", errno.EINVAL)})
#: What opening a segment with O_NOFOLLOW | O_DIRECTORY says when it is a symlink (ELOOP;
#: EMLINK on FreeBSD) or not a directory.
_NOT_PLAIN_DIR = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


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


class TargetDir:
    """An upload's target directory: its real path and, where the platform has ``dir_fd``
    calls, a descriptor of it that every step of the upload names files from."""

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    def at(self, name: str) -> str:
        """What to pass, with ``dir_fd=self.fd``, to name ``name`` in this directory."""
        return name if self.fd is not None else os.path.join(self.path, name)

    def lexists(self, name: str) -> bool:
        """Whether ``name`` exists here (a dangling symlink counts)."""
        try:
            os.stat(self.at(name), dir_fd=self.fd, follow_symlinks=False)
        except (OSError, ValueError):
            return False
        return True

    def is_dir(self, name: str) -> bool:
        """Whether ``name`` here is a directory (or a symlink to one)."""
        try:
            return stat.S_ISDIR(os.stat(self.at(name), dir_fd=self.fd).st_mode)
        except (OSError, ValueError):
            return False

    def sync(self) -> None:
        """fsync the directory, so the names just linked or renamed in it last; carries on
        where that fails (some file systems; a descriptor opened with ``O_PATH``)."""
        fd = self.fd
        try:
            if fd is None:
                fd = os.open(self.path, _DIR_FLAGS)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            if self.fd is None:
                os.close(fd)

    def close(self) -> None:
        """Close the descriptor (safe to call twice)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> TargetDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _open_dir(name: str, dir_fd: int | None, flags: int) -> int:
    """Open a directory for reading, or with ``O_PATH`` when it may not be read (a
    write-only upload directory: then it cannot be fsynced, see :meth:`TargetDir.sync`)."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        o_path = getattr(os, "O_PATH", 0)
        if not o_path:
            raise
        return os.open(name, (flags & ~os.O_RDONLY) | o_path, dir_fd=dir_fd)


def open_target(root: str, path: str) -> TargetDir:
    """Hold open the existing directory ``path``, which must be inside ``root`` with every
    symlink resolved (a link inside the root that stays inside it is fine).

    The resolved path is then opened segment by segment from the root's, each with
    ``O_NOFOLLOW``: a segment that became a symlink (or anything but a directory) since
    it was resolved is refused (404, as a link leading out), one that vanished is a 409.
    """
    real_root = os.path.realpath(root)
    try:
        real = os.path.realpath(path)
        inside = os.path.commonpath([real, real_root]) == real_root
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise NotFound()  # a symlink leads out: as for reads, nothing is there
    if not _DIR_FD:
        return TargetDir(real, None)
    rest = os.path.relpath(real, real_root)
    try:
        # The root itself is the configuration's: its own path is followed as given.
        fd = _open_dir(real_root, None, _DIR_FLAGS)
        try:
            for segment in [] if rest == os.curdir else rest.split(os.sep):
                below = _open_dir(segment, fd, _DIR_FLAGS | _NOFOLLOW)
                os.close(fd)
                fd = below
        except BaseException:
            os.close(fd)
            raise
    except FileNotFoundError:
        raise Conflict("the directory does not exist (uploads create no directories)"
                       ) from None
    except PermissionError:
        raise Forbidden("the directory is not writable") from None
    except OSError as exc:
        if exc.errno in _NOT_PLAIN_DIR:
            raise NotFound() from None  # swapped for a link since it was resolved
        raise
    return TargetDir(real, fd)


def _fsync_file(fd: int) -> None:
    """fsync an upload's contents (a file system that cannot sync is carried on with)."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _CANNOT_SYNC:
            raise


class StagedFile:
    """One upload on its way to ``directory/name`` (see the module's rules); ``directory``
    stays open (the caller closes it) until :meth:`discard` or :meth:`uncommit` is done."""

    def __init__(self, directory: TargetDir, name: str, buffer_size: int = 64 * 1024) -> None:
        self.target = directory
        self.directory = directory.path
        self.name = name
        #: Bytes written so far.
        self.size = 0
        self.committed = False
        #: The commit replaced a file of the same name.
        self.replaced = False
        for _attempt in range(16):
            temp = _temp_name(name)
            try:
                fd = os.open(directory.at(temp), _FLAGS, 0o666, dir_fd=directory.fd)
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
        self.temp_name = temp
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=buffer_size)

    @property
    def path(self) -> str:
        """Where the file goes when committed."""
        return os.path.join(self.directory, self.name)

    @property
    def temp_path(self) -> str:
        """The temporary file's path (for messages and tests)."""
        return os.path.join(self.directory, self.temp_name)

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
        """All content written: flush, fsync and close the temporary file
        (keeps it on disk). Its contents are on the disk before it can get its name."""
        f, self._file = self._file, None
        if f is not None:
            try:
                try:
                    f.flush()
                    _fsync_file(f.fileno())
                finally:
                    f.close()
            except OSError as exc:
                if exc.errno in _FULL:
                    raise InsufficientStorage() from None
                raise

    def commit(self, replace: bool) -> bool:
        """Give the file its final name; True when it replaced a file of that name.

        Without ``replace`` an existing name is a :class:`Conflict` (and the temporary
        file stays, for :meth:`discard`). The directory is fsynced after.
        """
        self.finish()
        target = self.target
        fd, temp, final = target.fd, target.at(self.temp_name), target.at(self.name)
        if target.is_dir(self.name):
            raise Conflict("a directory has that name")
        if replace:
            existed = target.lexists(self.name)
            os.replace(temp, final, src_dir_fd=fd, dst_dir_fd=fd)
            self.committed = True
            self.replaced = existed
            target.sync()
            return existed
        try:
            if _LINK_NOFOLLOW:  # link the file we made, never what a symlink there names
                os.link(temp, final, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            else:  # pragma: no cover - platforms without linkat
                os.link(temp, final, src_dir_fd=fd, dst_dir_fd=fd)
        except FileExistsError:
            raise Conflict("a file of that name exists") from None
        except OSError as exc:
            # A file system without hard links (FAT, some network ones): check, then
            # rename. Not atomic against a concurrent upload of the same name.
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                                 errno.ENOSYS):
                raise
            if target.lexists(self.name):
                raise Conflict("a file of that name exists") from None
            os.rename(temp, final, src_dir_fd=fd, dst_dir_fd=fd)
            self.committed = True
            target.sync()
            return False
        self.committed = True
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=fd)
        target.sync()  # the new name (and the temporary one gone) on the disk
        return False

    def discard(self) -> None:
        """Close and remove the temporary file, if it is still there."""
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
        if not self.committed or self.target.lexists(self.temp_name):
            with contextlib.suppress(OSError, ValueError):
                os.unlink(self.target.at(self.temp_name), dir_fd=self.target.fd)

    def uncommit(self) -> None:
        """Remove the file this upload stored (to undo a form whose later file failed),
        unless it replaced one: the old contents are gone, the new ones are better than none."""
        if self.committed and not self.replaced:
            with contextlib.suppress(OSError, ValueError):
                os.unlink(self.target.at(self.name), dir_fd=self.target.fd)
            self.committed = False
