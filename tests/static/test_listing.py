"""The directory listing (minihttp.static.listing): natural order, sorting by the query
string, the breadcrumb, sizes, the page's responsive/dark CSS and escaping of odd names.

Pages are read back with :mod:`html.parser` (not regexes over the text), the way a browser
sees their structure: the rows' links, the headings' links and the breadcrumb's links.
"""

from __future__ import annotations

import os
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from minihttp.static.listing import (
    Entry,
    human_size,
    natural_key,
    parse_sort,
    render_listing,
    sort_entries,
)
from tests.helpers.cliserver import file_server

TIMEOUT = 5.0


class Page(HTMLParser):
    """Links by where they are: table body rows, table headings, the breadcrumb."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[str, str]] = []  # (href, text) of each row's first link
        self.headings: list[str] = []
        self.crumbs: list[tuple[str, str]] = []
        self.cells: list[list[tuple[dict[str, str | None], str]]] = []  # body cells per row
        self.after_table = ""
        self._where: list[str] = []
        self._href: str | None = None
        self._text = ""
        self._cell: dict[str, str | None] | None = None
        self._table_done = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "nav" and a.get("class") == "crumbs":
            self._where.append("crumbs")
        elif tag in ("thead", "tbody"):
            self._where.append(tag)
        elif tag == "tr" and self._where[-1:] == ["tbody"]:
            self.cells.append([])
        elif tag == "td":
            self._cell, self._text = a, ""
        elif tag == "a":
            self._href, self._text = a.get("href") or "", ""

    def handle_endtag(self, tag: str) -> None:
        where = self._where[-1] if self._where else ""
        if tag == "a" and self._href is not None:
            if where == "tbody" and (not self.cells or len(self.cells[-1]) == 0):
                self.rows.append((self._href, self._text))
            elif where == "thead":
                self.headings.append(self._href)
            elif where == "crumbs":
                self.crumbs.append((self._href, self._text))
            self._href = None
        elif tag == "td" and self._cell is not None and self.cells:
            self.cells[-1].append((self._cell, self._text))
            self._cell = None
        elif tag in ("thead", "tbody", "nav") and self._where:
            self._where.pop()
        elif tag == "table":
            self._table_done = True

    def handle_data(self, data: str) -> None:
        self._text += data
        if self._table_done:
            self.after_table += data


def page_of(entries: list[Entry], path: str = "/a b/c/", query: str = "",
            footer: str = "") -> Page:
    return Page(render_listing(path, entries, parent=path != "/", query=query,
                               footer=footer).decode("utf-8"))


# -- order -------------------------------------------------------------------------------------


def test_natural_order() -> None:
    names = ["item-10", "item-2", "Item-1", "item-1b", "a", "B", "item-002", "x9y10", "x9y9"]
    assert sorted(names, key=natural_key) == [
        "a", "B", "Item-1", "item-1b", "item-002", "item-2", "item-10", "x9y9", "x9y10"]


@pytest.mark.parametrize(("query", "expected"), [
    ("", ("name", False)), ("sort=size&order=desc", ("size", True)), ("sort=date", ("date", False)),
    ("sort=evil&order=up", ("name", False)), ("sort=size&sort=date", ("date", False)),
    ("order=desc", ("name", True)), ("%ZZ=&&&", ("name", False)),
    ("sort=size&" + "x=1&" * 50, ("name", False)),
])
def test_parse_sort(query: str, expected: tuple[str, bool]) -> None:
    assert parse_sort(query) == expected


ENTRIES = [
    Entry("item-10.txt", False, 10, 300.0), Entry("item-2.txt", False, 5000, 100.0),
    Entry("Zeta", True, None, 50.0), Entry("alpha", True, None, 400.0),
    Entry("dangling", False, None, None),
]


@pytest.mark.parametrize(("column", "descending", "names"), [
    ("name", False, ["alpha", "Zeta", "dangling", "item-2.txt", "item-10.txt"]),
    ("name", True, ["Zeta", "alpha", "item-10.txt", "item-2.txt", "dangling"]),
    ("size", True, ["Zeta", "alpha", "item-2.txt", "item-10.txt", "dangling"]),
    ("date", True, ["alpha", "Zeta", "item-10.txt", "item-2.txt", "dangling"]),
    ("date", False, ["Zeta", "alpha", "dangling", "item-2.txt", "item-10.txt"]),
])
def test_directories_first_then_the_column(column: str, descending: bool,
                                           names: list[str]) -> None:
    assert [e.name for e in sort_entries(ENTRIES, column, descending)] == names


# -- the page ------------------------------------------------------------------------------------


def test_rows_follow_the_query() -> None:
    page = page_of(ENTRIES, query="sort=size&order=desc")
    assert [href for href, _ in page.rows] == [
        "../", "Zeta/", "alpha/", "item-2.txt", "item-10.txt", "dangling"]


def test_heading_links_sort_and_flip() -> None:
    assert page_of(ENTRIES).headings == [
        "?sort=name&order=desc", "?sort=size&order=desc", "?sort=date&order=desc"]
    assert page_of(ENTRIES, query="sort=size&order=desc").headings == [
        "?sort=name&order=asc", "?sort=size&order=asc", "?sort=date&order=desc"]


def test_sizes_human_with_exact_bytes_and_right_aligned() -> None:
    page = page_of([Entry("big.iso", False, 3 * 1024**3 + 5, 0.0)], path="/")
    (attrs, text), = [c for c in page.cells[0] if c[0].get("class") == "n"]
    assert text == "3.0 GiB" and attrs["title"] == "3,221,225,477 bytes"
    html = render_listing("/", [], parent=False).decode()
    assert '<th class="n"' in html and ".n{text-align:right" in html
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 5 * 1024**2)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB"]


def test_dark_mode_and_narrow_screens() -> None:
    html = render_listing("/", [], parent=False).decode()
    assert "color-scheme:light dark" in html and "prefers-color-scheme:dark" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    # at 360 px (22.5em) the date column is hidden and long names wrap instead of scrolling
    assert "@media (max-width:40em)" in html and ".d{display:none}" in html
    assert "overflow-wrap:anywhere" in html


def test_breadcrumb_has_a_relative_link_per_segment() -> None:
    page = page_of([], path="/a b/<c>/d/")
    assert page.crumbs == [("../../../", "/"), ("../../", "a b"), ("../", "<c>"), ("./", "d")]
    assert page_of([], path="/").crumbs == [("./", "/")]


def test_footer_comes_after_the_table() -> None:
    html = render_listing("/", ENTRIES, parent=False, footer='<form id="up"></form>').decode()
    assert html.index("</table>") < html.index('<form id="up"></form>') < html.index("</body>")
    assert "<form" not in render_listing("/", ENTRIES, parent=False).decode()
    html = render_listing("/", ENTRIES, parent=False, extra='<p id="x"></p>').decode()
    assert html.index("</nav>") < html.index('<p id="x"></p>') < html.index("<table>")


ODD = ['q"uote\'s.txt', "<b>&amp;.txt", "new\nline.txt", "bad\udcff.txt", "hash#.txt",
       "what?.txt", "100%.txt", "a:b.txt", "sp ace.txt"]


def test_odd_names_are_escaped_and_round_trip() -> None:
    html = render_listing("/", [Entry(n, False, 1, 0.0) for n in ODD], parent=False).decode()
    assert "<b>" not in html and 'href="new%0Aline.txt"' in html
    page = Page(html)
    by_text = {text: href for href, text in page.rows}
    for name in ODD:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        href = by_text[shown]
        assert "/" not in href and "#" not in href and "?" not in href and ":" not in href
        assert urllib.parse.unquote(href, errors="surrogateescape") == name


# -- served ---------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for i in (1, 2, 10, 20):
        (tmp_path / f"item-{i}.txt").write_bytes(b"x" * i)
    (tmp_path / "Sub Dir").mkdir()
    (tmp_path / "Sub Dir" / "deep").mkdir()
    (tmp_path / "Sub Dir" / "deep" / "f.txt").write_text("f")
    with open(os.path.join(os.fsencode(tmp_path), b"raw\xff#?.txt"), "wb") as f:
        f.write(b"odd")
    return tmp_path


def test_served_listing_sorts_and_links_work(tree: Path) -> None:
    with file_server(tree) as base, requests.Session() as s:
        plain = Page(s.get(base + "/", timeout=TIMEOUT).text)
        by_size = Page(s.get(base + "/?sort=size&order=desc", timeout=TIMEOUT).text)
        hrefs = [href for href, _ in plain.rows]
        statuses = [s.get(base + "/" + href, timeout=TIMEOUT).status_code for href in hrefs]
        deep = base + "/Sub%20Dir/deep/"
        crumbs = Page(s.get(deep, timeout=TIMEOUT).text).crumbs
        followed = [s.get(urllib.parse.urljoin(deep, href), timeout=TIMEOUT).url
                    for href, _ in crumbs]
    assert hrefs == ["Sub%20Dir/", "item-1.txt", "item-2.txt", "item-10.txt", "item-20.txt",
                     "raw%FF%23%3F.txt"]
    assert statuses == [200] * len(hrefs)
    assert [href for href, _ in by_size.rows][:3] == ["Sub%20Dir/", "item-20.txt", "item-10.txt"]
    assert followed == [base + "/", base + "/Sub%20Dir/", deep]
