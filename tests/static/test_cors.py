"""CORS (minihttp.static.cors): the policy as a table, then ``--cors`` end to end.

The end-to-end part runs the file server as the command line builds it and plays what a
browser does for a cross-origin ``fetch()``: a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``), then the request itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from minihttp.static.cors import CORSPolicy, parse_origins
from tests.helpers.cliserver import file_server, raw_exchange

TIMEOUT = 5.0
APP = "https://app.example"


# -- the policy, as a table ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "origins"), [
    ("*", ("*",)),
    ("https://App.Example", ("https://app.example",)),
    ("https://app.example:443/", ("https://app.example",)),
    ("http://localhost:3000, http://[::1]:8080", ("http://localhost:3000", "http://[::1]:8080")),
    ("http://a.example:80,http://a.example", ("http://a.example",)),
])
def test_parse_origins(text: str, origins: tuple[str, ...]) -> None:
    assert parse_origins(text) == origins


@pytest.mark.parametrize("text", ["null", "app.example", "https://a.example/path",
                                  "https://a.example?q", "https://u@a.example", "localhost:3000",
                                  "https://a.example:99999", "", "https://a b.example"])
def test_parse_origins_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_origins(text)


def test_null_origin_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match="not a safe origin"):
        parse_origins("null")


def test_any_origin_fields() -> None:
    policy = CORSPolicy()
    fields = dict(policy.response_fields("https://x.example"))
    assert fields["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in fields  # nothing varies with "*"
    assert {"Content-Range", "ETag", "Accept-Ranges"} <= {
        f.strip() for f in fields["Access-Control-Expose-Headers"].split(",")}


def test_listed_origins_vary_and_echo_only_listed() -> None:
    policy = CORSPolicy((APP,))
    assert dict(policy.response_fields(APP))["Access-Control-Allow-Origin"] == APP
    assert policy.response_fields("https://evil.example") == [("Vary", "Origin")]
    assert policy.response_fields(None) == [("Vary", "Origin")]
    assert policy.preflight_fields("https://evil.example", None, ["GET"]) is None


@pytest.mark.parametrize(("requested", "echoed"), [
    ("content-type, x-token", "content-type, x-token"),
    ("Content-Type,X-Token", "Content-Type, X-Token"),
    ("content-type, bad header", None),
    ("x\r\nSet-Cookie: a=b", None),
    ("", None),
])
def test_preflight_echoes_only_token_lists(requested: str, echoed: str | None) -> None:
    fields = dict(CORSPolicy().preflight_fields(APP, requested, ["GET", "HEAD"]) or [])
    assert fields.get("Access-Control-Allow-Headers") == echoed
    assert fields["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert int(fields["Access-Control-Max-Age"]) > 0


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data.json").write_text('{"ok": true}')
    return tmp_path


def preflight(base: str, origin: str, method: str = "PUT", headers: str = "content-type"
              ) -> requests.Response:
    return requests.options(base + "/data.json", timeout=TIMEOUT, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def test_cors_any_origin(root: Path) -> None:
    with file_server(root, "--cors") as base:
        pre = preflight(base, APP)
        got = requests.get(base + "/data.json", headers={"Origin": APP}, timeout=TIMEOUT)
        missing = requests.get(base + "/nope", headers={"Origin": APP}, timeout=TIMEOUT)
    assert pre.status_code == 204 and pre.content == b""
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert pre.headers["Access-Control-Allow-Headers"] == "content-type"
    assert {m.strip() for m in pre.headers["Access-Control-Allow-Methods"].split(",")} == {
        "GET", "HEAD", "OPTIONS"}
    assert pre.headers["Access-Control-Max-Age"] == "7200"
    assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in got.headers["Access-Control-Expose-Headers"]
    # errors carry it too: the page's script can tell a 404 from a network failure
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_listed_origins(root: Path) -> None:
    with file_server(root, "--cors", APP, "--cors", "http://localhost:5173") as base:
        pre = preflight(base, "http://localhost:5173")
        ok = requests.get(base + "/data.json", headers={"Origin": APP}, timeout=TIMEOUT)
        evil_pre = preflight(base, "https://evil.example")
        evil = requests.get(base + "/data.json", headers={"Origin": "https://evil.example"},
                            timeout=TIMEOUT)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "Origin" in pre.headers["Vary"]
    assert ok.headers["Access-Control-Allow-Origin"] == APP and "Origin" in ok.headers["Vary"]
    # not listed: the plain OPTIONS answer, no CORS fields; the browser blocks the request
    assert evil_pre.status_code == 204 and "Allow" in evil_pre.headers
    assert not any(k.lower().startswith("access-control-") for k in evil_pre.headers)
    assert "Access-Control-Allow-Origin" not in evil.headers and evil.status_code == 200


def test_preflight_fields_appear_once(root: Path) -> None:
    with file_server(root, "--cors") as base:
        status, fields, body = raw_exchange(base, (
            b"OPTIONS /data.json HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
            b"Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"))
    names = [name for name, _ in fields]
    assert status == 204 and body == b""
    assert names.count("access-control-allow-origin") == 1
    assert "content-length" not in names


def test_plain_options_without_cors(root: Path) -> None:
    with file_server(root) as base:
        status, fields, _ = raw_exchange(base, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n"
                                               b"Connection: close\r\n\r\n")
        pre = preflight(base, APP)
    assert status == 204 and dict(fields)["allow"] == "GET, HEAD, OPTIONS"
    assert pre.status_code == 204
    assert "Access-Control-Allow-Origin" not in pre.headers


def test_bad_cors_argument_is_a_usage_error(root: Path) -> None:
    with pytest.raises(SystemExit), file_server(root, "--cors", "null"):
        pass


def test_unparsable_head_does_not_echo_the_previous_origin(root: Path) -> None:
    """A 400 for a bad head after a good request on one connection: the old Origin is not
    this request's, so it is not echoed."""
    with file_server(root, "--cors", APP) as base:
        status, fields, body = raw_exchange(base, (
            b"GET /data.json HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n"
            b"GET /x HTTP/1.1\r\nHost: t\r\nBad Field: x\r\nConnection: close\r\n\r\n"))
    _first, _, second = body.partition(b"HTTP/1.1 ")
    assert status == 200 and dict(fields)["access-control-allow-origin"] == APP
    assert second.startswith(b"400 ")
    assert b"access-control-allow-origin" not in second.partition(b"\r\n\r\n")[0].lower()
