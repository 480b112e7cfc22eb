"""The examples run: each handler class served on port 0 and driven with requests."""

from __future__ import annotations

import importlib.util
import sys
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

from tests.helpers.servers import running

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 5.0


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_json_service() -> None:
    mod = load("json_service")
    mod.JSONHandler.items = {}
    server = mod.make_server(0)
    mod.JSONHandler.log_message = lambda self, *a: None
    with running(server), requests.Session() as s:
        base = f"http://127.0.0.1:{server.server_port}"
        assert s.get(f"{base}/items", timeout=TIMEOUT).json() == []
        r = s.post(f"{base}/items", json={"name": "tea"}, timeout=TIMEOUT)
        assert r.status_code == 201 and r.json() == {"id": 1, "name": "tea"}
        assert s.get(f"{base}/items/1", timeout=TIMEOUT).json() == {"id": 1, "name": "tea"}
        assert s.get(f"{base}/items", timeout=TIMEOUT).json() == [{"id": 1, "name": "tea"}]
        assert s.get(f"{base}/items/2", timeout=TIMEOUT).status_code == 404
        assert s.get(f"{base}/nope", timeout=TIMEOUT).status_code == 404
        r = s.post(f"{base}/items", data=b"{not json", timeout=TIMEOUT)
        assert r.status_code == 400
        r = s.post(f"{base}/items", data=b"[1, 2]", timeout=TIMEOUT)
        assert r.status_code == 400
    with running(server := mod.make_server(0)):
        big = b'{"x": "' + b"a" * 70_000 + b'"}'
        r = requests.post(f"http://127.0.0.1:{server.server_port}/items", data=big,
                          timeout=TIMEOUT)
        assert r.status_code == 413
        assert r.headers["Content-Type"] == "application/json"
        body = r.json()  # the server's own 413, before the handler runs
        assert body["code"] == 413 and body["error"] == HTTPStatus(413).phrase
        assert "too large" in body["explain"]
        r = requests.request("BREW", f"http://127.0.0.1:{server.server_port}/items",
                             timeout=TIMEOUT)
        assert r.status_code == 501 and r.json()["code"] == 501


def test_upload_streams_to_disk(tmp_path: Path) -> None:
    mod = load("upload")

    class Handler(mod.UploadHandler):  # type: ignore[name-defined,misc]
        directory = str(tmp_path)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    from minihttp.server import ThreadingHTTPServer

    payload = bytes(range(256)) * 4096  # 1 MiB

    def pieces() -> Any:
        for i in range(0, len(payload), 100_000):
            yield payload[i:i + 100_000]

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with running(server), requests.Session() as s:
        base = f"http://127.0.0.1:{server.server_port}"
        r = s.put(f"{base}/blob.bin", data=payload, timeout=TIMEOUT)
        assert r.status_code == 201 and r.content == b"1048576 bytes stored\n"
        assert (tmp_path / "blob.bin").read_bytes() == payload
        r = s.post(f"{base}/chunked.bin", data=pieces(), timeout=TIMEOUT)  # chunked
        assert r.status_code == 201
        assert (tmp_path / "chunked.bin").read_bytes() == payload
        assert s.put(f"{base}/dir/escape", data=b"x", timeout=TIMEOUT).status_code == 400
        assert s.put(f"{base}/.hidden", data=b"x", timeout=TIMEOUT).status_code == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "chunked.bin"]
