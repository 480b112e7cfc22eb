"""Uploads for the file server: ``PUT`` to a path, and a form on directory listings.

:class:`UploadMixin` adds ``do_PUT`` and ``do_POST`` to :class:`SimpleHTTPRequestHandler`
(``python -m minihttp --upload`` serves with it); :func:`add_arguments` and
:func:`handler_attrs` are its command line.

* ``PUT /dir/name`` stores the request body as ``dir/name``: 201 Created with ``Location``
  (204 No Content when ``--allow-replace`` let it replace a file).
* ``POST /dir/`` with a ``multipart/form-data`` body (the listing's form, several files at
  once) stores every file part under its ``filename`` and answers 303 See Other to the
  listing (Post/Redirect/Get: the browser shows the listing with the new files, and a
  reload does not send them again); the 303's small HTML page lists what was stored, for
  clients that do not follow redirects (``curl -F``). A form's files are stored together
  or not at all (but a file that replaced another cannot be taken back: it stays).

Rules of this module:

* Bodies stream to a temporary file in the target directory and get their final name only
  when complete (:mod:`minihttp.static.staging`); a client that leaves, a short, invalid or
  too large body leaves nothing behind. Memory per upload is one 64 KiB piece.
* Everything that can be refused is refused before the body is read (so a client that sent
  ``Expect: 100-continue`` is never asked for it): a declared length over
  ``upload_max_size`` (413), a bad name (400), a missing or escaping directory (409/404),
  an existing file without ``upload_allow_replace`` (409). A body without Content-Length
  (chunked, or a form whose files add up) is counted as it streams: 413 at the limit.
* The target directory must exist (no directory is created: 409) and be inside
  ``directory`` with every symlink resolved, even with ``follow_symlinks`` (that option
  is about reading). It is then held open and every file operation names files from its
  descriptor (:func:`~minihttp.static.staging.open_target`): a directory swapped for a
  symlink after the checks cannot take the upload out of the root.
  No path segment may start with a dot unless ``upload_allow_dotfiles``. A target that
  is a directory is a 409.
* A stored file's contents are on the disk before its name appears, and the name is
  before the answer is sent (fsync of the file, then of the directory).
* One log line per stored file (``log_message``: the access log), with its size.
"""

from __future__ import annotations

import argparse
import html
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from minihttp.errors import BadRequest, HTTPError, LengthRequired, PayloadTooLarge
from minihttp.static.handler import SimpleHTTPRequestHandler
from minihttp.static.multipart import (
    PART_END,
    MultipartParser,
    Part,
    boundary_from_content_type,
)
from minihttp.static.names import BadName, check_name, parse_size
from minihttp.static.paths import has_trailing_slash, split_target, url_segments
from minihttp.static.staging import Conflict, StagedFile, TargetDir, is_staging, open_target

__all__ = ["UploadMixin", "add_arguments", "handler_attrs", "handler_bases", "server_limits",
           "upload_form"]

#: Bytes read from the client at a time.
CHUNK_SIZE = 64 * 1024


def upload_form() -> str:
    """The listing's upload form: plain HTML, no script (posts to the listing's own URL)."""
    return ('<form method="post" enctype="multipart/form-data" class="upload">'
            '<input type="file" name="file" multiple required> '
            '<button type="submit">Upload</button></form>')


class UploadMixin(SimpleHTTPRequestHandler):
    """:class:`SimpleHTTPRequestHandler` that also stores files (see the module's rules).

    Use it as a handler class, or first among the bases of a subclass of the static
    handler.
    """

    #: Replace existing files (otherwise an existing name is a 409 Conflict).
    upload_allow_replace: bool = False
    #: Largest request body of an upload, in bytes (None: only the server's limits).
    upload_max_size: int | None = None
    #: Accept names (and directories) starting with a dot.
    upload_allow_dotfiles: bool = False

    def listing_extra_html(self, path: str) -> str:
        """Listings carry the upload form."""
        return upload_form()

    def send_head(self) -> Any:
        """As the file server's, but an upload still on its way is never served (404), so
        no half-written file can be read under any name."""
        last = split_target(self.path)[0].rpartition("/")[2]
        if last.endswith(".part") and is_staging(urllib.parse.unquote(last)):
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    # -- PUT --------------------------------------------------------------------------------

    def do_PUT(self) -> None:
        """Store the body as the target file (RFC 9110 section 9.3.4)."""
        self._answering_errors(self._put)

    def do_POST(self) -> None:
        """Store the files of a ``multipart/form-data`` form posted to a directory."""
        self._answering_errors(self._post)

    def _answering_errors(self, method: Callable[[], None]) -> None:
        """Run ``method``; an :class:`HTTPError` becomes its error page, with its reason in
        the body (the server's own fallback would say only the status), and the connection
        is closed (the body may be unread)."""
        try:
            method()
        except HTTPError as exc:
            self.close_connection = True
            self.send_error(exc.status, None, exc.message)

    def _put(self) -> None:
        raw_path, _query = split_target(self.path)
        segments = self._segments(raw_path, names_file=True)
        if has_trailing_slash(raw_path) or not segments:
            raise Conflict("PUT needs a file name, not a directory")
        name = check_name(segments[-1], allow_dotfiles=self.upload_allow_dotfiles)
        if self.headers.get("Content-Range") is not None:
            # RFC 9110 section 14.5: a partial PUT must not be stored as the whole file.
            raise BadRequest("partial PUT (Content-Range) is not supported", close=False)
        remaining = self._declared_length(required=True)
        with self._directory(segments[:-1]) as directory:
            self._check_free(directory, name)
            staged = StagedFile(directory, name, CHUNK_SIZE)
            try:
                for data in self._body_pieces(remaining):
                    staged.write(data)
                replaced = staged.commit(self.upload_allow_replace)
            finally:
                staged.discard()
        location = _url(segments)
        self._log_stored(location, staged.size)
        body = b"" if replaced else f"Stored {staged.size} bytes.\n".encode()
        self.send_response(204 if replaced else 201)
        self.send_header("Location", location)
        if body:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    # -- POST (the listing's form) ----------------------------------------------------------

    def _post(self) -> None:
        raw_path, query = split_target(self.path)
        segments = self._segments(raw_path, names_file=False)
        directory = os.path.join(self.directory, *segments)
        if not has_trailing_slash(raw_path) and not os.path.isdir(directory):
            self._reply(405, "Forms are posted to a directory; files are stored with PUT.\n",
                        "text/plain", [("Allow", "GET, HEAD, PUT")])
            return
        boundary = boundary_from_content_type(self.headers.get("Content-Type"))
        remaining = self._declared_length(required=False)
        with self._directory(segments) as target:
            parser = MultipartParser(boundary)
            staged: list[StagedFile] = []
            current: StagedFile | None = None
            try:
                for data in self._body_pieces(remaining):
                    for event in parser.feed(data):
                        if isinstance(event, bytes):
                            if current is not None:
                                current.write(event)
                        elif isinstance(event, Part):
                            current = self._start_part(event, target, staged)
                        elif event is PART_END and current is not None:
                            current.finish()
                            current = None
                parser.close()
                if not staged:
                    raise BadRequest("no file in the form", close=False)
                self._commit_all(staged)
            finally:
                for s in staged:
                    s.discard()
        base = "/" + "".join(_quote(s) + "/" for s in segments)
        for s in staged:
            self._log_stored(base + _quote(s.name), s.size)
        items = "".join(
            f'<li><a href="{html.escape(base + _quote(s.name))}">{html.escape(s.name)}</a> '
            f"({s.size} bytes)</li>" for s in staged)
        listing = base + (f"?{query}" if query else "")
        page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>Uploaded</title></head><body><p>Stored {len(staged)} "
                f"file{'s' if len(staged) != 1 else ''}:</p><ul>{items}</ul>"
                f'<p><a href="{html.escape(listing)}">Back to the listing</a></p>'
                "</body></html>\n")
        self._reply(303, page, "text/html", [("Location", listing)])

    def _start_part(self, part: Part, directory: TargetDir, staged: list[StagedFile]
                    ) -> StagedFile | None:
        """Where a part's content goes: a new staged file, or None (a field, no file)."""
        if not part.filename:  # a plain field, or a file input left empty
            return None
        name = check_name(part.filename, allow_dotfiles=self.upload_allow_dotfiles)
        if any(s.name == name for s in staged):
            raise BadName("the same file name twice in one form")
        self._check_free(directory, name)
        s = StagedFile(directory, name, CHUNK_SIZE)
        staged.append(s)
        return s

    def _commit_all(self, staged: list[StagedFile]) -> None:
        """Store every file of a form, or (on a conflict) none of those it stored (a file
        that replaced another cannot be taken back: it stays)."""
        try:
            for s in staged:
                s.commit(self.upload_allow_replace)
        except BaseException:
            for s in staged:
                s.uncommit()
            raise

    # -- shared -----------------------------------------------------------------------------

    def _segments(self, raw_path: str, *, names_file: bool) -> list[str]:
        """The decoded path; its directories may not start with a dot (unless allowed)."""
        segments = url_segments(raw_path)
        if not self.upload_allow_dotfiles:
            for seg in segments[:-1] if names_file else segments:
                if seg.startswith("."):
                    raise BadName("directories starting with a dot are not writable")
        return segments

    def _directory(self, segments: list[str]) -> TargetDir:
        """The existing directory ``segments`` name, inside the root, held open (the
        caller closes it): every later step names files from its descriptor, so a
        directory swapped for a symlink after these checks cannot move the upload out
        (:func:`~minihttp.static.staging.open_target`)."""
        path = os.path.join(self.directory, *segments)
        if not os.path.isdir(path):
            raise Conflict("the directory does not exist (uploads create no directories)")
        return open_target(self.directory, path)  # 404 if a symlink leads out

    def _check_free(self, directory: TargetDir, name: str) -> None:
        """Refuse early (before the body is read) what commit would refuse."""
        if directory.is_dir(name):
            raise Conflict("a directory has that name")
        if not self.upload_allow_replace and directory.lexists(name):
            raise Conflict("a file of that name exists (the server does not replace files)")

    def _declared_length(self, *, required: bool) -> int | None:
        """The body's Content-Length (None: chunked); 413 over the limit before reading."""
        value = self.headers.get("Content-Length")
        if value is None:
            if required and self.headers.get("Transfer-Encoding") is None:
                raise LengthRequired("PUT needs Content-Length or chunked", close=False)
            return None
        try:
            length = int(value)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        limit = self.upload_max_size
        if limit is not None and length > limit:
            raise PayloadTooLarge(f"uploads are limited to {limit} bytes")
        return length

    def _body_pieces(self, remaining: int | None) -> Iterator[bytes]:
        """The request body in pieces; 413 once it passes the limit, 400 if it is short."""
        read = getattr(self.rfile, "read1", None) or self.rfile.read
        limit = self.upload_max_size
        total = 0
        while remaining is None or remaining > 0:
            data = read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not data:
                if remaining:
                    raise BadRequest("request body shorter than its Content-Length")
                return
            total += len(data)
            if limit is not None and total > limit:
                raise PayloadTooLarge(f"uploads are limited to {limit} bytes")
            if remaining is not None:
                remaining -= len(data)
            yield data

    def _reply(self, status: int, text: str, ctype: str,
               headers: list[tuple[str, str]]) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _log_stored(self, url: str, size: int) -> None:
        self.log_message('upload stored "%s" (%d bytes)', url, size)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="", errors="surrogateescape")


def _url(segments: list[str]) -> str:
    """The percent-encoded path of a stored file (its ``Location``)."""
    return "/" + "/".join(_quote(s) for s in segments)


# -- command line -----------------------------------------------------------------------------


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The file server's upload options."""
    group = parser.add_argument_group("uploads")
    group.add_argument("--upload", action="store_true",
                       help="accept uploads: PUT to a path, and a form on listings")
    group.add_argument("--allow-replace", action="store_true",
                       help="with --upload: uploads may replace existing files "
                       "(default: 409 Conflict)")
    group.add_argument("--max-upload", type=_size, metavar="SIZE",
                       help="with --upload: largest upload body, e.g. 10M or 1G "
                       "(default: 1G, the server's body limit)")


def handler_attrs(args: argparse.Namespace) -> dict[str, Any]:
    """Handler class attributes for the parsed options ({} without ``--upload``)."""
    if not getattr(args, "upload", False):
        return {}
    return {"upload_allow_replace": args.allow_replace, "upload_max_size": args.max_upload}


def handler_bases(args: argparse.Namespace, base: type) -> tuple[type, ...]:
    """The CLI handler's bases: :class:`UploadMixin` first when ``--upload``."""
    return (UploadMixin, base) if getattr(args, "upload", False) else (base,)


def server_limits(args: argparse.Namespace, limits: Any) -> dict[str, Any]:
    """Server attributes: a body limit raised to ``--max-upload`` when it is larger."""
    size = getattr(args, "max_upload", None)
    if not getattr(args, "upload", False) or size is None or size <= limits.max_body:
        return {}
    return {"limits": limits.replace(max_body=size)}
