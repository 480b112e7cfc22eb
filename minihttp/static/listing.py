"""Directory listings as small, valid HTML5 pages: sortable, readable on a phone, dark or
light as the browser prefers, with no JavaScript.

:func:`render_listing` is pure: it gets the entries already read (:class:`Entry`) and the
request's query, and returns UTF-8 bytes, so it is unit-tested without a file system.
:func:`scan_directory` reads a directory with ``os.scandir`` and never raises for one bad entry
(a dangling symlink or a file removed meanwhile is shown without size rather than breaking the
page).

Rules of this module:

* Names are shown HTML-escaped and linked percent-encoded (``urllib.parse.quote``), so no
  name (``<script>``, quotes, ``#``, ``?``, ``%``, ``:``, spaces, newlines) can inject markup
  or change the URL; every link is relative (a breadcrumb segment is ``../`` repeated), so the
  page works behind a proxy that mounts the tree under a prefix.
* Names that are not valid UTF-8 (POSIX file names are bytes) are linked with their exact
  bytes percent-encoded and shown with U+FFFD, keeping the page valid UTF-8.
* Order: directories first, then files; within each, the column the query names
  (``?sort=name|size|date&order=asc|desc``; anything else is the default, name ascending).
  Names sort naturally (``item-2`` before ``item-10``) and case-insensitively, ties broken by
  the exact name, so the order is total and stable.
* The page's markup is a contract with the browser tests: rows are ``<tr>`` in one
  ``<table>``, names are ``<a>`` links, column headings link with ``sort=``, the breadcrumb is
  ``<nav class="crumbs">``; ``footer`` (e.g. an upload form) comes right after the table,
  ``extra`` right before it.
"""

from __future__ import annotations

import html
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["SORT_KEYS", "Entry", "human_size", "natural_key", "parse_sort", "render_listing",
           "scan_directory", "sort_entries"]

#: Columns a listing can be sorted by (the ``sort=`` values).
SORT_KEYS = ("name", "size", "date")


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a listing."""

    name: str  # file system name (str, with surrogate escapes for undecodable bytes)
    is_dir: bool
    size: int | None  # None when unknown (dangling link) or a directory
    mtime: float | None
    is_link: bool = False


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key: digit runs compare as numbers, the rest case-insensitively (``item-2`` <
    ``item-10`` < ``Item-11``); the exact name breaks ties.

    ``re.split`` with a group alternates text and digits, text first, so equal positions
    always hold the same type and the tuples compare without a TypeError.
    """
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def parse_sort(query: str) -> tuple[str, bool]:
    """``(column, descending)`` from a query string; the default for anything unknown."""
    try:
        fields = urllib.parse.parse_qs(query, max_num_fields=8) if query else {}
    except ValueError:  # more fields than any sort link has: not ours, the default order
        fields = {}
    column = fields.get("sort", ["name"])[-1]
    if column not in SORT_KEYS:
        column = "name"
    return column, fields.get("order", ["asc"])[-1] == "desc"


def sort_entries(entries: Iterable[Entry], column: str = "name",
                 descending: bool = False) -> list[Entry]:
    """Directories first, then files, each ordered by ``column``."""
    def key(e: Entry) -> tuple[object, ...]:
        name = natural_key(e.name)
        if column == "size":
            return (e.size if e.size is not None else -1, name)
        if column == "date":
            return (e.mtime if e.mtime is not None else float("-inf"), name)
        return (name,)

    dirs = sorted((e for e in entries if e.is_dir), key=key, reverse=descending)
    files = sorted((e for e in entries if not e.is_dir), key=key, reverse=descending)
    return dirs + files


def scan_directory(path: str, visible: Callable[[os.DirEntry[str]], bool]) -> list[Entry]:
    """Read ``path`` into entries in the default order; ``visible`` hides entries (e.g.
    escaping links, dotfiles).

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
    return sort_entries(entries)


def _shown(name: str) -> str:
    return html.escape(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _href(name: str) -> str:
    # quote() encodes with errors="surrogateescape" so undecodable bytes round-trip; "/" is
    # not kept (a name never holds one) and ":" is encoded, so a name is never a scheme.
    return html.escape(urllib.parse.quote(name, safe="", errors="surrogateescape"))


def human_size(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``2.0 KiB``, ``1.5 MiB`` ..."""
    if n < 1024:
        return f"{n} B"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def _size_cell(e: Entry) -> str:
    if e.size is None:
        return '<td class="n">-</td>'
    return f'<td class="n" title="{e.size:,} bytes">{human_size(e.size)}</td>'


def _date_cell(ts: float | None) -> str:
    if ts is None:
        return '<td class="d">-</td>'
    t = time.gmtime(ts)
    return (f'<td class="d"><time datetime="{time.strftime("%Y-%m-%dT%H:%M:%SZ", t)}">'
            f'{time.strftime("%Y-%m-%d %H:%M", t)}</time></td>')


def _crumbs(display_path: str) -> str:
    """The breadcrumb heading: a relative link per segment of ``display_path`` (decoded)."""
    segments = [s for s in display_path.split("/") if s]
    depth = len(segments)
    links = [f'<a href="{"../" * depth or "./"}">/</a>']
    for i, seg in enumerate(segments):
        links.append(f'<a href="{"../" * (depth - i - 1) or "./"}">{_shown(seg)}</a>/')
    return ('<nav class="crumbs" aria-label="Path"><h1>Index of ' + "".join(links)
            + "</h1></nav>")


#: (sort key, heading, class, the order of a first click: names A-Z, biggest, newest first)
_HEADINGS = (("name", "Name", "", "asc"), ("size", "Size", ' class="n"', "desc"),
             ("date", "Modified (UTC)", ' class="d"', "desc"))


def _heading_row(column: str, descending: bool) -> str:
    cells = []
    for key, label, cls, first in _HEADINGS:
        if key == column:
            order = "asc" if descending else "desc"  # a click on the sorted column flips it
            aria = ' aria-sort="descending"' if descending else ' aria-sort="ascending"'
            arrow = " &#9660;" if descending else " &#9650;"
        else:
            order, aria, arrow = first, "", ""
        cells.append(f'<th{cls}{aria}><a href="?sort={key}&amp;order={order}">{label}</a>'
                     f"{arrow}</th>")
    return "<tr>" + "".join(cells) + "</tr>"


_STYLE = (
    ":root{color-scheme:light dark;--line:#ddd;--dim:#666}"
    "@media (prefers-color-scheme:dark){:root{--line:#444;--dim:#aaa}"
    "a{color:#8ab4f8}a:visited{color:#c58af9}}"
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;"
    "line-height:1.4}"
    ".crumbs h1{font-size:1.4em;font-weight:600;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{padding:.3em .6em;text-align:left;border-bottom:1px solid var(--line)}"
    "th a{color:inherit}"
    "td:first-child{overflow-wrap:anywhere;word-break:break-word}"
    ".n{text-align:right;white-space:nowrap}.d{white-space:nowrap;color:var(--dim)}"
    "a{text-decoration:none}a:hover{text-decoration:underline}"
    "@media (max-width:40em){body{margin:.5em auto;padding:0 .5em}.d{display:none}"
    "th,td{padding:.3em .3em}}"
)


def render_listing(display_path: str, entries: Iterable[Entry], *, parent: bool,
                   query: str = "", footer: str = "", extra: str = "") -> bytes:
    """The listing page for ``display_path`` (the decoded URL path) as UTF-8 bytes.

    ``parent`` adds a link to the enclosing directory (false at the served root); ``query``
    is the request's query string (it chooses the order, see :func:`parse_sort`); ``footer``
    and ``extra`` are HTML fragments inserted as they are (the caller escapes), ``footer``
    after the table, ``extra`` between the heading and the table.
    """
    column, descending = parse_sort(query)
    title = f"Index of {_shown(display_path)}"
    rows = []
    if parent:
        rows.append('<tr><td><a href="../">../</a></td><td class="n">-</td>'
                    '<td class="d">-</td></tr>')
    for e in sort_entries(entries, column, descending):
        slash = "/" if e.is_dir else ""
        arrow = ' <span title="symbolic link">&#8594;</span>' if e.is_link else ""
        rows.append(
            f'<tr><td><a href="{_href(e.name)}{slash}">{_shown(e.name)}{slash}</a>{arrow}</td>'
            f"{_size_cell(e)}{_date_cell(e.mtime)}</tr>"
        )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{_crumbs(display_path)}\n{extra + chr(10) if extra else ''}<table>\n"
        f"<thead>{_heading_row(column, descending)}</thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n"
        + (footer + "\n" if footer else "")
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")
