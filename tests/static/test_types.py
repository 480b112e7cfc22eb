"""Media types come from our own table (minihttp.static.types), not the machine's.

The machine's table is simulated by patching :func:`mimetypes.guess_type` with a hostile one
(the Qt answer some hosts give for ``.ts``): the types the web uses must not change, and only
extensions missing from our table may take the machine's answer.
"""

from __future__ import annotations

import mimetypes
import re
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.static import types as types_mod
from minihttp.static.types import WEB_TYPES, machine_type
from tests.helpers.servers import running

TIMEOUT = 5.0

#: The types issue 14 names, as IANA registers them.
EXPECTED = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
    ".wasm": "application/wasm", ".svg": "image/svg+xml", ".webp": "image/webp",
    ".avif": "image/avif", ".woff": "font/woff", ".woff2": "font/woff2",
    ".yaml": "application/yaml", ".yml": "application/yaml", ".md": "text/markdown",
    ".ts": "video/mp2t", ".m3u8": "application/vnd.apple.mpegurl",
    ".webmanifest": "application/manifest+json", ".ico": "image/vnd.microsoft.icon",
    ".mp4": "video/mp4", ".webm": "video/webm", ".opus": "audio/ogg", ".flac": "audio/flac",
    ".jsonld": "application/ld+json", ".csv": "text/csv", ".txt": "text/plain",
    ".html": "text/html", ".css": "text/css", ".xml": "application/xml",
    ".pdf": "application/pdf", ".zip": "application/zip", ".png": "image/png",
    ".jpg": "image/jpeg", ".gif": "image/gif", ".mp3": "audio/mpeg",
}

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


@pytest.fixture
def hostile_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's table answers nonsense for everything; our memo starts empty."""
    def guess(url: Any, strict: bool = True) -> tuple[str | None, str | None]:
        return "text/vnd.trolltech.linguist", None

    monkeypatch.setattr(mimetypes, "guess_type", guess)
    monkeypatch.setattr(types_mod, "_guessed", {})


def test_table_is_large_and_well_formed() -> None:
    assert len(WEB_TYPES) >= 60
    for ext, ctype in WEB_TYPES.items():
        assert ext.startswith(".") and ext == ext.lower(), ext
        assert re.fullmatch(f"{_TOKEN}/{_TOKEN}", ctype), (ext, ctype)


@pytest.mark.parametrize(("ext", "ctype"), sorted(EXPECTED.items()))
@pytest.mark.usefixtures("hostile_machine")
def test_web_types_do_not_depend_on_the_machine(ext: str, ctype: str) -> None:
    handler = SimpleHTTPRequestHandler.__new__(SimpleHTTPRequestHandler)
    assert handler.guess_type("dir/file" + ext) == ctype
    assert handler.guess_type("FILE" + ext.upper()) == ctype  # case-insensitive


@pytest.mark.usefixtures("hostile_machine")
def test_machine_table_only_for_the_rest() -> None:
    handler = SimpleHTTPRequestHandler.__new__(SimpleHTTPRequestHandler)
    assert handler.guess_type("a.qm-unknown-to-us") == "text/vnd.trolltech.linguist"
    assert machine_type(".another-unknown") == "text/vnd.trolltech.linguist"


def test_unknown_everywhere_is_octet_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(types_mod, "_guessed", {})
    assert machine_type(".no-such-extension-anywhere") == "application/octet-stream"


@pytest.mark.usefixtures("hostile_machine")
def test_served_content_types(tmp_path: Path) -> None:
    for name in ("seg.ts", "conf.yaml", "list.m3u8", "notes.md", "app.webmanifest"):
        (tmp_path / name).write_bytes(b"x")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    with running(server):
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        got = {name: requests.get(base + name, timeout=TIMEOUT).headers["Content-Type"]
               for name in ("seg.ts", "conf.yaml", "list.m3u8", "notes.md", "app.webmanifest")}
    assert got == {
        "seg.ts": "video/mp2t",
        "conf.yaml": "application/yaml",
        "list.m3u8": "application/vnd.apple.mpegurl",
        "notes.md": "text/markdown; charset=utf-8",
        "app.webmanifest": "application/manifest+json",
    }
