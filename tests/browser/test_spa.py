"""A single-page app in Chromium (``--spa``; needs the ``site`` branch).

The app routes on the client: its links change the address with ``history.pushState`` and
never ask the server. The server's part comes when someone reloads such an address or opens
it from a bookmark: with ``--spa`` a missing path that a browser asks for as a page gets
``index.html``, and the app draws the route; files that exist are still themselves, and a
script's request for a missing JSON file still gets a 404 (not the app's HTML).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import FileServer, file_server, page_text, wait_text, wait_until

INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>The app</title></head>
<body>
<nav><a href="/orders/42" data-route>Order 42</a> <a href="/about" data-route>About</a></nav>
<p id="route">not drawn</p>
<p id="api">not asked</p>
<script src="/static/app.js"></script>
</body></html>
"""

APP_JS = """
function draw() {
  document.getElementById('route').textContent = 'route ' + location.pathname;
}
for (const a of document.querySelectorAll('a[data-route]')) {
  a.addEventListener('click', (e) => {
    e.preventDefault();
    history.pushState(null, '', a.getAttribute('href'));
    draw();
  });
}
window.addEventListener('popstate', draw);
draw();
// An API call for a missing resource, with and without an extension: JSON is asked for, so
// neither may be answered with the app's HTML.
const asJson = {headers: {Accept: 'application/json'}};
Promise.all([fetch('/api/missing.json', asJson), fetch('/api/orders', asJson)])
  .then(rs => { document.getElementById('api').textContent = 'api ' + rs.map(r => r.status).join(' '); });
"""


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "static").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "static" / "app.js").write_text(APP_JS)
    (root / "robots.txt").write_text("User-agent: *\n")
    return root


@pytest.fixture
def spa(app_root: Path) -> Iterator[FileServer]:
    with file_server(app_root, "--spa") as server:
        yield server


def test_deep_link_opens_the_app_on_its_route(browser: Any, spa: FileServer,
                                              shots: Path) -> None:
    browser.get(spa.url + "/orders/42")
    assert browser.title == "The app"
    assert browser.current_url == spa.url + "/orders/42"  # no redirect: the address stays
    wait_text(browser, "#route", "route /orders/42")
    # The app's own script was served as a script (not index.html in its place).
    assert browser.execute_script("return document.getElementById('route').textContent") \
        == "route /orders/42"
    # A script asking for missing JSON gets a 404, not the app.
    wait_text(browser, "#api", "api 404 404")
    browser.save_screenshot(str(shots / "spa-deep-link.png"))


def test_client_side_navigation_then_reload(browser: Any, spa: FileServer) -> None:
    browser.get(spa.url + "/")
    wait_text(browser, "#route", "route /")
    browser.find_element("link text", "About").click()
    wait_text(browser, "#route", "route /about")
    assert browser.current_url == spa.url + "/about"
    before = browser.execute_script("return performance.timeOrigin")
    browser.refresh()  # now the server is asked for /about, which does not exist
    wait_until(browser, lambda d: d.execute_script("return performance.timeOrigin") != before,
               "the reload")
    wait_text(browser, "#route", "route /about")
    browser.back()
    wait_text(browser, "#route", "route /")


def test_existing_files_are_still_served(browser: Any, spa: FileServer) -> None:
    browser.get(spa.url + "/robots.txt")
    assert page_text(browser) == "User-agent: *\n"


def test_without_spa_a_deep_link_is_a_404(browser: Any, app_root: Path) -> None:
    with file_server(app_root) as server:
        browser.get(server.url + "/orders/42")
        assert browser.title != "The app"
        assert "404" in page_text(browser)
