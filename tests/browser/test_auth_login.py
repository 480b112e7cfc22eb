"""Logging in with Basic auth in Chromium (``--auth USER:PASS``; needs the ``auth`` branch).

Headless Chromium shows no password dialog: a page answered 401 with a Basic challenge is
shown blank (its status is read from Navigation Timing). What it does (checked with Chromium
156) is what it does after a person typed into that dialog: the credentials of a
``http://user:pass@host/`` address are sent after the server's 401 with its
``WWW-Authenticate: Basic``, then kept for the origin, so links clicked later and addresses
typed without credentials are sent with them. A 401 without ``WWW-Authenticate: Basic``, or
a server that accepts the header once and not again, fails these tests.

(WebDriver BiDi's auth handler, which would answer the dialog itself, failed here with
"Invalid InterceptionId" in most runs, Chromium 156 with Selenium 4.51: not used.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers.browser import (
    FileServer,
    click_link,
    file_server,
    links,
    navigation_status,
    page_text,
)

USER = "alice"
PASSWORD = "open sesame:42"  # a space and a colon: both legal in a Basic password


def with_credentials(url: str, user: str = USER, password: str = PASSWORD) -> str:
    """``url`` with ``user:password@`` in it, percent-encoded as a browser's address bar would."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "private"
    (root / "reports").mkdir(parents=True)
    (root / "reports" / "q3.txt").write_text("quarterly figures\n")
    (root / "readme.txt").write_text("members only\n")
    return root


@pytest.fixture
def server(site: Path) -> Iterator[FileServer]:
    with file_server(site, "--auth", f"{USER}:{PASSWORD}") as s:
        yield s


def test_without_credentials_the_browser_gets_401(browser: Any, server: FileServer) -> None:
    browser.get(server.url + "/")
    assert navigation_status(browser) == 401
    assert links(browser) == {}
    assert '"GET / HTTP/1.1" 401' in server.log()


def test_log_in_then_browse(browser: Any, server: FileServer, shots: Path) -> None:
    browser.get(with_credentials(server.url + "/"))
    assert navigation_status(browser) == 200
    assert browser.title == "Index of /", page_text(browser)
    browser.save_screenshot(str(shots / "auth-logged-in.png"))
    # Chromium keeps the credentials for the origin: clicked links work...
    click_link(browser, "reports/", within="tbody")
    assert browser.title == "Index of /reports/"
    click_link(browser, "q3.txt", within="tbody")
    assert page_text(browser) == "quarterly figures\n"
    # ... and so does an address typed without them.
    browser.get(server.url + "/readme.txt")
    assert page_text(browser) == "members only\n"
    assert '"GET /readme.txt HTTP/1.1" 200' in server.log(), server.log()


def test_wrong_password_is_refused(browser: Any, server: FileServer) -> None:
    browser.get(with_credentials(server.url + "/readme.txt", password="open sesame:43"))
    assert navigation_status(browser) == 401
    assert "members only" not in page_text(browser)
    assert '"GET /readme.txt HTTP/1.1" 200' not in server.log()


def test_credentials_sent_as_a_header(browser: Any, server: FileServer) -> None:
    """The same credentials sent by the browser as a header (CDP), as a script or an
    extension would: the server accepts them on every request, subresources included."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                            {"headers": {"Authorization": f"Basic {token}"}})
    browser.get(server.url + "/reports/")
    assert browser.title == "Index of /reports/"
    status = browser.execute_script(
        "return fetch('/readme.txt').then(r => r.status + ' ' + r.headers.get('content-type'))")
    assert status.startswith("200 text/plain"), status
