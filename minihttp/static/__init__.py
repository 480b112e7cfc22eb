"""Static files: :class:`SimpleHTTPRequestHandler` (``python -m minihttp``) and its pure helpers.

One job: serve a directory safely and fast, compatible with ``http.server``'s handler. The
handler is :mod:`~minihttp.static.handler`; each concern under it is a pure module:
:mod:`~minihttp.static.paths` (URL to path, containment), :mod:`~minihttp.static.conditional`
(validators, preconditions), :mod:`~minihttp.static.ranges` (206, multipart, 416),
:mod:`~minihttp.static.encoding` (precompressed siblings), :mod:`~minihttp.static.listing`
(directory pages), :mod:`~minihttp.static.types` (content types), :mod:`~minihttp.static.cache`
(the small-file cache), :mod:`~minihttp.static.respcache` (whole prebuilt answers) and
:mod:`~minihttp.static.compress` (gzip on the fly). Site options (``--spa``, ``404.html``,
``--hide-dotfiles`` ...) are decided in :mod:`~minihttp.static.site`; CORS is
:mod:`~minihttp.static.cors`'s mixin.

Uploads (``--upload``) are :class:`minihttp.static.upload.UploadMixin`, over
:mod:`~minihttp.static.multipart` (streaming form parser), :mod:`~minihttp.static.names`
(which names a client may use) and :mod:`~minihttp.static.staging` (temporary file, then
rename).
"""

from __future__ import annotations

from minihttp.static.handler import FileBody, SimpleHTTPRequestHandler

__all__ = ["FileBody", "SimpleHTTPRequestHandler"]
