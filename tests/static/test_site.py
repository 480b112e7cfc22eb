"""Site options (minihttp.static.site): the decisions as tables, then each option end to end
through the file server as the command line builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from minihttp.static.site import PAGE_MAX, accepts_html, hidden_path, spa_route
from tests.helpers.cliserver import file_server

TIMEOUT = 5.0
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def get(url: str, method: str = "GET", **headers: str) -> requests.Response:
    return requests.request(method, url, headers=headers, timeout=TIMEOUT,
                            allow_redirects=False)


# -- decisions as tables --------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "expected"), [
    (BROWSER, True), ("text/html", True), ("TEXT/HTML;q=0.5", True), ("text/html;q=0", False),
    ("*/*", False), ("application/json", False), (None, False), ("", False),
    ("text/html;q=bad", False), ("text/htmlx", False),
])
def test_accepts_html(accept: str | None, expected: bool) -> None:
    assert accepts_html(accept) is expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/dashboard", True), ("/users/42/edit", True), ("/deep/route/", True),
    ("/app.js", False), ("/img/logo.png", False), ("/v1.2/x.json", False),
    ("/v1.2/settings", True),
])
def test_spa_route(path: str, expected: bool) -> None:
    assert spa_route(path, BROWSER) is expected
    assert spa_route(path, "*/*") is False


@pytest.mark.parametrize(("path", "expected"), [
    ("/.env", True), ("/a/.git/config", True), ("/%2egit/HEAD", True), ("/%2Essh/", True),
    ("/a\\.hidden", True), ("/.well-known/acme-challenge/t", False), ("/a.b/c.txt", False),
    ("/file.", False), ("/", False), ("/../.env", False),  # the last: 404 on its own
])
def test_hidden_path(path: str, expected: bool) -> None:
    assert hidden_path(path) is expected


# -- end to end -------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>app shell</h1>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]")
    (tmp_path / ".well-known").mkdir()
    (tmp_path / ".well-known" / "security.txt").write_text("Contact: x")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "file.txt").write_text("f")
    (tmp_path / "bare" / ".hidden").write_text("h")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "home.html").write_text("<p>home page</p>")
    (tmp_path / "home" / "index.html").write_text("<p>index page</p>")
    return tmp_path


def test_spa_fallback(root: Path) -> None:
    with file_server(root, "--spa") as base:
        route = get(base + "/users/42", Accept=BROWSER)
        head = get(base + "/users/42", "HEAD", Accept=BROWSER)
        script = get(base + "/missing.js", Accept=BROWSER)
        fetched = get(base + "/users/42", Accept="*/*")
        real = get(base + "/app.js", Accept=BROWSER)
        revalidated = get(base + "/users/42", Accept=BROWSER,
                          **{"If-None-Match": route.headers["ETag"]})
    assert route.status_code == 200 and route.text == "<h1>app shell</h1>"
    assert route.headers["Content-Type"].startswith("text/html")
    assert head.status_code == 200 and head.content == b""
    assert script.status_code == 404 and fetched.status_code == 404
    assert real.status_code == 200 and real.text == "console.log(1)"
    assert revalidated.status_code == 304


def test_no_spa_by_default(root: Path) -> None:
    with file_server(root) as base:
        assert get(base + "/users/42", Accept=BROWSER).status_code == 404


def test_custom_404_page(root: Path) -> None:
    (root / "404.html").write_text("<h1>lost?</h1>")
    with file_server(root, "--spa") as base:
        missing = get(base + "/nope.txt", Accept=BROWSER)
        head = get(base + "/nope.txt", "HEAD")
        route = get(base + "/route", Accept=BROWSER)
    assert missing.status_code == 404 and missing.text == "<h1>lost?</h1>"
    assert missing.headers["Content-Type"] == "text/html; charset=utf-8"
    assert head.status_code == 404 and head.content == b""
    assert int(head.headers["Content-Length"]) == len("<h1>lost?</h1>")
    assert route.status_code == 200 and route.text == "<h1>app shell</h1>"  # SPA first


def test_without_404_page_the_plain_error(root: Path) -> None:
    with file_server(root) as base:
        missing = get(base + "/nope.txt")
    assert missing.status_code == 404 and "lost?" not in missing.text
    assert "404" in missing.text


def test_oversized_404_page_is_not_used(root: Path) -> None:
    (root / "404.html").write_bytes(b"<!-- big -->" + b" " * PAGE_MAX)
    with file_server(root) as base:
        missing = get(base + "/nope.txt")
    assert missing.status_code == 404 and b"big" not in missing.content
    assert len(missing.content) < 4096


def test_no_listing(root: Path) -> None:
    with file_server(root, "--no-listing") as base:
        bare = get(base + "/bare/")
        indexed = get(base + "/")
    assert bare.status_code == 404 and "file.txt" not in bare.text
    assert indexed.status_code == 200 and indexed.text == "<h1>app shell</h1>"
    with file_server(root) as base:
        assert "file.txt" in get(base + "/bare/").text


def test_hide_dotfiles(root: Path) -> None:
    with file_server(root, "--hide-dotfiles") as base:
        statuses = {path: get(base + path).status_code
                    for path in ("/.env", "/.git/config", "/%2egit/config", "/bare/.hidden",
                                 "/.well-known/security.txt", "/bare/file.txt")}
        listing = get(base + "/bare/").text
        root_listing_of_git = get(base + "/.git/").status_code
    assert statuses == {"/.env": 404, "/.git/config": 404, "/%2egit/config": 404,
                        "/bare/.hidden": 404, "/.well-known/security.txt": 200,
                        "/bare/file.txt": 200}
    assert "file.txt" in listing and ".hidden" not in listing
    assert root_listing_of_git == 404
    with file_server(root) as base:  # off by default
        assert get(base + "/.env").status_code == 200
        assert ".hidden" in get(base + "/bare/").text


def test_index_names(root: Path) -> None:
    with file_server(root, "--index", "home.html", "--index", "index.html") as base:
        home = get(base + "/home/")
        top = get(base + "/")
    assert home.text == "<p>home page</p>"
    assert top.text == "<h1>app shell</h1>"  # the second name still counts
    with file_server(root, "--index", "home.html") as base:
        assert "index.html" in get(base + "/").text  # replaced: the root is listed


def test_no_cache(root: Path) -> None:
    with file_server(root, "--no-cache", "--header", "X-Extra: 1") as base:
        first = get(base + "/app.js")
        again = get(base + "/app.js", **{"If-None-Match": first.headers["ETag"]})
    assert first.headers["Cache-Control"] == "no-cache"
    assert first.headers["X-Extra"] == "1"  # --header still applies
    assert "ETag" in first.headers and "Last-Modified" in first.headers
    assert again.status_code == 304 and again.headers["Cache-Control"] == "no-cache"
    with file_server(root) as base:
        assert "Cache-Control" not in get(base + "/app.js").headers


@pytest.mark.parametrize("name", ["../x.html", "a/b.html", ".."])
def test_bad_index_name_is_a_usage_error(root: Path, name: str) -> None:
    with pytest.raises(SystemExit), file_server(root, "--index", name):
        pass
