"""The polished listing in Chromium (issue 14 item 7; needs the ``site`` branch's listing).

What only a rendered page shows: whether the listing fits a 360 px phone screen without
scrolling sideways, whether the Size heading lines up with the right-aligned sizes, whether
dark mode follows the browser's preference, and whether the breadcrumb and the sort links in
the headings lead where they say.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import FileServer, click_link, file_server, links, wait_until

PHONE = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("polish")
    now = time.time()
    # Natural order is item-1, item-2, item-10; by size (2000, 3000, 1000 bytes) and by date
    # (newest, oldest, between) neither that order nor its reverse.
    for n, size, age in ((1, 2000, 1), (2, 3000, 3), (10, 1000, 2)):
        p = root / f"item-{n}.txt"
        p.write_bytes(b"x" * size)
        os.utime(p, (now - 86400 * age, now - 86400 * age))
    # A name as long as a phone's photo names, with no space to break it at.
    (root / "IMG_20261205_123456789_HDR_PORTRAIT_from_the_phone_camera.jpg").write_bytes(
        b"\xff\xd8" + b"\0" * 123456)
    deep = root / "docs" / "deeper"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("leaf\n")
    with file_server(root, "-q") as server:
        yield server


def _names(browser: Any) -> list[str]:
    return [n for n in browser.execute_script(
        "return [...document.querySelectorAll('tbody a')].map(a => a.textContent)")
        if n != "../"]


def test_listing_fits_a_360px_screen(browser: Any, site: FileServer, shots: Path) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(site.url + "/")
    browser.save_screenshot(str(shots / "listing-360px.png"))
    # A mobile browser widens its layout viewport to content that does not fit (and zooms
    # out): innerWidth above 360 means the page ran off the screen.
    width = browser.execute_script("return window.innerWidth")
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert (width, scroll <= width) == (360, True), \
        f"laid out {width} px wide, content {scroll} px, on a 360 px screen"
    # Every column is on the screen: no cell starts or ends outside it.
    outside = browser.execute_script(
        "return [...document.querySelectorAll('td, th')].filter(c => {"
        " const r = c.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth + 0.5;"
        "}).map(c => c.textContent)")
    assert outside == []


def test_size_heading_lines_up_with_the_sizes(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/")
    edges = browser.execute_script("""
        const right = (el) => { const r = document.createRange(); r.selectNodeContents(el);
                                return r.getBoundingClientRect().right; };
        const heads = [...document.querySelectorAll('thead th')];
        const col = heads.findIndex(th => th.textContent.trim().startsWith('Size'));
        const cell = [...document.querySelectorAll('tbody tr')]
            .map(tr => tr.children[col]).find(td => /\\d/.test(td.textContent));
        return [right(heads[col]), right(cell)];""")
    heading, number = edges
    assert abs(heading - number) <= 2, f"Size heading ends at {heading} px, sizes at {number} px"


def test_names_in_natural_order(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/")
    names = _names(browser)
    items = [n for n in names if n.startswith("item-")]
    assert items == ["item-1.txt", "item-2.txt", "item-10.txt"]
    assert names[0] == "docs/"  # directories first


def test_sort_links_in_the_headings(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/")
    heads = browser.execute_script(
        "return [...document.querySelectorAll('thead th a')].map(a => a.getAttribute('href'))")
    assert any("sort=" in h for h in heads), heads
    for heading, expected in (("Size", ["item-10.txt", "item-1.txt", "item-2.txt"]),
                              ("Modified", ["item-2.txt", "item-10.txt", "item-1.txt"])):
        browser.get(site.url + "/")
        anchor = browser.execute_script(
            "return [...document.querySelectorAll('thead th a')]"
            ".find(a => a.textContent.trim().startsWith(arguments[0]))", heading)
        assert anchor is not None, f"no sort link in the {heading} heading"
        anchor.click()
        assert "sort=" in browser.current_url
        items = [n for n in _names(browser) if n.startswith("item-")]
        # Either direction (smallest or biggest first) is a sort by that column.
        assert items in (expected, expected[::-1]), (heading, items)


def test_breadcrumb_leads_back_up(browser: Any, site: FileServer) -> None:
    browser.get(site.url + "/docs/deeper/")
    crumbs = browser.execute_script(
        "return [...document.querySelectorAll('nav.crumbs a')]"
        ".map(a => [a.textContent, a.href])")
    hrefs = [h for _, h in crumbs]
    assert site.url + "/" in hrefs and site.url + "/docs/" in hrefs, crumbs
    docs_text = next(t for t, h in crumbs if h == site.url + "/docs/")
    browser.execute_script(
        "[...document.querySelectorAll('nav.crumbs a')].find(a => a.textContent === arguments[0])"
        ".click()", docs_text)
    wait_until(browser, lambda d: d.current_url == site.url + "/docs/", "the docs crumb")
    assert "deeper/" in links(browser, within="tbody")


def test_dark_mode_follows_the_browser(browser: Any, site: FileServer, shots: Path) -> None:
    def colours(scheme: str) -> tuple[float, float]:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})
        browser.get(site.url + "/")
        browser.save_screenshot(str(shots / f"listing-{scheme}.png"))
        return tuple(browser.execute_script("""
            const lum = (c) => { const m = c.match(/[\\d.]+/g).map(Number);
                                 return (0.2126*m[0] + 0.7152*m[1] + 0.0722*m[2]) / 255; };
            // The first opaque background up the tree; else the canvas, whose colour (the
            // system colour Canvas) follows the page's color-scheme: read it from a probe.
            const canvas = () => { const p = document.createElement('div');
                p.style.backgroundColor = 'Canvas'; document.body.append(p);
                const c = getComputedStyle(p).backgroundColor; p.remove(); return c; };
            const bg = (el) => { for (; el; el = el.parentElement) {
                const c = getComputedStyle(el).backgroundColor;
                if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
                return canvas(); };
            const cell = document.querySelector('tbody td');
            return [lum(bg(cell)), lum(getComputedStyle(cell).color)];"""))
    try:
        light_bg, light_fg = colours("light")
        dark_bg, dark_fg = colours("dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert light_bg > light_fg, "light mode: dark text on a light background"
    assert dark_bg < dark_fg, "dark mode: light text on a dark background"
    assert dark_bg < 0.3 < light_bg


def test_links_still_work_on_a_phone(browser: Any, site: FileServer) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(site.url + "/")
    click_link(browser, "docs/", within="tbody")
    click_link(browser, "deeper/", within="tbody")
    click_link(browser, "leaf.txt", within="tbody")
    assert browser.current_url == site.url + "/docs/deeper/leaf.txt"
