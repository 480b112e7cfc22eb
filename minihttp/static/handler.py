"""``SimpleHTTPRequestHandler``: serve a directory, compatible with ``http.server``'s.

The public surface is the standard library's (``directory=``, ``index_pages``,
``extensions_map``, ``translate_path``, ``list_directory``, ``guess_type``, ``send_head``,
``copyfile``, ``do_GET``, ``do_HEAD``), so subclasses written for ``http.server`` keep working.
Underneath, each concern lives in its own pure module:

* :mod:`minihttp.static.paths` maps URLs to paths and keeps every request inside the directory;
* :mod:`minihttp.static.conditional` builds ETag / Last-Modified and evaluates preconditions;
* :mod:`minihttp.static.ranges` answers ``Range`` (206, multipart/byteranges, 416);
* :mod:`minihttp.static.encoding` picks a precompressed ``.br`` / ``.gz`` sibling;
* :mod:`minihttp.static.compress` compresses text-like bodies on the fly (``compress``);
* :mod:`minihttp.static.respcache` keeps compressed bodies and prebuilt whole responses;
* :mod:`minihttp.static.listing` renders directory listings;
* :mod:`minihttp.static.types` names media types (our table; the machine's only for the rest).

Rules of this module:

* Only GET and HEAD are defined; OPTIONS gets the server's 204 with ``Allow`` (RFC 9110
  section 9.3.7), any other method the server's 501, as with the standard library (RFC 9110
  section 15.6.2 allows 501 for methods the resource does not implement).
* Site options (:mod:`minihttp.static.site`: ``spa``, ``not_found_page``,
  ``directory_listing``, ``hide_dotfiles``) cost nothing while off, and are consulted only
  before serving (dotfiles) or when the answer would be 404. Under ``spa``, every answer to
  a missing extension-less GET/HEAD (the index page, its 304, the 404) carries ``Vary:
  Accept``, and none of them is kept as, or answered from, a prebuilt answer.
* ``send_head`` returns a readable object or None, as in ``http.server``. For files it returns
  a :class:`FileBody` that knows which byte segments to send, so ``copyfile`` can send them
  zero-copy with ``sendfile`` (when the writer offers it) and otherwise in 64 KiB pieces; a
  file is never read into memory whole.
* No request, however hostile, produces a traceback: path and file errors become 400, 403 or
  404 through :class:`~minihttp.errors.HTTPError`.

Speed (a small file costs ``open``, ``fstat``, one ``read``, ``close`` and one ``access`` per
precompressed suffix, and leaves with its head in one send): the file is opened first and
``fstat`` tells file from directory (no ``stat`` before the ``open``); containment costs no
``lstat`` for the file itself (:func:`~minihttp.static.paths.open_beneath`); bodies under
:data:`SENDFILE_MIN` are read whole before the head is written (so Content-Length is what was
read), larger ones go by ``sendfile``; URL-to-path translations are memoized (a pure function
of the URL and the directory); media types are cached per extension. A small unchanged file
asked for plainly (GET or HEAD without precondition, Range or Origin, on a kept-alive
connection) costs less still: its whole answer but the status, Server, Date and framing lines
was kept by the general path (:class:`~minihttp.static.respcache.Prebuilt`, the handler's own
extra fields included) and goes out after the ``lstat`` of the file and of its directory
(``_send_prebuilt``). Measured (``benchmarks/cpu_static.py``, 3 runs alternating with the
tree before, shared machine): 13.3 -> 10.8 us of CPU per request for a file in the root,
16.9 -> 12.4 us one directory down. A keep-alive client repeating that request's head
byte for byte is answered before the head is parsed (:mod:`minihttp.static.hit`):
measured the same way, 9.3-10.1 -> 4.8-5.1 us (``--parse``, every head parsed: 9.9-10.3);
instructions per request (``valgrind --tool=callgrind``, PYTHONHASHSEED=0, cpu_static's
``per_request(n)``, n=4000 minus n=1000): 101.3k -> 48.3k (hello: ~51k), 105.4k when
every head is parsed (the head remembered anew on each hit). A regex in ``Headers.has_any``
instead of lowering the block was tried: 1.2k more, not kept.

Compression (``compress``, off by default): a text-like file of at least ``compress_min``
bytes is one resource with a representation per content coding (RFC 9110 section 8.4):
``Vary: Accept-Encoding`` on all of them, an ETag per coding (``"...-gzip"``), so
``If-None-Match`` matches the variant it was given for; a request with ``Range`` gets the
identity representation (ranges of the compressed bytes would not survive a coding change
between requests). Files up to ``compress_whole_max`` are compressed whole (then kept in
``compressed_cache``), larger ones stream (chunked), one piece of the file at a time. A
precompressed sibling the client accepts wins over compressing.
"""

from __future__ import annotations

import io
import os
import posixpath
import secrets
import shutil
import ssl
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from minihttp import __version__
from minihttp.errors import HTTPError
from minihttp.server import BaseHTTPRequestHandler
from minihttp.static import cache as _smallfiles
from minihttp.static import hit
from minihttp.static.cache import Identity, SmallFileCache, identity
from minihttp.static.compress import CompressedStream, available, compress, compressible
from minihttp.static.conditional import Validators, evaluate, if_range_matches, validators_for
from minihttp.static.encoding import choose_cached as _choose
from minihttp.static.encoding import choose_encoding
from minihttp.static.listing import render_listing, scan_directory
from minihttp.static.paths import (
    Forbidden,
    NotFound,
    contained,
    contained_fast,
    has_trailing_slash,
    open_beneath,
    plain_dirs,
    redirect_location,
    split_target,
    translate,
    url_segments,
)
from minihttp.static.ranges import (
    FULL,
    Part,
    RangeDecision,
    content_range,
    multipart_layout,
    parse_range,
)
from minihttp.static.respcache import ByteCache
from minihttp.static.site import PAGE_MAX, accepts_html, hidden_name, hidden_path, spa_candidate
from minihttp.static.staging import is_staging
from minihttp.static.types import WEB_TYPES, machine_type

__all__ = ["FileBody", "SimpleHTTPRequestHandler"]

#: Size of each read when a file is copied without ``sendfile``.
CHUNK_SIZE = 64 * 1024
#: Smallest file segment sent with ``sendfile``; smaller ones go out with the head in one send.
SENDFILE_MIN = 64 * 1024

#: Request fields (lower case) that make a file's answer anything but a plain 200.
_PRECONDITION_FIELDS = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"})

#: The precondition fields (RFC 9110 section 13.1), for the streamed compressed answer.
_CONDITIONALS = ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")

#: The default :attr:`SimpleHTTPRequestHandler.small_file_cache`, shared by all handlers.
_SMALL_FILES = SmallFileCache(max_file=SENDFILE_MIN - 1)
#: The default :attr:`SimpleHTTPRequestHandler.compressed_cache` (bodies up to 1 MiB).
_COMPRESSED = ByteCache(max_entry=1024 * 1024, max_total=32 * 1024 * 1024)
#: The default :attr:`SimpleHTTPRequestHandler.response_cache`: bodies below SENDFILE_MIN
#: (identity) and compressed ones, 16 MiB in all.
_RESPONSES = ByteCache(max_entry=1024 * 1024, max_total=16 * 1024 * 1024)

#: Last-Modified strings by timestamp (HTTP-dates are a pure function of it), bounded.
_dates: dict[int, str] = {}
_DATES_MAX = 4096

#: Flags of every file open: never block on a FIFO, never leak the fd into a child.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
               | getattr(os, "O_CLOEXEC", 0))


class FileBody(io.RawIOBase):
    """The body ``send_head`` prepared: literal byte pieces and segments of one open file.

    Reading it (``read``/``readinto``, e.g. via ``shutil.copyfileobj``) yields exactly the
    response body; :meth:`SimpleHTTPRequestHandler.copyfile` instead walks :attr:`pieces`
    to send file segments zero-copy. Closing it closes the file.
    """

    def __init__(self, file: BinaryIO | None, pieces: Sequence[Part], length: int) -> None:
        super().__init__()
        self.file = file
        self.pieces = list(pieces)
        self.length = length
        self._index = 0  # current piece, for readinto
        self._done = 0  # bytes of the current piece already read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self.pieces):
            piece = self.pieces[self._index]
            if isinstance(piece, bytes):
                data = piece[self._done : self._done + len(view)]
            elif self._done < piece[1] and self.file is not None:
                offset, count = piece
                self.file.seek(offset + self._done)
                data = self.file.read(min(len(view), count - self._done))
                if not data:
                    raise OSError("file shrank while being served")
            else:
                data = b""
            if not data:
                self._index, self._done = self._index + 1, 0
                continue
            view[: len(data)] = data
            self._done += len(data)
            return len(data)
        return 0

    def close(self) -> None:
        try:
            if self.file is not None:
                self.file.close()
        finally:
            super().close()


#: What ``send_head`` returns and ``copyfile`` copies: a binary file object.
_Body = IO[bytes] | FileBody | CompressedStream


@dataclass(frozen=True, slots=True)
class _Cached:
    """What the small-file cache keeps with a file's contents, derived from the same stat
    result and path, so it is exactly as fresh as the contents."""

    validators: Validators
    ext: str  # the path's extension, for guess_type
    date: str  # Last-Modified as the default date_time_string formats it
    #: The file's directory identity and the ``precompressed`` list for which no sibling
    #: existed (see ``_no_siblings``), or None.
    no_siblings: tuple[Identity, Sequence[tuple[str, str]]] | None = None


_base_date_time_string = BaseHTTPRequestHandler.date_time_string


def _base_date(handler: BaseHTTPRequestHandler, timestamp: int) -> str:
    """The default ``date_time_string(timestamp)``, memoized by timestamp (a pure function)."""
    date = _dates.get(timestamp)
    if date is None:
        date = _base_date_time_string(handler, timestamp)
        if len(_dates) >= _DATES_MAX:
            _dates.clear()
        _dates[timestamp] = date
    return date


class SimpleHTTPRequestHandler(BaseHTTPRequestHandler):
    """Serve files from ``directory`` (default: the current directory) for GET and HEAD."""

    server_version = "minihttp/" + __version__
    index_pages: Sequence[str] = ("index.html", "index.htm")
    extensions_map: dict[str, str] = {
        ".gz": "application/gzip",
        ".Z": "application/octet-stream",
        ".bz2": "application/x-bzip2",
        ".xz": "application/x-xz",
        **WEB_TYPES,
    }
    # Site options (:mod:`minihttp.static.site`), consulted off the hot path only.
    #: A missing path that a browser navigates to (no extension) gets the root's index page.
    spa: bool = False
    #: A page at the root sent as the body of every 404 when it exists (None: off).
    not_found_page: str | None = None
    #: List directories that have no index page (off: they are 404).
    directory_listing: bool = True
    #: 404 for path segments that start with a dot (``.well-known`` excepted); not listed.
    hide_dotfiles: bool = False
    #: Follow symlinks that lead outside ``directory`` (off: such links are 404).
    follow_symlinks: bool = False
    #: Precompressed siblings looked for next to each file, preferred first.
    precompressed: Sequence[tuple[str, str]] = (("br", ".br"), ("gzip", ".gz"))
    #: Charset announced for text types (files are served as they are, never transcoded).
    text_charset: str | None = "utf-8"
    #: Send file segments with ``sendfile`` when the response writer supports it.
    use_sendfile: bool = True
    #: Small files kept in memory, revalidated by ``lstat`` on each hit (None: no cache).
    small_file_cache: SmallFileCache | None = _SMALL_FILES
    #: Whole plain 200 answers of small unchanged files, by class and path, revalidated by
    #: ``lstat`` on each hit (None: none). They hold what this class's ``end_headers`` added
    #: for a request without Origin. A subclass of yours that overrides ``end_headers``,
    #: ``send_header`` or ``send_response`` is not prebuilt (its fields may be per request)
    #: unless it sets this attribute itself; one whose fields depend on the request sets None.
    response_cache: ByteCache | None = _RESPONSES
    #: Compress text-like responses on the fly (``--compress``; see the module docstring).
    compress: bool = False
    #: Smallest file compressed on the fly, in bytes (smaller ones gain nothing).
    compress_min: int = 1024
    #: Compression level (zlib's scale; br and zstd get a similar speed).
    compress_level: int = 6
    #: Codings produced on the fly, preferred first (None: every available one).
    compress_codings: Sequence[str] | None = None
    #: Largest file compressed whole in memory (and cached); larger ones are streamed.
    compress_whole_max: int = 1024 * 1024
    #: Compressed bodies of unchanged files, revalidated by ``lstat`` (None: no cache).
    compressed_cache: ByteCache | None = _COMPRESSED

    #: Set by ``_answer`` for ``end_headers`` when the answer may be kept whole: (the head's
    #: line list, how many of its lines precede the fields to keep, coding, body).
    _rc_capture: tuple[list[bytes], int, str | None, bytes] | None = None
    #: What the caller of ``_answer`` knows for keeping it: (path, stat, read since, codings).
    _rc_ctx: tuple[str, os.stat_result, float, tuple[str, ...]] | None = None
    #: While ``_send_missing`` answers a candidate SPA route (its answer depends on
    #: ``Accept``): 1 until a ``Vary`` naming ``Accept`` is in the head, then 2; else 0.
    _vary_accept: int = 0
    #: This class's additions to the instance's names (see BaseHTTPRequestHandler's
    #: docstring): ``directory`` is set by ``__init__`` before the others, or is a class
    #: attribute of a subclass; ``_repeat`` by :mod:`minihttp.static.hit`.
    _instance_names = ("_rc_ctx", "_rc_capture", "_repeat")

    def __init__(self, *args: Any, directory: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> None:
        if directory is not None:
            self.directory = os.fspath(directory)
        elif getattr(type(self), "directory", None) is None:  # a subclass may name its own
            self.directory = os.getcwd()  # http.server's default
        super().__init__(*args, **kwargs)

    @classmethod
    def _blank(cls) -> SimpleHTTPRequestHandler:
        """:meth:`attach` (a pooled server, where ``__init__`` does not run) gets the
        directory ``__init__`` gives without ``directory=``: the class's, else the current
        one. Before, a plain ``SimpleHTTPRequestHandler`` on a ``PooledHTTPServer`` had none
        and answered every request 500."""
        self = cls.__new__(cls)
        if getattr(cls, "directory", None) is None:
            self.directory = os.getcwd()
        return self

    # -- the stdlib entry points ------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve a GET request: the head via :meth:`send_head`, then the body."""
        f = self.send_head()
        if f:
            try:
                self.copyfile(f, self.wfile)
            finally:
                f.close()

    def do_HEAD(self) -> None:
        """Serve a HEAD request: the same head as GET, no body (RFC 9110 section 9.3.2)."""
        f = self.send_head()
        if f:
            f.close()

    def send_head(self) -> _Body | None:
        """Send the response head; return the body to copy (caller closes it) or None."""
        try:
            if self.hide_dotfiles and hidden_path(split_target(self.path)[0]):
                raise NotFound()
            return self._send_head()
        except HTTPError as exc:
            if exc.status == 404 and (self.spa or self.not_found_page):
                return self._send_missing(exc)
            self.send_error(exc.status, exc.message)
            return None

    def translate_path(self, path: str) -> str:
        """Map a request target to a path under :attr:`directory`.

        Unlike ``http.server``'s, hostile paths are not clamped silently: they raise
        :class:`~minihttp.errors.HTTPError` (400 for NUL, 404 for escapes). A trailing slash
        in the URL is kept, as the standard library does.
        """
        return translate(self.directory, path)

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        """Media type from the extension: ``extensions_map`` (our table,
        :data:`~minihttp.static.types.WEB_TYPES`) first, the machine's ``mimetypes`` only
        for the rest."""
        return self._type_of(posixpath.splitext(os.fspath(path))[1])

    def _type_of(self, ext: str) -> str:
        """:meth:`guess_type` for an extension already split off (with its dot, or "")."""
        if ext in self.extensions_map:
            return self.extensions_map[ext]
        ext = ext.lower()
        if ext in self.extensions_map:
            return self.extensions_map[ext]
        return machine_type(ext)  # only for extensions our table does not name

    def content_type(self, path: str) -> str:
        """Content-Type field value: :meth:`guess_type` plus a charset for text types."""
        return self._with_charset(self.guess_type(path))

    def _with_charset(self, ctype: str) -> str:
        if self.text_charset and ctype.startswith("text/") and "charset" not in ctype:
            ctype += f"; charset={self.text_charset}"
        return ctype

    def list_directory(self, path: str | os.PathLike[str]) -> _Body | None:
        """Send the head of a listing of ``path`` and return its body (None on error)."""
        path = os.fspath(path)
        root = self.directory
        if not self.directory_listing:
            raise NotFound()  # as if absent (see minihttp.static.site)
        hide = self.hide_dotfiles

        def visible(entry: os.DirEntry[str]) -> bool:
            if (hide and hidden_name(entry.name)) or is_staging(entry.name):
                return False
            return self.follow_symlinks or not entry.is_symlink() or contained(entry.path, root)

        try:
            entries = scan_directory(path, visible)
        except OSError:
            self.send_error(404, "No permission to list directory")
            return None
        raw_path, query = split_target(self.path)
        display = "/" + "/".join(url_segments(raw_path))
        if display != "/":
            display += "/"
        body = render_listing(display, entries, parent=display != "/", query=query,
                              extra=self.listing_extra_html(path))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def listing_extra_html(self, path: str) -> str:
        """HTML added to the listing of directory ``path`` below its heading (none here;
        :class:`~minihttp.static.upload.UploadMixin` adds its form)."""
        return ""

    def copyfile(self, source: _Body, outputfile: Any) -> None:
        """Copy ``source`` to ``outputfile``; file segments of a :class:`FileBody` go
        zero-copy through ``outputfile.sendfile(file, offset, count)`` when it exists."""
        if type(source) is io.BytesIO:
            outputfile.write(source.read())  # a listing or short message: one write
            return
        if not isinstance(source, FileBody):
            shutil.copyfileobj(source, outputfile, CHUNK_SIZE)
            return
        for piece in source.pieces:
            if isinstance(piece, bytes):
                outputfile.write(piece)
            elif source.file is not None:
                self._send_segment(source.file, piece[0], piece[1], outputfile)

    # -- internals ---------------------------------------------------------------------------

    def _send_missing(self, exc: HTTPError) -> _Body | None:
        """Answer a 404 as the site options say: the SPA's index page (200) for a client-side
        route, else the custom 404 page with status 404, else the plain error.

        For a candidate route (:func:`~minihttp.static.site.spa_candidate`) the choice was
        made on ``Accept``: every head sent here then carries ``Vary: Accept`` (RFC 9110
        section 12.5.5; ``_validator_headers`` and ``end_headers`` add it), and the answer is
        never kept as the index file's prebuilt one (``end_headers``). The fallback goes
        through ``_send_file``, never the prebuilt answers, so a kept answer of the index
        file (without that field) is never replayed for a route, nor is its head remembered
        for :func:`~minihttp.static.hit.answer_repeat`.
        """
        self._rc_ctx = self._rc_capture = None
        if not (self.spa and (self.command == "GET" or self.command == "HEAD")
                and spa_candidate(split_target(self.path)[0])):
            return self._send_not_found(exc)
        self._vary_accept = 1
        try:
            if accepts_html(self.headers.get("Accept")):
                for name in self.index_pages:
                    try:
                        return self._send_file(os.path.join(self.directory, name))
                    except HTTPError:
                        continue
            return self._send_not_found(exc)
        finally:
            # Every head of this request was ended above: the next request starts afresh.
            self._vary_accept = 0
            self._rc_ctx = self._rc_capture = None

    def _send_not_found(self, exc: HTTPError) -> _Body | None:
        """The custom 404 page with status 404 when there is one, else the plain error."""
        page = self.not_found_page
        if page:
            try:
                f, st = self._open(os.path.join(self.directory, page))
            except HTTPError:
                f = None
            if f is not None:
                with f:
                    try:
                        body = f.read(PAGE_MAX + 1) if st.st_size <= PAGE_MAX else b""
                    except OSError:
                        body = b""  # unreadable now: the plain error below
                if body and len(body) <= PAGE_MAX:
                    self.send_response(404)
                    self.send_header("Content-Type", self.content_type(page))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return io.BytesIO(body)
        self.send_error(exc.status, exc.message)
        return None

    def _zero_copy(self, out: Any, count: int) -> Any:
        """``out.sendfile`` when zero-copy pays: a big segment on a plain TCP socket.

        Small segments are read and buffered instead, so head and body leave in one send;
        under TLS ``socket.sendfile`` would only copy through ``send`` in 8 KiB blocks.
        """
        if not self.use_sendfile or count < SENDFILE_MIN:
            return None
        if isinstance(getattr(self, "connection", None), ssl.SSLSocket):
            return None
        return getattr(out, "sendfile", None)

    def _send_segment(self, file: BinaryIO, offset: int, count: int, out: Any) -> None:
        sender = self._zero_copy(out, count)
        if sender is not None:
            sender(file, offset, count)
            return
        file.seek(offset)
        remaining = count
        while remaining > 0:
            data = file.read(min(CHUNK_SIZE, remaining))
            if not data:
                # The file shrank after its length was announced: the response cannot be
                # completed, so the connection must not be reused (RFC 9112 section 6.3).
                self.close_connection = True
                return
            out.write(data)
            remaining -= len(data)

    def _inside(self, path: str) -> None:
        """Refuse ``path`` if a symlink takes it out of :attr:`directory` (unless allowed).

        Paths a subclass's ``translate_path`` put elsewhere on purpose are not checked.
        """
        if self.follow_symlinks:
            return
        root = self.directory
        inside = contained_fast(path, root)
        if inside is None:  # not lexically under the root as given: compare absolute paths
            root, path = os.path.abspath(root), os.path.abspath(path)
            if os.path.commonpath([path, root]) != root:
                return
            inside = contained(path, root)
        if not inside:
            raise NotFound()

    def _send_head(self) -> _Body | None:
        self._rc_ctx = self._rc_capture = None
        path = self.translate_path(self.path)
        if not path.endswith(("/", os.sep)):
            cache = self.small_file_cache
            responses = self.response_cache
            # lstat: a symlink in the last segment is never taken for the file itself.
            if (cache is not None or responses is not None) and not self.follow_symlinks:
                plain, parent = plain_dirs(path, self.directory)
                if plain:
                    try:
                        st = os.lstat(path)
                    except (OSError, ValueError):
                        pass  # the open below gives the right answer
                    else:
                        if stat.S_ISREG(st.st_mode):
                            if responses is not None and self._send_prebuilt(
                                    responses, path, st, parent):
                                return None
                            hit = cache.lookup(path, st) if cache is not None else None
                            if hit is not None and isinstance(hit[1], _Cached):
                                return self._send_cached(path, hit[0], hit[1], parent, st)
            # A file: open it first and let fstat tell a directory apart.
            started = time.time()  # before the read: see _smallfiles on racy files
            try:
                fd, st = self._open_fd(path)
            except FileNotFoundError:
                pass  # maybe only a precompressed sibling exists: the general path decides
            else:
                if stat.S_ISREG(st.st_mode):
                    return self._send_open_file(path, fd, st, started)
                os.close(fd)
        return self._send_head_general(path)

    def _send_cached(self, path: str, data: bytes, meta: _Cached,
                     parent: os.stat_result | None = None,
                     st: os.stat_result | None = None) -> _Body | None:
        """Answer from a small file's cached contents (still its contents, by ``lstat``).

        ``parent`` is the ``lstat`` of the file's directory if one was taken on the way: when
        it shows the directory unchanged since no precompressed sibling existed, there is
        still none, and the per-sibling ``access`` calls are skipped.
        """
        cls = type(self)
        if cls.content_type is _base_content_type and cls.guess_type is _base_guess_type:
            ctype = self._with_charset(self._type_of(meta.ext))  # no splitext per request
        else:
            ctype = self.content_type(path)
        precompressed = self.precompressed
        if not precompressed or (parent is not None and meta.no_siblings is not None
                                 and meta.no_siblings == (identity(parent), precompressed)):
            coding: str | None = None
            siblings: list[tuple[str, str]] = []
        else:
            coding, siblings = self._sibling(path)
        if coding:
            f, sib = self._open(dict(siblings)[coding])
            try:
                validators = validators_for(sib, coding)
                return self._answer(f, sib.st_size, ctype, coding, True, validators)
            except BaseException:
                f.close()
                raise
        codings = self._otf_codings(ctype, len(data))
        started = time.time()
        if codings and st is not None:
            chosen = self._negotiate(codings)
            if chosen:
                return self._answer_compressed(path, st, ctype, chosen, meta.validators, data,
                                               None, started, codings, bool(siblings))
        if st is not None and not siblings and self.response_cache is not None:
            self._rc_ctx = (path, st, started, codings)
        return self._answer(None, len(data), ctype, None, bool(siblings) or bool(codings),
                            meta.validators, data, meta)

    def _send_head_general(self, path: str) -> _Body | None:
        raw_path, query = split_target(self.path)
        if os.path.isdir(path):
            if not has_trailing_slash(raw_path):
                # RFC 9110 section 15.4.2; relative references in the page need the slash.
                self.send_response(301)
                self.send_header("Location", redirect_location(raw_path, query))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self._inside(path)
            for index in self.index_pages:
                candidate = os.path.join(path, index)
                if os.path.isfile(candidate):
                    path = candidate
                    break
            else:
                return self.list_directory(path)
        elif path.endswith(("/", os.sep)):
            raise NotFound()  # a file named as if it were a directory
        return self._send_file(path)

    def _open_fd(self, path: str) -> tuple[int, os.stat_result]:
        """Open ``path`` inside the root (any file type); ``FileNotFoundError`` passes through.

        Other failures become 403 / 404; never blocks on a FIFO, never a traceback.
        """
        try:
            fd = None if self.follow_symlinks else open_beneath(path, self.directory,
                                                                _OPEN_FLAGS)
            if fd is None:
                self._inside(path)  # not lexically under the root: the general check
                fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            raise
        except PermissionError:
            raise Forbidden() from None
        except (OSError, ValueError):
            raise NotFound() from None
        try:
            return fd, os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise

    def _open(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """Open a regular file inside the root as an unbuffered file object."""
        try:
            fd, st = self._open_fd(path)
        except FileNotFoundError:
            raise NotFound() from None
        try:
            if not stat.S_ISREG(st.st_mode):
                raise NotFound()
            # Unbuffered: reads are big or go straight to sendfile; saves a BufferedReader.
            return os.fdopen(fd, "rb", buffering=0), st
        except BaseException:
            os.close(fd)
            raise

    def _sibling(self, path: str) -> tuple[str | None, list[tuple[str, str]]]:
        """The coding to serve (None: identity) and the list of existing siblings."""
        found = []
        for coding, suffix in self.precompressed:
            candidate = path + suffix
            try:
                # access() first: a missing sibling (the usual case) costs no exception.
                if os.access(candidate, os.F_OK) and stat.S_ISREG(os.stat(candidate).st_mode):
                    self._inside(candidate)
                    found.append((coding, candidate))
            except (OSError, ValueError, HTTPError):
                continue
        if not found:
            return None, found  # nothing to choose from: Accept-Encoding cannot matter
        chosen = choose_encoding(self.headers.get("Accept-Encoding"), [c for c, _ in found])
        return chosen, found

    def _send_open_file(self, path: str, fd: int, st: os.stat_result, started: float = 0.0
                        ) -> _Body | None:
        """:meth:`_send_file` for a regular file already open as ``fd`` (closed here)."""
        try:
            ctype = self.content_type(path)
            coding, siblings = self._sibling(path) if self.precompressed else (None, [])
        except BaseException:
            os.close(fd)
            raise
        if coding:
            os.close(fd)
            f, st = self._open(dict(siblings)[coding])
            return self._answer_open(f, st, ctype, coding, True)
        codings = self._otf_codings(ctype, st.st_size)
        chosen = self._negotiate(codings) if codings else None
        if chosen:
            f = os.fdopen(fd, "rb", buffering=0)
            return self._answer_compressed(path, st, ctype, chosen, validators_for(st), None,
                                           f, started, codings, bool(siblings))
        if self.command == "GET" and st.st_size < SENDFILE_MIN:
            return self._answer_small(path, fd, st, ctype, bool(siblings), started, codings)
        f = os.fdopen(fd, "rb", buffering=0)
        return self._answer_open(f, st, ctype, None, bool(siblings) or bool(codings))

    def _answer_small(self, path: str, fd: int, st: os.stat_result, ctype: str, vary: bool,
                      started: float, codings: tuple[str, ...] = ()) -> _Body | None:
        """A small identity file: read whole now, so the body leaves with the head."""
        try:
            data = _read_all(fd, st.st_size)
        except OSError:
            raise NotFound() from None
        finally:
            os.close(fd)
        v = validators_for(st)
        cache = self.small_file_cache
        if cache is not None and started and not self.follow_symlinks:
            no_siblings = None if vary else self._no_siblings(path)
            meta = _Cached(v, posixpath.splitext(path)[1], _base_date(self, v.last_modified),
                           no_siblings)
            cache.put(path, st, data, started, meta=meta)
        if not vary and self.response_cache is not None and len(data) == st.st_size:
            self._rc_ctx = (path, st, started, codings)
        return self._answer(None, len(data), ctype, None, vary or bool(codings), v, data)

    def _no_siblings(self, path: str) -> tuple[Identity, Sequence[tuple[str, str]]] | None:
        """Proof that ``path`` has no precompressed sibling, valid while its directory keeps
        the identity returned (with the sibling list it holds for); None if unsure.

        Creating, renaming or linking a name into a directory changes the directory's mtime
        and ctime; so while the directory's identity is unchanged, no sibling has appeared.
        The directory must have been quiet for ``RACY_SECONDS`` (a change within the same
        timestamp tick would go unseen, see :mod:`minihttp.static.cache`), and each sibling
        name must be absent altogether: a dangling symlink could start to resolve without
        the directory changing, so such a name is checked on every request.
        """
        precompressed = self.precompressed
        if not isinstance(precompressed, tuple):
            return None  # a list could change in place: no lasting proof
        started = time.time()
        try:
            st = os.lstat(os.path.dirname(path))
            quiet_since = (started - _smallfiles.RACY_SECONDS) * 1e9
            if not stat.S_ISDIR(st.st_mode) or st.st_ctime_ns > quiet_since:
                return None
            for _coding, suffix in precompressed:
                try:
                    os.lstat(path + suffix)
                except FileNotFoundError:
                    continue
                return None
        except (OSError, ValueError):
            return None
        return identity(st), precompressed

    def _send_file(self, path: str) -> _Body | None:
        ctype = self.content_type(path)
        coding, siblings = self._sibling(path) if self.precompressed else (None, [])
        started = time.time()
        f, st = self._open(dict(siblings)[coding] if coding else path)
        if coding:
            return self._answer_open(f, st, ctype, coding, True)
        try:
            codings = self._otf_codings(ctype, st.st_size)
            chosen = self._negotiate(codings) if codings else None
        except BaseException:
            f.close()
            raise
        if chosen:
            return self._answer_compressed(path, st, ctype, chosen, validators_for(st), None,
                                           f, started, codings, bool(siblings))
        return self._answer_open(f, st, ctype, None, bool(siblings) or bool(codings))

    # -- compression on the fly -------------------------------------------------------------

    def _otf_codings(self, ctype: str, size: int) -> tuple[str, ...]:
        """The codings a representation of this type and size may get on the fly (empty:
        none, and then the answer does not vary with Accept-Encoding on that account)."""
        if not self.compress or size < self.compress_min or not compressible(ctype):
            return ()
        return available(self.compress_codings)

    def _negotiate(self, codings: tuple[str, ...]) -> str | None:
        """The coding to compress with for this request, or None for identity.

        A GET with ``Range`` gets identity: byte ranges are of the identity body, the only
        one whose bytes cannot change with the client's Accept-Encoding.
        """
        headers = self.headers
        if self.command == "GET" and headers.get("Range") is not None:
            return None
        return _choose(headers.get("Accept-Encoding"), codings)

    def _answer_compressed(self, path: str, st: os.stat_result, ctype: str, coding: str,
                           identity_v: Validators, data: bytes | None, f: BinaryIO | None,
                           started: float, codings: tuple[str, ...], siblings: bool
                           ) -> _Body | None:
        """Answer with ``coding`` applied on the fly to the file (``data`` if already in
        memory, else the open ``f``, which is closed here or goes out in the body)."""
        v = Validators(f"{identity_v.etag[:-1]}-{coding}\"", identity_v.last_modified)
        if st.st_size > self.compress_whole_max and f is not None:
            return self._answer_stream(f, ctype, coding, v)
        body = self._compressed_body(path, st, coding, data, f, started)
        if not siblings and self.response_cache is not None:
            self._rc_ctx = (path, st, started, codings)
        return self._answer(None, len(body), ctype, coding, True, v, body)

    def _compressed_body(self, path: str, st: os.stat_result, coding: str,
                         data: bytes | None, f: BinaryIO | None, started: float) -> bytes:
        """The file compressed whole: from :attr:`compressed_cache` while the file keeps
        ``st``'s identity, else compressed now (and kept). ``f`` is closed here."""
        cache = self.compressed_cache
        level = self.compress_level
        key = (path, coding, level)
        try:
            if cache is not None:
                body: bytes | None = cache.get(key, st)
                if body is not None:
                    return body
            if data is None:
                if f is None:
                    raise NotFound()
                try:
                    data = _read_all(f.fileno(), st.st_size)
                except OSError:
                    raise NotFound() from None
        finally:
            if f is not None:
                f.close()
        body = compress(data, coding, level)
        if cache is not None and len(data) == st.st_size:
            cache.put(key, st, body, len(body), started)
        return body

    def _answer_stream(self, f: BinaryIO, ctype: str, coding: str, v: Validators
                       ) -> _Body | None:
        """A large file compressed as it is sent: no Content-Length (chunked on HTTP/1.1),
        the file read a piece at a time. Preconditions apply; a Range never gets here."""
        try:
            if any(self.headers.get(name) is not None for name in _CONDITIONALS):
                early = self._preconditions(f, 0, v, True)
                if not isinstance(early, RangeDecision):
                    return early
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Encoding", coding)
            self.send_header("Accept-Ranges", "bytes")
            self._validator_headers(v, True)
            self.end_headers()
            return CompressedStream(f, coding, self.compress_level)
        except BaseException:
            f.close()
            raise

    # -- prebuilt answers (the response cache) ---------------------------------------------

    def end_headers(self) -> None:
        """End the head; first keep it as a prebuilt answer when ``_answer`` said it may be
        (here, after a subclass's ``end_headers`` added its fields and called this)."""
        capture = self._rc_capture
        if capture is not None:
            self._rc_capture = None
            if not self._vary_accept:  # an SPA fallback is not the index file's own answer
                self._keep_prebuilt(capture)
        if self._vary_accept == 1:
            # A candidate SPA route's answer without validators (404, 416, 412): it still
            # depends on Accept (see minihttp.static.site).
            self._vary_accept = 2
            self.send_header("Vary", "Accept")
        super().end_headers()

    # The prebuilt answers' own methods live in minihttp.static.hit: whether a request may
    # have one, keeping one, answering from one, and answering a repeated head.
    _prebuilt_ok = hit.prebuilt_ok
    _keep_prebuilt = hit.keep_prebuilt
    _send_prebuilt = hit.send_prebuilt
    _answer_repeat = hit.answer_repeat

    def _answer_open(self, f: BinaryIO, st: os.stat_result, ctype: str, coding: str | None,
                     vary: bool) -> _Body | None:
        """Answer from an open file: it goes out in the body, or is closed here on failure."""
        try:
            return self._answer(f, st.st_size, ctype, coding, vary,
                                validators_for(st, coding or ""))
        except BaseException:
            f.close()
            raise

    def _validator_headers(self, v: Validators, vary: bool, meta: _Cached | None = None
                           ) -> None:
        self.send_header("ETag", v.etag)
        if type(self).date_time_string is _base_date_time_string:
            # A file's date is formatted once (kept with the cached file, or memo by
            # timestamp), not on every request.
            date = meta.date if meta is not None else _base_date(self, v.last_modified)
        else:
            date = self.date_time_string(v.last_modified)
        self.send_header("Last-Modified", date)
        if self._vary_accept:
            # An SPA fallback (see minihttp.static.site): one field for both.
            self._vary_accept = 2
            self.send_header("Vary", "Accept-Encoding, Accept" if vary else "Accept")
        elif vary:
            self.send_header("Vary", "Accept-Encoding")

    def _preconditions(self, f: BinaryIO | None, size: int, v: Validators, vary: bool
                       ) -> RangeDecision | _Body | None:
        """Evaluate preconditions and Range (RFC 9110 sections 13.2.2 and 14.2).

        Returns the range decision (200 or 206) to go on with, or what ``send_head`` must
        return after a 304, 412 or 416 was sent here (``f`` is then closed).
        """
        status = evaluate(self.command or "", self.headers.get_all, v)
        if status == 304:
            # RFC 9110 section 15.4.5: the validators and Vary a 200 would carry, no body.
            self.send_response(304)
            self._validator_headers(v, vary)
            self.end_headers()
            if f is not None:
                f.close()
            return None
        if status == 412:
            if f is not None:
                f.close()
            self.send_error(412)
            return None
        # RFC 9110 section 14.2: range handling is defined for GET only
        range_value = self.headers.get("Range") if self.command == "GET" else None
        decision = parse_range(range_value, size)
        if decision.status != 200 and not if_range_matches(self.headers.get("If-Range"), v):
            decision = parse_range(None, size)
        if decision.status == 416:
            if f is not None:
                f.close()
            body = b"Requested range not satisfiable\n"
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return decision

    def _answer(self, f: BinaryIO | None, size: int, ctype: str, coding: str | None,
                vary: bool, v: Validators, data: bytes | None = None,
                meta: _Cached | None = None) -> _Body | None:
        """Answer for one representation: ``f`` is its open file (closed here unless it is
        returned in the body), or None when ``data`` already holds all of it; ``meta`` is
        what the small-file cache kept with ``data``."""
        headers = self.headers
        has_any = getattr(headers, "has_any", None)  # an email.message.Message has not
        if (not has_any(_PRECONDITION_FIELDS) if has_any is not None
                else _PRECONDITION_FIELDS.isdisjoint(map(str.lower, headers))):
            # No precondition and no Range (the usual request): nothing to evaluate, the
            # whole representation is the answer (RFC 9110 sections 13.2.1 and 14.2).
            decision = FULL
        else:
            early = self._preconditions(f, size, v, vary)
            if not isinstance(early, RangeDecision):
                return early
            decision = early
        pieces: list[Part]
        if decision.status == 200:
            self.send_response(200)
            if data is not None and self._rc_ctx is not None:
                buf = self._headers_buffer
                self._rc_capture = (buf, len(buf), coding, data)
            pieces, length = [(0, size) if data is None else data], size
            self.send_header("Content-Type", ctype)
        elif len(decision.ranges) == 1:
            (first, last), = decision.ranges
            self.send_response(206)
            length = last - first + 1
            pieces = [(first, length) if data is None else data[first:last + 1]]
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Range", content_range(first, last, size))
        else:
            boundary = secrets.token_hex(16)
            pieces, length = multipart_layout(decision.ranges, size, ctype, boundary)
            if data is not None:
                pieces = [p if isinstance(p, bytes) else data[p[0]:p[0] + p[1]]
                          for p in pieces]
            self.send_response(206)
            self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
        self.send_header("Content-Length", str(length))
        if coding:
            self.send_header("Content-Encoding", coding)
        self.send_header("Accept-Ranges", "bytes")
        self._validator_headers(v, vary, meta)
        self.end_headers()
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return io.BytesIO(pieces[0])  # in memory already: copyfile writes it in one go
        return FileBody(f, pieces, length)


def _read_all(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from the start of ``fd`` (fewer if the file shrank meanwhile)."""
    data = os.read(fd, size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.read(fd, size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


_base_guess_type = SimpleHTTPRequestHandler.guess_type
_base_content_type = SimpleHTTPRequestHandler.content_type
