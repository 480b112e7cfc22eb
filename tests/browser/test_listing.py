"""The directory listing in Chromium: its links lead where they say, files open, odd names stay names.

A unit test can check the listing's HTML; only a browser checks that what a person clicks on
arrives where it should (the browser resolves the relative links and decodes the
percent-encoding), and that a name made of markup stays text on the rendered page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import (
    FileServer,
    click_link,
    file_server,
    links,
    page_text,
    wait_until,
)

# File names that are markup, URL syntax or not UTF-8 at all; each file holds its own number,
# so the page that opens shows which file was reached.
ODD_NAMES: list[str | bytes] = [
    '<img src=x onerror="document.body.dataset.pwned=1">.txt',
    "<b>bold<b>",  # a directory
    "a&amp;b.txt",
    "quote\"'.txt",
    "100% sure.txt",
    "#hash.txt",
    "what?.txt",
    "sp  ace.txt",
    "semi;colon=1.txt",
    "plus+sign.txt",
    "ünïcödé ✓.txt",
    b"\xff\xfe-not-utf8.txt",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("site")
    (root / "alpha.txt").write_text("alpha file contents\n")
    (root / "page.html").write_text('<!DOCTYPE html><title>A page</title><h1 id="hi">Hi</h1>\n')
    (root / "docs").mkdir()
    (root / "docs" / "inner.txt").write_text("inner file contents\n")
    (root / "docs" / "deeper").mkdir()
    (root / "docs" / "deeper" / "leaf.txt").write_text("leaf\n")
    odd = root / "odd"
    odd.mkdir()
    for i, name in enumerate(ODD_NAMES):
        path = os.path.join(os.fsencode(odd), os.fsencode(name))
        if name == "<b>bold<b>":
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(f"odd file number {i}\n".encode())
    with file_server(root, "-q") as server:
        yield server


def test_listing_links_every_entry(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/")
    assert browser.title == "Index of /"
    assert links(browser, within="tbody") == {
        "docs/": "docs/", "odd/": "odd/", "alpha.txt": "alpha.txt", "page.html": "page.html",
    }
    # Directories come first.
    texts = [a.text for a in browser.find_elements("css selector", "tbody a[href]")]
    assert texts == ["docs/", "odd/", "alpha.txt", "page.html"]


def test_follow_links_down_and_back_up(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/")
    click_link(browser, "docs/", within="tbody")
    assert browser.current_url == site.url + "/docs/"
    assert browser.title == "Index of /docs/"
    click_link(browser, "deeper/", within="tbody")
    assert browser.current_url == site.url + "/docs/deeper/"
    assert "leaf.txt" in links(browser, within="tbody")
    click_link(browser, "../", within="tbody")
    assert browser.current_url == site.url + "/docs/"
    click_link(browser, "../", within="tbody")
    assert browser.current_url == site.url + "/"
    assert browser.title == "Index of /"


def test_open_a_text_file_and_an_html_file(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/docs/")
    click_link(browser, "inner.txt", within="tbody")
    assert browser.current_url == site.url + "/docs/inner.txt"
    assert page_text(browser) == "inner file contents\n"
    browser.back()
    wait_until(browser, lambda d: d.current_url == site.url + "/docs/", "back to /docs/")
    browser.get(site.url + "/")
    click_link(browser, "page.html", within="tbody")
    # Rendered as HTML (text/html), not shown as source.
    assert browser.title == "A page"
    assert browser.find_element("css selector", "h1#hi").text == "Hi"


def test_odd_names_are_text_and_their_links_work(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/odd/")
    shown = links(browser, within="tbody")
    expected = {
        (n.decode("utf-8", "replace") if isinstance(n, bytes) else n)
        + ("/" if n == "<b>bold<b>" else "")
        for n in ODD_NAMES
    }
    assert set(shown) - {"../"} == expected
    # No name became markup: no image, no bold element, the onerror never ran.
    assert browser.find_elements("css selector", "img, b") == []
    assert browser.execute_script("return document.body.dataset.pwned") is None
    hrefs = {text: browser.execute_script(
        "return [...document.querySelectorAll('tbody a')]"
        ".find(a => a.textContent === arguments[0]).href",
        text) for text in shown}
    for i, name in enumerate(ODD_NAMES):
        text = (name.decode("utf-8", "replace") if isinstance(name, bytes) else name)
        if name == "<b>bold<b>":
            browser.get(hrefs[text + "/"])
            assert browser.title == "Index of /odd/<b>bold<b>/", browser.current_url
            continue
        browser.get(hrefs[text])
        assert page_text(browser) == f"odd file number {i}\n", (name, browser.current_url)


def test_screenshot_of_the_listing(browser: Any, site: FileServer, shots: Path) -> None:
    browser.get(site.url + "/odd/")
    path = shots / "listing-odd-1280.png"
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    # Every entry is a visible row, and nothing runs off the side of a desktop window.
    rows = browser.find_elements("css selector", "tbody tr")
    assert len(rows) == len(ODD_NAMES) + 1
    assert all(r.is_displayed() for r in rows)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
