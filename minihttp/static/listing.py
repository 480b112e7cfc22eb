"""Directory listings as small, valid HTML5 pages.

:func:`render_listing` is pure: it gets the entries already read (:class:`Entry`) and returns
UTF-8 bytes, so it is unit-tested without a file system. :func:`scan_directory` reads a
directory with ``os.scandir`` and never raises for one bad entry (a dangling symlink or a file
removed meanwhile is shown without size rather than breaking the page).

Rules of this module:

* Names are shown HTML-escaped and linked percent-encoded (``urllib.parse.quote``), so no
  name (``<script>``, quotes, ``#``, ``?``, ``%``, spaces) can inject markup or change the URL.
* Names that are not valid UTF-8 (POSIX file names are bytes) are linked with their exact
  bytes percent-encoded and shown with U+FFFD, keeping the page valid UTF-8.
* Directories first, then files, each sorted case-insensitively.
"""

from __future__ import annotations

import html
import os
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Entry", "render_listing", "scan_directory"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a listing."""

    name: str  # file system name (str, with surrogate escapes for undecodable bytes)
    is_dir: bool
    size: int | None  # None when unknown (dangling link) or a directory
    mtime: float | None
    is_link: bool = False


def scan_directory(path: str, visible: Callable[[os.DirEntry[str]], bool]) -> list[Entry]:
    """Read ``path`` into sorted entries; ``visible`` hides entries (e.g. escaping links).

    Raises OSError only when the directory itself cannot be read.
    """
    entries: list[Entry] = []
    with os.scandir(path) as it:
        for de in it:
            try:
                if not visible(de):
                    continue
                is_link = de.is_symlink()
                try:
                    st = de.stat()  # follows links: what a click on it would get
                except OSError:
                    entries.append(Entry(de.name, False, None, None, is_link))
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                entries.append(
                    Entry(de.name, is_dir, None if is_dir else st.st_size, st.st_mtime, is_link)
                )
            except OSError:
                continue
    entries.sort(key=lambda e: (not e.is_dir, e.name.lower(), e.name))
    return entries


def _shown(name: str) -> str:
    return html.escape(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _href(name: str) -> str:
    # quote() encodes with errors="surrogateescape" so undecodable bytes round-trip.
    return html.escape(urllib.parse.quote(name, errors="surrogateescape"))


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def _date(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{padding:.25em .6em;text-align:left;border-bottom:1px solid #ddd}"
    "td.n{text-align:right;white-space:nowrap}td.d{white-space:nowrap}"
    "a{text-decoration:none}a:hover{text-decoration:underline}"
)


def render_listing(display_path: str, entries: Iterable[Entry], *, parent: bool,
                   extra: str = "") -> bytes:
    """The listing page for ``display_path`` (the decoded URL path) as UTF-8 bytes.

    ``parent`` adds a link to the enclosing directory (false at the served root); ``extra``
    is trusted HTML put below the heading (the upload form).
    """
    title = f"Index of {_shown(display_path)}"
    rows = []
    if parent:
        rows.append('<tr><td><a href="../">../</a></td><td class="n">-</td><td>-</td></tr>')
    for e in entries:
        slash = "/" if e.is_dir else ""
        arrow = " &#8594;" if e.is_link else ""
        rows.append(
            f'<tr><td><a href="{_href(e.name)}{slash}">{_shown(e.name)}{slash}</a>{arrow}</td>'
            f'<td class="n">{_size(e.size)}</td><td class="d">{_date(e.mtime)}</td></tr>'
        )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n{extra + chr(10) if extra else ''}<table>\n"
        "<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")
