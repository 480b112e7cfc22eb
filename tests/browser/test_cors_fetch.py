"""A cross-origin ``fetch()`` in Chromium, with a preflight (``--cors``).

Page A (one server) runs a script that fetches from server B (another port, so another
origin) with a header that is not CORS-safelisted, which makes Chromium send a preflight
``OPTIONS`` first and send the real request only if B's answers allow it. The script writes
what it got into the page; the tests read the page. Only a browser enforces CORS, so only a
browser can tell whether B's headers are the right ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import FETCH_PAGE, FileServer, file_server, requests_seen, run_fetch

# A JSON Content-Type and a custom header: neither is CORS-safelisted, so a preflight happens.
GET_INIT = {"headers": {"Content-Type": "application/json", "X-Requested-By": "minihttp-tests"}}


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[FileServer]:
    """Server A: serves the page that fetches from server B."""
    root = tmp_path / "a"
    root.mkdir()
    (root / "page.html").write_text(FETCH_PAGE)
    with file_server(root) as server:
        yield server


@pytest.fixture
def b_root(tmp_path: Path) -> Path:
    root = tmp_path / "b"
    root.mkdir()
    (root / "x.json").write_text('{"hello": "from B"}\n')
    return root


def test_fetch_with_preflight_from_another_origin(browser: Any, page_server: FileServer,
                                                 b_root: Path) -> None:
    with file_server(b_root, "--cors") as b:
        out = run_fetch(browser, page_server, b.url + "/x.json", GET_INIT)
        assert out == 'ok 200 {"hello": "from B"}\n'
        # Chromium asked first (the preflight), then fetched.
        assert requests_seen(b, "OPTIONS", "/x.json") in ([204], [200]), b.log()
        assert requests_seen(b, "GET", "/x.json") == [200], b.log()
        log = b.log()
        assert log.index("OPTIONS /x.json") < log.index("GET /x.json")


def test_fetch_allowed_for_the_named_origin_only(browser: Any, page_server: FileServer,
                                                 b_root: Path) -> None:
    with file_server(b_root, "--cors", page_server.url) as b:
        out = run_fetch(browser, page_server, b.url + "/x.json", GET_INIT)
        assert out == 'ok 200 {"hello": "from B"}\n'
    with file_server(b_root, "--cors", "http://127.0.0.1:1") as b:
        out = run_fetch(browser, page_server, b.url + "/x.json", GET_INIT)
        assert out.startswith("error TypeError"), out
        # The preflight failed, so Chromium never sent the GET itself.
        assert requests_seen(b, "GET", "/x.json") == [], b.log()


def test_without_cors_the_browser_refuses(browser: Any, page_server: FileServer,
                                          b_root: Path) -> None:
    with file_server(b_root) as b:
        out = run_fetch(browser, page_server, b.url + "/x.json", GET_INIT)
        assert out.startswith("error TypeError"), out
        assert requests_seen(b, "GET", "/x.json") == [], b.log()
        # The same fetch from B's own origin works (so it is CORS that stops it, not the fetch).
        (b_root / "page.html").write_text(FETCH_PAGE)
        out = run_fetch(browser, b, b.url + "/x.json", GET_INIT)
        assert out == 'ok 200 {"hello": "from B"}\n'
