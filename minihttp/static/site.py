"""Site options of the file server: single-page apps, a custom 404 page, hidden dotfiles,
no listings, index names, revalidation.

The decisions are pure functions here (tested as tables); the handler
(:class:`~minihttp.static.handler.SimpleHTTPRequestHandler`) holds them as class attributes
(``spa``, ``not_found_page``, ``directory_listing``, ``hide_dotfiles``, ``index_pages``) and
consults them only off its hot path: before serving when dotfiles are hidden, and when a
request would be answered 404.

Rules of this module:

* **SPA fallback** (``--spa``): a GET or HEAD for a missing path gets the root's index page
  with 200 when its ``Accept`` names ``text/html`` (a browser navigating to a client-side
  route) and its last segment has no extension. A missing ``/app.js`` or ``/logo.png`` stays
  404, as in ``sirv --single``: HTML served for a script breaks with a confusing MIME error
  (``serve --single`` rewrites those too; we do not). A ``fetch()`` (``Accept: */*``) of a
  missing path gets 404, not HTML. The fallback answer is the index file's own (validators
  included, so it revalidates to 304), plus ``Vary: Accept``.
* **Vary: Accept** (RFC 9110 section 12.5.5): for a candidate route (:func:`spa_candidate`:
  GET or HEAD of a missing extension-less path, under ``--spa``) the choice between the index
  page and 404 was made on ``Accept``, so every answer to it says so: the fallback's 200,
  206, 304, 412 and 416, and the 404 (plain or ``404.html``). Otherwise a cache, the
  browser's own included, could hand the HTML to a script's ``fetch()`` of the same URL, or
  the 404 to a navigation. With ``--compress`` it is one field, ``Vary: Accept-Encoding,
  Accept``. Paths that exist, and missing ones with an extension, never vary on ``Accept``.
  The fallback is never kept as, nor answered from, the index file's prebuilt answer
  (:mod:`minihttp.static.hit`): the two differ by that field.
* **404 page**: ``404.html`` at the root, when it exists (a regular file inside the root, at
  most :data:`PAGE_MAX` bytes), is the body of every 404 of the command line, with status 404.
* **Hidden dotfiles** (``--hide-dotfiles``): any path segment starting with a dot is 404 and
  such entries are left out of listings; ``.well-known`` (RFC 8615: ACME challenges,
  security.txt) stays visible, as in ``sirv``.
* **No listing** (``--no-listing``): a directory without an index page is 404, as if absent
  (nginx's ``autoindex off`` answers 403, which confirms that the directory exists).
* **No cache** (``--no-cache``): ``Cache-Control: no-cache`` on every response, so a browser
  revalidates each use (304 while unchanged: ETag and Last-Modified stay).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from minihttp.errors import HTTPError
from minihttp.static.paths import url_segments

__all__ = ["NOT_FOUND_PAGE", "PAGE_MAX", "accepts_html", "add_arguments", "handler_attributes",
           "hidden_name", "hidden_path", "spa_candidate", "spa_route"]

#: The custom 404 page looked for at the root.
NOT_FOUND_PAGE = "404.html"
#: A larger 404 page is not used (it is read into memory for each 404).
PAGE_MAX = 1024 * 1024
#: The one dot-name kept visible when dotfiles are hidden (RFC 8615).
WELL_KNOWN = ".well-known"

_EXTENSION = re.compile(r"\.[A-Za-z0-9]+$")


def hidden_name(name: str) -> bool:
    """Whether ``name`` is a dotfile that ``--hide-dotfiles`` hides."""
    return name.startswith(".") and name != WELL_KNOWN


def hidden_path(raw_path: str) -> bool:
    """Whether any segment of the URL path (decoded, ``%2e`` included) is hidden.

    A path the translation would refuse anyway (NUL, ``..``) is not called hidden here: its
    own error (400, 404) answers it.
    """
    try:
        segments = url_segments(raw_path)
    except HTTPError:
        return False
    return any(hidden_name(segment) for segment in segments)


def accepts_html(accept: str | None) -> bool:
    """Whether an ``Accept`` field names ``text/html`` with a non-zero weight."""
    if not accept:
        return False
    for item in accept.split(","):
        media, *params = item.split(";")
        if media.strip().lower() != "text/html":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value.strip()) > 0
                except ValueError:
                    return False
        return True
    return False


def spa_candidate(raw_path: str) -> bool:
    """Whether a missing ``raw_path`` could be a client-side route: a directory-like path,
    or a last segment without extension. For such a path the answer depends on ``Accept``
    (:func:`spa_route`), so it carries ``Vary: Accept`` whatever it is."""
    last = raw_path.rstrip("/").rsplit("/", 1)[-1]
    return raw_path.endswith("/") or not _EXTENSION.search(last)


def spa_route(raw_path: str, accept: str | None) -> bool:
    """Whether a missing ``raw_path`` is a client-side route to answer with the index page."""
    return accepts_html(accept) and spa_candidate(raw_path)


# -- command line ----------------------------------------------------------------------------


def _index_name(text: str) -> str:
    if not text or "/" in text or "\\" in text or "\x00" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid index page name {text!r}: a file name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The site options of the file server's command line."""
    parser.add_argument("--spa", action="store_true",
                        help="single-page app: a missing path without an extension, asked "
                        "for by a browser (Accept: text/html), gets the root's index page")
    parser.add_argument("--no-listing", action="store_true",
                        help="never list directories: one without an index page is 404")
    parser.add_argument("--hide-dotfiles", action="store_true",
                        help="404 for names starting with a dot (except .well-known), and "
                        "leave them out of listings")
    parser.add_argument("--index", action="append", type=_index_name, metavar="NAME",
                        help="index page name of directories (repeatable, in order of "
                        "preference; replaces index.html, index.htm)")
    parser.add_argument("--no-cache", action="store_true",
                        help="Cache-Control: no-cache, so browsers revalidate every use "
                        "(304 while unchanged)")


def handler_attributes(args: argparse.Namespace) -> dict[str, Any]:
    """Class attributes of the file server's handler for the parsed site options.

    ``--no-cache`` adds its field to ``extra_headers`` (the CLI's ``--header`` list, sent on
    every response), which the returned value replaces, so it includes ``args.header``.
    """
    attrs: dict[str, Any] = {
        "spa": bool(getattr(args, "spa", False)),
        "not_found_page": NOT_FOUND_PAGE,
        "directory_listing": not getattr(args, "no_listing", False),
        "hide_dotfiles": bool(getattr(args, "hide_dotfiles", False)),
    }
    index: Sequence[str] | None = getattr(args, "index", None)
    if index:
        attrs["index_pages"] = tuple(dict.fromkeys(index))
    if getattr(args, "no_cache", False):
        headers = tuple(getattr(args, "header", None) or ())
        attrs["extra_headers"] = (*headers, ("Cache-Control", "no-cache"))
    return attrs
