"""Site options (minihttp.static.site): the decisions as tables, then each option end to end
through the file server as the command line builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from minihttp.static.site import PAGE_MAX, accepts_html, hidden_path, spa_candidate, spa_route
from tests.helpers.cliserver import file_server, raw_exchange

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
    assert spa_candidate(path) is expected  # whether the answer varies on Accept


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


def vary(base: str, method: str, path: str, *fields: str) -> tuple[int, list[str]]:
    """Status and the values of the Vary field lines (one entry per line) of one answer."""
    head = "".join(f"{field}\r\n" for field in fields)
    status, got, _body = raw_exchange(base, f"{method} {path} HTTP/1.1\r\nHost: t\r\n{head}"
                                      "Connection: close\r\n\r\n".encode())
    return status, [value for name, value in got if name == "vary"]


def test_spa_answers_vary_on_accept(root: Path) -> None:
    """RFC 9110 section 12.5.5: every answer chosen on Accept says so, in one field; the
    others (existing paths, missing ones with an extension) do not."""
    html, any_type = f"Accept: {BROWSER}", "Accept: */*"
    with file_server(root, "--spa") as base:
        route = get(base + "/users/42", Accept=BROWSER)
        etag, size = route.headers["ETag"], len(route.content)
        answers = {
            "route": vary(base, "GET", "/users/42", html),
            "head": vary(base, "HEAD", "/users/42/", html),
            "304": vary(base, "GET", "/users/42", html, f"If-None-Match: {etag}"),
            "412": vary(base, "GET", "/users/42", html, 'If-Match: "other"'),
            "206": vary(base, "GET", "/users/42", html, "Range: bytes=0-3"),
            "416": vary(base, "GET", "/users/42", html, f"Range: bytes={size + 5}-"),
            "fetch": vary(base, "GET", "/users/42", any_type),
            "no accept": vary(base, "HEAD", "/users/42"),
            # not candidates: the answer is the same whatever the Accept
            "script": vary(base, "GET", "/missing.js", html),
            "file": vary(base, "GET", "/app.js", html),
            "index": vary(base, "GET", "/index.html", html),
            "root": vary(base, "GET", "/", html),
            "post": vary(base, "POST", "/users/42", html, "Content-Length: 0"),
        }
    assert answers == {
        "route": (200, ["Accept"]), "head": (200, ["Accept"]), "304": (304, ["Accept"]),
        "412": (412, ["Accept"]), "206": (206, ["Accept"]), "416": (416, ["Accept"]),
        "fetch": (404, ["Accept"]), "no accept": (404, ["Accept"]),
        "script": (404, []), "file": (200, []), "index": (200, []), "root": (200, []),
        "post": (501, []),
    }
    with file_server(root) as base:  # without --spa nothing varies on Accept
        assert vary(base, "GET", "/users/42", any_type) == (404, [])


def test_spa_vary_with_compression_and_404_page(root: Path) -> None:
    """With --compress the fallback's Vary is one field for both; the 404 page for a route
    varies on Accept, the one for a file does not."""
    (root / "index.html").write_text("<h1>app shell</h1>" + "<p>padding</p>" * 100)
    (root / "404.html").write_text("<h1>lost?</h1>")
    html, gzip = f"Accept: {BROWSER}", "Accept-Encoding: gzip"
    with file_server(root, "--spa", "--compress") as base:
        route = get(base + "/users/42", Accept=BROWSER, **{"Accept-Encoding": "gzip"})
        assert route.headers["Content-Encoding"] == "gzip"
        answers = {
            "gzip": vary(base, "GET", "/users/42", html, gzip),
            "identity": vary(base, "GET", "/users/42", html),
            "304": vary(base, "GET", "/users/42", html, gzip,
                        f"If-None-Match: {route.headers['ETag']}"),
            "page": vary(base, "GET", "/users/42", "Accept: application/json"),
            "file page": vary(base, "GET", "/nope.txt", html),
            "index": vary(base, "GET", "/index.html", html, gzip),
        }
    both = ["Accept-Encoding, Accept"]
    assert answers == {
        "gzip": (200, both), "identity": (200, both), "304": (304, both),
        "page": (404, ["Accept"]), "file page": (404, []), "index": (200, ["Accept-Encoding"]),
    }


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
