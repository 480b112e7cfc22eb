"""Compression on the fly as Chromium sees it (``--compress``; needs the ``compress`` branch).

Chromium asks for gzip, deflate, br and zstd; the server picks one and Chromium must decode
it into the exact script, stylesheet and JSON: the script runs, the style applies, the JSON
parses and its length is right. Resource Timing tells the bytes on the wire
(``encodedBodySize``) from the bytes decoded (``decodedBodySize``), so the test sees that
the compression really happened. A revalidation uses the ETag of the compressed variant, and
a changed file must not come back as the server's cached compressed old body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import FileServer, file_server, wait_text


def app_js(rows: int) -> str:
    """A script of ``rows`` similar lines (compresses well) that writes its row count and
    the sum of the ids into the page."""
    return (
        "const rows = [];\n"
        + "".join(f"rows.push({{id: {i}, name: 'row number {i}', even: {str(i % 2 == 0).lower()}}});\n"
                  for i in range(rows))
        + "document.getElementById('out').textContent = 'rows ' + rows.length + ' sum '"
        " + rows.reduce((s, r) => s + r.id, 0);\n"
    )


ROWS = 2000  # about 100 KiB of script
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>compressed</title>
<link rel="stylesheet" href="style.css"></head>
<body><p id="out">script not run</p><p id="json">json not read</p>
<script src="app.js"></script>
<script>
fetch('data.json').then(r => r.json()).then(d => {
  document.getElementById('json').textContent = 'items ' + d.items.length;
});
</script></body></html>
"""
STYLE = "p#out { color: rgb(1, 2, 3); }\n" + "".join(
    f".unused-{i} {{ margin: {i}px; }}\n" for i in range(400))
DATA = {"items": [{"n": i, "label": f"item {i}"} for i in range(1500)]}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    (root / "app.js").write_text(app_js(ROWS))
    (root / "style.css").write_text(STYLE)
    (root / "data.json").write_text(json.dumps(DATA))
    return root


@pytest.fixture
def compressing(root: Path) -> Iterator[FileServer]:
    with file_server(root, "--compress") as server:
        yield server


def _sizes(browser: Any, name: str) -> tuple[int, int]:
    """(bytes on the wire, bytes decoded) of the page's resource ``name``."""
    encoded, decoded = browser.execute_script(
        "const e = performance.getEntriesByType('resource')"
        ".find(e => e.name.endsWith('/' + arguments[0]));"
        " return e ? [e.encodedBodySize, e.decodedBodySize] : [null, null];", name)
    assert encoded is not None, f"{name} was not loaded"
    return int(encoded), int(decoded)


def _page_works(browser: Any, server: FileServer, rows: int = ROWS) -> None:
    browser.get(server.url + "/index.html")
    wait_text(browser, "#out", f"rows {rows} sum {rows * (rows - 1) // 2}")
    wait_text(browser, "#json", f"items {len(DATA['items'])}")
    colour = browser.execute_script(
        "return getComputedStyle(document.getElementById('out')).color")
    assert colour == "rgb(1, 2, 3)"


def test_compressed_script_style_and_json_decode(browser: Any, compressing: FileServer,
                                                 root: Path) -> None:
    _page_works(browser, compressing)
    for name in ("app.js", "style.css", "data.json"):
        encoded, decoded = _sizes(browser, name)
        assert decoded == (root / name).stat().st_size, name
        assert encoded < decoded // 3, f"{name}: {encoded} bytes on the wire for {decoded}"


def _fetch_again(browser: Any, name: str) -> str:
    """The page fetches ``name`` with ``cache: 'no-cache'``: Chromium revalidates its cached
    copy (If-None-Match with the ETag it was given) and hands the script the body, cached
    or new."""
    return str(browser.execute_script(
        "return fetch(arguments[0], {cache: 'no-cache'}).then(r => r.text())", name))


def test_revalidation_and_a_changed_file(browser: Any, compressing: FileServer,
                                         root: Path) -> None:
    from minihttp.static.cache import RACY_SECONDS

    # The server keeps compressed bodies only of files that have not changed for a moment.
    time.sleep(RACY_SECONDS + 0.2)
    _page_works(browser, compressing)
    assert _fetch_again(browser, "app.js") == app_js(ROWS)
    # Chromium asked with the compressed variant's ETag and was told its copy is current.
    assert '"GET /app.js HTTP/1.1" 304' in compressing.log()
    # The script changes: Chromium's next revalidation gets the new one, not the server's
    # cached compressed old body, and the page runs it.
    (root / "app.js").write_text(app_js(ROWS + 7))
    assert _fetch_again(browser, "app.js") == app_js(ROWS + 7)
    _page_works(browser, compressing, ROWS + 7)


def test_without_compress_nothing_is_compressed(browser: Any, root: Path) -> None:
    with file_server(root) as server:
        _page_works(browser, server)
        encoded, decoded = _sizes(browser, "app.js")
        assert encoded == decoded == (root / "app.js").stat().st_size
