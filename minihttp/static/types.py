"""Media types of the web, from our own table, so the answer does not depend on the machine.

The standard library's :mod:`mimetypes` reads the host's ``/etc/mime.types`` (and the
Windows registry): on one machine ``.ts`` comes out as ``text/vnd.trolltech.linguist`` (Qt
translations), on another ``.yaml`` as nothing at all. A file server's answer must not depend
on which packages happen to be installed, so :data:`WEB_TYPES` names the types the web uses
today, taken from the IANA media-type registry (and the RFC that registers each type), checked
against nginx's ``mime.types`` and Go's built-in table; :func:`machine_type` asks
:mod:`mimetypes` only for extensions missing here.

Rules of this module:

* Keys are lower-case extensions with their dot; values are bare media types (no
  parameters: the handler adds ``charset`` to ``text/*`` itself).
* Where IANA and common practice differ, IANA wins when browsers accept both: ``.ico`` is
  ``image/vnd.microsoft.icon`` (nginx: ``image/x-icon``), ``.xml`` is ``application/xml``
  (RFC 7303; nginx: ``text/xml``), ``.ts`` is MPEG transport stream ``video/mp2t`` (HLS
  segments), not TypeScript (which has no registered type; browsers never load ``.ts``
  source anyway).
* :func:`machine_type` is a pure function of the extension once the process has started, so
  its answers are memoized (bounded: extensions come from requests).
"""

from __future__ import annotations

import mimetypes

__all__ = ["WEB_TYPES", "machine_type"]

#: Our table: lower-case extension (with the dot) to media type.
WEB_TYPES: dict[str, str] = {
    # -- documents and code of the web ----------------------------------------------------
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".css": "text/css",
    ".js": "text/javascript",  # RFC 9239: text/javascript is the one to use
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",  # source maps
    ".jsonld": "application/ld+json",
    ".geojson": "application/geo+json",  # RFC 7946
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".xml": "application/xml",  # RFC 7303
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",  # RFC 4287
    ".txt": "text/plain",
    ".md": "text/markdown",  # RFC 7763
    ".markdown": "text/markdown",
    ".csv": "text/csv",  # RFC 4180
    ".tsv": "text/tab-separated-values",
    ".ics": "text/calendar",
    ".vtt": "text/vtt",  # WebVTT subtitles
    ".yaml": "application/yaml",  # RFC 9512
    ".yml": "application/yaml",
    ".sql": "application/sql",  # RFC 6922
    ".pdf": "application/pdf",
    ".rtf": "application/rtf",
    ".epub": "application/epub+zip",
    # -- office documents ---------------------------------------------------------------
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    # -- images -------------------------------------------------------------------------
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".svgz": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".jxl": "image/jxl",
    ".heic": "image/heic",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".ico": "image/vnd.microsoft.icon",
    # -- fonts (RFC 8081) ---------------------------------------------------------------
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    # -- audio --------------------------------------------------------------------------
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",  # Opus in an Ogg container (RFC 7845)
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".weba": "audio/webm",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    # -- video and streaming ------------------------------------------------------------
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".mkv": "video/matroska",  # RFC 9559
    ".avi": "video/x-msvideo",
    ".3gp": "video/3gpp",
    ".ts": "video/mp2t",  # MPEG transport stream (HLS segments), per IANA
    ".m2ts": "video/mp2t",
    ".m4s": "video/iso.segment",  # DASH / CMAF segments
    ".m3u8": "application/vnd.apple.mpegurl",  # HLS playlists (RFC 8216)
    ".mpd": "application/dash+xml",
    # -- archives and binaries ----------------------------------------------------------
    ".zip": "application/zip",
    ".gz": "application/gzip",  # RFC 6713
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",  # RFC 8878
    ".tar": "application/x-tar",
    ".7z": "application/x-7z-compressed",
    ".rar": "application/vnd.rar",
    ".jar": "application/java-archive",
    ".apk": "application/vnd.android.package-archive",
    ".deb": "application/vnd.debian.binary-package",
    ".bin": "application/octet-stream",
    ".exe": "application/octet-stream",
    ".iso": "application/octet-stream",
    # -- 3D -----------------------------------------------------------------------------
    ".gltf": "model/gltf+json",
    ".glb": "model/gltf-binary",
}

#: :mod:`mimetypes`' answers by lower-case extension (bounded: extensions come from requests).
_guessed: dict[str, str] = {}
_GUESSED_MAX = 1024


def machine_type(ext: str) -> str:
    """The machine's media type for ``ext`` (lower-case, with its dot), for extensions
    :data:`WEB_TYPES` does not name; ``application/octet-stream`` when it knows none."""
    guess = _guessed.get(ext)
    if guess is None:
        # mimetypes.guess_type costs microseconds; its answer depends on the extension only
        # (compression suffixes like .gz are in our table), so it is kept per extension.
        guess = mimetypes.guess_type("f" + ext)[0] or "application/octet-stream"
        if len(_guessed) < _GUESSED_MAX:
            _guessed[ext] = guess
    return guess
