"""A Flask application served through the gateway, on both server kinds.

Not wrapped in ``wsgiref.validate.validator``: werkzeug reads ``wsgi.input`` without a size
when the server sets ``wsgi.input_terminated`` (it does, so chunked uploads work), which the
validator's strict PEP 3333 check refuses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("flask")

from tests.wsgi import flask_site
from tests.wsgi.conftest import Spied, StrictClient, header


@pytest.fixture
def site(serve_app: Any) -> Iterator[str]:
    with serve_app(flask_site.app, validate=False) as port:
        yield f"http://127.0.0.1:{port}"


def test_routing_and_json(site: str) -> None:
    r = requests.get(site + "/", timeout=5)
    assert (r.status_code, r.text) == (200, "Hello from Flask")
    r = requests.get(site + "/users/42", timeout=5)
    assert r.json() == {"id": 42, "url": site + "/users/42"}
    assert requests.get(site + "/nowhere", timeout=5).status_code == 404
    assert requests.get(site + "/users/x", timeout=5).status_code == 404


def test_json_post(site: str) -> None:
    payload = {"name": "Zoë", "tags": ["a", "€"], "n": 3}
    r = requests.post(site + "/json", json=payload, timeout=5)
    assert r.status_code == 201
    assert r.json() == {"received": payload, "kind": "dict"}


def test_form_upload(site: str) -> None:
    content = bytes(range(256)) * 1000
    r = requests.post(site + "/upload", files={"file": ("données.bin", content)},
                      data={"note": "café"}, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"filename": "données.bin", "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(), "note": "café"}


def test_chunked_upload(site: str) -> None:
    parts = [b"x" * 1000, b"y" * 70000, b"z"]
    r = requests.post(site + "/raw", data=iter(parts), timeout=5)  # a generator: chunked
    body = b"".join(parts)
    assert r.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_streaming_response(site: str) -> None:
    with StrictClient(int(site.rsplit(":", 1)[1])) as c:
        resp, body = c.request("GET", "/stream?n=100")
        assert resp.status_code == 200 and header(resp, "transfer-encoding") == "chunked"
        assert body == "".join(f"line {i}\n" for i in range(100)).encode()
        resp, body = c.request("GET", "/")  # keep-alive after a streamed response
        assert body == b"Hello from Flask"


def test_errors(site: str) -> None:
    r = requests.get(site + "/boom", timeout=5)
    assert r.status_code == 500
    assert "secret-internal-detail" not in r.text and "Traceback" not in r.text
    assert requests.get(site + "/teapot", timeout=5).status_code == 418


def test_query_strings_and_non_ascii_paths(site: str) -> None:
    r = requests.get(site + "/search", params={"q": "été & co", "x": ["1", "2"]}, timeout=5)
    assert r.json()["args"] == {"q": ["été & co"], "x": ["1", "2"]}
    assert r.json()["query"] == "q=%C3%A9t%C3%A9+%26+co&x=1&x=2"
    r = requests.get(site + "/path/caf%C3%A9/%E2%82%AC%20x/%2F", timeout=5)
    assert r.json() == {"rest": "café/€ x//", "path": "/path/café/€ x//", "script_root": ""}


def test_head(site: str) -> None:
    with StrictClient(int(site.rsplit(":", 1)[1])) as c:
        resp, body = c.request("HEAD", "/users/7")
        assert resp.status_code == 200 and body == b""
        assert int(header(resp, "content-length") or 0) > 0
        resp, body = c.request("GET", "/users/7")
        assert json.loads(body)["id"] == 7


def test_file_response_goes_out_with_sendfile(serve_app: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "payload.bin"
    data.write_bytes(bytes(range(256)) * 4000)
    monkeypatch.setattr(flask_site, "DATA_FILE", str(data))
    Spied.calls.clear()
    with serve_app(flask_site.app, validate=False, handler=Spied) as port:
        r = requests.get(f"http://127.0.0.1:{port}/file", timeout=5)
    assert r.status_code == 200 and r.content == data.read_bytes()
    assert ("sendfile", len(r.content)) in Spied.calls


def test_root_path_and_trusted_proxy(serve_app: Any) -> None:
    with serve_app(flask_site.create_app(), validate=False, root_path="/app",
                   forwarded_allow_ips="127.0.0.1") as port:
        r = requests.get(f"http://127.0.0.1:{port}/app/users/3", timeout=5,
                         headers={"X-Forwarded-Proto": "https", "Host": "example.com",
                                  "X-Forwarded-For": "203.0.113.5"})
        assert r.json()["url"] == "https://example.com/app/users/3"
        r = requests.get(f"http://127.0.0.1:{port}/app/scheme", timeout=5,
                         headers={"X-Forwarded-Proto": "https", "Host": "example.com",
                                  "X-Forwarded-For": "203.0.113.5"})
        assert r.json() == {"scheme": "https", "remote": "203.0.113.5",
                            "url": "https://example.com/app/scheme",
                            "root_url": "https://example.com/app/"}
        assert requests.get(f"http://127.0.0.1:{port}/users/3", timeout=5).status_code == 404
