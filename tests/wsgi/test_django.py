"""A Django project served through the gateway, on both server kinds.

Not wrapped in ``wsgiref.validate.validator``: Django reads ``wsgi.input`` in ways the
validator's strict check refuses (``read()`` without a size on a bounded stream).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("django")

from tests.wsgi import django_site
from tests.wsgi.conftest import Spied, StrictClient, header


@pytest.fixture
def site(serve_app: Any) -> Iterator[str]:
    with serve_app(django_site.application, validate=False) as port:
        yield f"http://127.0.0.1:{port}"


def test_routing_and_json(site: str) -> None:
    r = requests.get(site + "/", timeout=5)
    assert (r.status_code, r.text) == (200, "Hello from Django")
    r = requests.get(site + "/items/9", timeout=5)
    assert r.json() == {"id": 9, "url": site + "/items/9"}
    assert requests.get(site + "/nowhere", timeout=5).status_code == 404


def test_json_post(site: str) -> None:
    payload = {"name": "Zoë", "tags": ["€"]}
    r = requests.post(site + "/json", json=payload, timeout=5)
    assert r.status_code == 201
    assert r.json() == {"received": payload, "method": "POST"}


def test_form_upload(site: str) -> None:
    content = bytes(range(256)) * 1000
    r = requests.post(site + "/upload", files={"file": ("données.bin", content)},
                      data={"note": "café"}, timeout=5)
    assert r.json() == {"filename": "données.bin", "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(), "note": "café"}


def test_streaming_response(site: str) -> None:
    with StrictClient(int(site.rsplit(":", 1)[1])) as c:
        resp, body = c.request("GET", "/stream?n=50")
        assert header(resp, "transfer-encoding") == "chunked"
        assert body == "".join(f"line {i}\n" for i in range(50)).encode()
        resp, body = c.request("GET", "/")
        assert body == b"Hello from Django"


def test_errors(site: str) -> None:
    r = requests.get(site + "/boom", timeout=5)
    assert r.status_code == 500
    assert "secret-internal-detail" not in r.text and "Traceback" not in r.text
    r = requests.get(site + "/", headers={"Host": "evil.example"}, timeout=5)
    assert r.status_code == 400  # DisallowedHost


def test_query_strings_and_non_ascii_paths(site: str) -> None:
    r = requests.get(site + "/search", params={"q": "été & co", "x": ["1", "2"]}, timeout=5)
    assert r.json() == {"args": {"q": ["été & co"], "x": ["1", "2"]},
                        "query": "q=%C3%A9t%C3%A9+%26+co&x=1&x=2"}
    r = requests.get(site + "/path/caf%C3%A9/%E2%82%AC%20x", timeout=5)
    assert r.json() == {"rest": "café/€ x", "path": "/path/café/€ x",
                        "path_info": "/path/café/€ x"}


def test_file_response_goes_out_with_sendfile(serve_app: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "payload.bin"
    data.write_bytes(bytes(range(256)) * 4000)
    monkeypatch.setattr(django_site, "DATA_FILE", str(data))
    Spied.calls.clear()
    with serve_app(django_site.application, validate=False, handler=Spied) as port:
        r = requests.get(f"http://127.0.0.1:{port}/file", timeout=5)
    assert r.status_code == 200 and r.content == data.read_bytes()
    assert ("sendfile", len(r.content)) in Spied.calls


def test_root_path_and_trusted_proxy(serve_app: Any) -> None:
    with serve_app(django_site.application, validate=False, root_path="/site",
                   forwarded_allow_ips="127.0.0.1") as port:
        r = requests.get(f"http://127.0.0.1:{port}/site/client", timeout=5,
                         headers={"X-Forwarded-Proto": "https", "Host": "example.com",
                                  "X-Forwarded-For": "203.0.113.5"})
    assert r.json() == {"secure": True, "remote": "203.0.113.5",
                        "url": "https://example.com/site/client"}
