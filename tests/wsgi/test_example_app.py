"""examples/wsgi_app.py does what its docstring says, through the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from examples import wsgi_app
from tests.wsgi.conftest import Spied, StrictClient, header


def test_routes(serve_app: Any) -> None:
    with serve_app(wsgi_app.application) as port:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/", timeout=5).text == (
            "Hello from minihttp/0.1.0 to 127.0.0.1\n")
        assert requests.get(base + "/nope", timeout=5).status_code == 404
        with StrictClient(port) as c:
            resp, body = c.request("GET", "/count")
            assert body == b"0\n1\n2\n3\n4\n"
            assert header(resp, "transfer-encoding") == "chunked"


def test_echo_reads_the_whole_body(serve_app: Any) -> None:
    # Not validated: read() without a size is what the example shows (wsgi.input_terminated)
    with serve_app(wsgi_app.application, validate=False) as port:
        r = requests.post(f"http://127.0.0.1:{port}/echo", data=iter([b"a" * 70000, b"b"]),
                          timeout=5)
    assert r.content == b"a" * 70000 + b"b"


def test_source_is_sent_with_sendfile(serve_app: Any) -> None:
    Spied.calls.clear()
    with serve_app(wsgi_app.application, validate=False, handler=Spied) as port:
        r = requests.get(f"http://127.0.0.1:{port}/source", timeout=5)
    source = Path(wsgi_app.__file__).read_bytes()
    assert r.content == source
    assert ("sendfile", len(source)) in Spied.calls
