"""The environ the gateway builds: required keys, paths, the client behind a proxy, TLS.

Each test runs an application over a real loopback socket on PooledHTTPServer and
ThreadingHTTPServer (the ``kind`` fixture), wrapped in ``wsgiref.validate.validator``.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import requests

from minihttp.eventloop import PooledHTTPServer
from minihttp.wsgi import make_handler
from minihttp.wsgi.environ import forwarded_proto, normalize_root, split_root
from tests.helpers.servers import running
from tests.wsgi.conftest import StrictClient

REQUIRED = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.input",
            "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")


def echo_environ(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answer the environ's plain values as JSON (the body it read under ``_body``)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    seen["_body"] = body.decode("latin-1")
    seen["_keys"] = sorted(environ)
    out = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


def get_environ(port: int, target: str, headers: dict[str, str] | None = None,
                **kw: Any) -> dict[str, Any]:
    r = requests.get(f"http://127.0.0.1:{port}{target}", headers=headers, timeout=5, **kw)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_required_keys_and_types(serve_app: Any) -> None:
    with serve_app(echo_environ) as port:
        env = get_environ(port, "/")
    for key in REQUIRED:
        assert key in env["_keys"], key
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(port)
    assert env["SERVER_NAME"]
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_HOST"] == f"127.0.0.1:{port}"
    assert "CONTENT_LENGTH" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_path_is_decoded_as_latin1_query_kept_raw(serve_app: Any) -> None:
    with serve_app(echo_environ) as port:
        env = get_environ(port, "/caf%C3%A9/a%20b/%E2%82%AC?q=%C3%A9t%C3%A9&x=1+2")
    assert env["PATH_INFO"] == "/café/a b/€".encode().decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/a b/€"
    assert env["QUERY_STRING"] == "q=%C3%A9t%C3%A9&x=1+2"
    assert env["RAW_URI"] == "/caf%C3%A9/a%20b/%E2%82%AC?q=%C3%A9t%C3%A9&x=1+2"
    assert env["SCRIPT_NAME"] == ""


def test_absolute_form_target(serve_app: Any) -> None:
    with serve_app(echo_environ) as port, StrictClient(port) as c:
        resp, body = c.request("GET", "http://example.com/p/q?x=1")
    assert resp.status_code == 200
    env = json.loads(body)
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/p/q", "x=1")


def test_content_type_and_length_and_repeated_fields(serve_app: Any) -> None:
    with serve_app(echo_environ) as port, StrictClient(port) as c:
        _resp, body = c.request("POST", "/form", [
            ("Content-Type", "text/plain"), ("X-Thing", "a"), ("X-Thing", "b"),
            ("Cookie", "a=1"), ("Cookie", "b=2"), ("X_Evil", "forged")], b"hello")
    env = json.loads(body)
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["_body"] == "hello"
    assert env["HTTP_X_THING"] == "a,b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    # A name with "_" would collide with a proxy's field: dropped.
    assert "HTTP_X_EVIL" not in env
    assert "HTTP_CONTENT_TYPE" not in env


@pytest.mark.parametrize(("target", "script", "path"), [
    ("/app", "/app", ""),
    ("/app/", "/app", "/"),
    ("/app/users/7?x=1", "/app", "/users/7"),
    ("/app/caf%C3%A9", "/app", "/café".encode().decode("latin-1")),
])
def test_root_path_splits_script_name(serve_app: Any, target: str, script: str,
                                      path: str) -> None:
    with serve_app(echo_environ, root_path="/app/") as port:
        env = get_environ(port, target)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script, path)


@pytest.mark.parametrize("target", ["/", "/application", "/other/app", "/ap"])
def test_path_outside_root_path_is_404_without_calling_the_app(serve_app: Any,
                                                               target: str) -> None:
    called = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    with serve_app(app, root_path="/app") as port:
        r = requests.get(f"http://127.0.0.1:{port}{target}", timeout=5)
    assert r.status_code == 404
    assert called == []


def test_untrusted_forwarding_headers_are_ignored(serve_app: Any) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with serve_app(echo_environ) as port:
        env = get_environ(port, "/", headers)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    with serve_app(echo_environ, forwarded_allow_ips="10.0.0.0/8") as port:
        env = get_environ(port, "/", headers)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"


def test_trusted_proxy_gives_client_and_scheme(serve_app: Any) -> None:
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7",
               "X-Forwarded-Proto": "https"}
    with serve_app(echo_environ, forwarded_allow_ips="127.0.0.1") as port:
        env = get_environ(port, "/", headers)
        plain = get_environ(port, "/", {"X-Forwarded-For": "203.0.113.8"})
        bogus = get_environ(port, "/", {"X-Forwarded-Proto": "gopher"})
    assert env["REMOTE_ADDR"] == "203.0.113.7"  # right-most untrusted: not the forgeable one
    assert env["wsgi.url_scheme"] == "https"
    assert plain["REMOTE_ADDR"] == "203.0.113.8" and plain["wsgi.url_scheme"] == "http"
    assert bogus["wsgi.url_scheme"] == "http"


def test_forwarded_client_per_request_on_one_connection(serve_app: Any) -> None:
    with serve_app(echo_environ, forwarded_allow_ips="127.0.0.1") as port, \
            StrictClient(port) as c:
        seen = []
        for fields in ([("X-Forwarded-For", "203.0.113.1")], [("X-Forwarded-For", "203.0.113.2")],
                       [], [("X-Forwarded-For", "203.0.113.2")], []):
            _resp, body = c.request("GET", "/", fields)
            seen.append(json.loads(body)["REMOTE_ADDR"])
    assert seen == ["203.0.113.1", "203.0.113.2", "127.0.0.1", "203.0.113.2", "127.0.0.1"]


def test_trusted_rfc7239_forwarded(serve_app: Any) -> None:
    headers = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https;by=x',
               "X-Forwarded-Proto": "http"}
    with serve_app(echo_environ, forwarded_allow_ips="127.0.0.1",
                   forwarded_header="forwarded") as port:
        env = get_environ(port, "/", headers)
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert env["wsgi.url_scheme"] == "https"


def test_forwarded_proto_parsing() -> None:
    assert forwarded_proto("for=1.2.3.4;proto=http, for=5.6.7.8;proto=https") == "https"
    assert forwarded_proto('proto="https"') == "https"
    assert forwarded_proto("for=1.2.3.4") == ""


def test_root_path_helpers() -> None:
    assert normalize_root("/") == "" and normalize_root("") == ""
    assert normalize_root("/a/b/") == "/a/b"
    assert normalize_root("/é") == "/é".encode().decode("latin-1")
    with pytest.raises(ValueError):
        normalize_root("app")
    assert split_root("/a/b/c", "/a/b") == ("/a/b", "/c")
    assert split_root("/a/bc", "/a/b") is None
    assert split_root("/x", "") == ("", "/x")


def test_tls_connection_is_https(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_class = type("TLSServer", (PooledHTTPServer,), {"ssl_context": context})
    from wsgiref.validate import validator

    server = server_class(("127.0.0.1", 0), make_handler(validator(echo_environ)))
    with running(server):
        r = requests.get(f"https://127.0.0.1:{server.server_address[1]}/s",
                         verify=str(ca_file), timeout=5)
    assert r.status_code == 200
    assert r.json()["wsgi.url_scheme"] == "https"
