"""The file server with authentication, end to end: built from its command line
(``cli.make_server``), served on 127.0.0.1 port 0, spoken to with ``requests`` and raw
sockets (bounded in time)."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from minihttp import cli
from minihttp.auth import hash_password
from tests.helpers.logstate import access_messages
from tests.helpers.servers import running

TIMEOUT = 5.0


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_text("hello\n")
    return tmp_path


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    """The access log's messages while the test runs."""
    with access_messages() as got:
        yield got


def server(site: Path, *argv: str) -> Any:
    args = cli.build_parser().parse_args(["0", "-b", "127.0.0.1", "-d", str(site), *argv])
    return cli.make_server(args)


def url(srv: Any, path: str = "/hello.txt") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never a proxy from the environment
    return s


def raw(srv: Any, data: bytes, until: bytes = b"") -> bytes:
    """Send ``data``, read until EOF (or until ``until`` was seen), bounded in time."""
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=TIMEOUT) as c:
        c.sendall(data)
        out = b""
        for _ in range(1000):
            if until and until in out:
                break
            chunk = c.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def basic(user_pass: bytes) -> str:
    return "Basic " + base64.b64encode(user_pass).decode()


@pytest.fixture(autouse=True)
def no_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIHTTP_AUTH", raising=False)


def test_credentials_required(site: Path, access_lines: list[str]) -> None:
    with running(server(site, "--auth", "alice:s3cr:t", "--auth", "bob:pw")) as srv, \
            session() as s:
        r = s.get(url(srv), timeout=TIMEOUT)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="minihttp", charset="UTF-8"'
        assert "hello" not in r.text
        assert s.get(url(srv), auth=("alice", "wrong"), timeout=TIMEOUT).status_code == 401
        assert s.get(url(srv), auth=("carol", "s3cr:t"), timeout=TIMEOUT).status_code == 401
        r = s.get(url(srv), auth=("alice", "s3cr:t"), timeout=TIMEOUT)
        assert r.status_code == 200 and r.text == "hello\n"
        assert s.get(url(srv, "/"), auth=("bob", "pw"), timeout=TIMEOUT).status_code == 200
        head = s.head(url(srv), timeout=TIMEOUT)
        assert head.status_code == 401 and head.content == b""
    users = [line.split(" ")[2] for line in access_lines]
    assert users == ["-", "-", "-", "alice", "bob", "-"]


def test_hashed_file_and_environment(site: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "users"
    users.write_text("# users\ncarol:" + hash_password("c\u00e4rol pw") + "\n")
    monkeypatch.setenv("MINIHTTP_AUTH", "dan:d1")
    with running(server(site, "--auth-file", str(users))) as srv, session() as s:
        assert s.get(url(srv), timeout=TIMEOUT).status_code == 401
        # a UTF-8 password (RFC 7617 charset="UTF-8"); requests sends latin-1 for str
        good = {"Authorization": basic("carol:c\u00e4rol pw".encode())}
        for _ in range(3):  # keep-alive: the KDF runs once, the rest is remembered
            assert s.get(url(srv), headers=good, timeout=TIMEOUT).status_code == 200
        assert s.get(url(srv), auth=("dan", "d1"), timeout=TIMEOUT).status_code == 200
        assert s.get(url(srv), auth=("carol", "d1"), timeout=TIMEOUT).status_code == 401


@pytest.mark.parametrize("field", [
    "Basic !!!", "Basic YWxpY2U=",  # bad base64; no colon ("alice")
    basic(b"alice:\xff\xfe"), "Bearer x", "Basic",  # not UTF-8; other scheme; no token
    "Basic " + "A" * 6000,  # huge but within the head limit
])
def test_malformed_credentials_get_401_and_the_server_lives(site: Path, field: str) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        out = raw(srv, f"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {field}\r\n"
                       "Connection: close\r\n\r\n".encode("latin-1"))
        assert out.startswith(b"HTTP/1.1 401 ")
        with session() as s:
            assert s.get(url(srv), auth=("alice", "pw"), timeout=TIMEOUT).status_code == 200


def test_header_beyond_the_head_limit_is_431(site: Path) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        out = raw(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                  + b"A" * 200_000 + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 431 ")


def test_two_authorization_fields_are_refused(site: Path) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        good = basic(b"alice:pw")
        out = raw(srv, f"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {good}\r\n"
                       f"Authorization: {good}\r\nConnection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 401 ")


def test_refused_body_is_not_read_and_keep_alive_goes_on(site: Path) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        body = b"x" * 1000
        request = (b"PUT /new.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body
                   + b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: "
                   + basic(b"alice:pw").encode() + b"\r\nConnection: close\r\n\r\n")
        out = raw(srv, request)
        assert out.startswith(b"HTTP/1.1 401 ")
        assert out.count(b"HTTP/1.1 ") == 2 and out.endswith(b"hello\n")
        assert not (site / "new.txt").exists()


def test_expect_continue_upload_refused_without_100(site: Path) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        out = raw(srv, b"PUT /new.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       b"Expect: 100-continue\r\n\r\n", until=b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 401 "), out
        assert b"100 Continue" not in out


def test_upload_only(site: Path, access_lines: list[str]) -> None:
    with running(server(site, "--auth", "alice:pw", "--auth-upload-only")) as srv, \
            session() as s:
        assert s.get(url(srv), timeout=TIMEOUT).status_code == 200
        assert s.head(url(srv), timeout=TIMEOUT).status_code == 200
        for method in ("PUT", "POST", "DELETE", "PATCH"):
            r = s.request(method, url(srv, "/up.txt"), data=b"data", timeout=TIMEOUT)
            assert r.status_code == 401, method
            assert "Basic" in r.headers["WWW-Authenticate"]
        # with credentials the method is the handler's business (201 with uploads, 501 here)
        r = s.put(url(srv, "/up.txt"), data=b"data", auth=("alice", "pw"), timeout=TIMEOUT)
        assert r.status_code != 401
    assert access_lines[-1].split(" ")[2] == "alice"


def test_cors_preflight_is_never_challenged(site: Path) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv, session() as s:
        r = s.options(url(srv), headers={"Origin": "http://127.0.0.1:1",
                                         "Access-Control-Request-Method": "GET"},
                      timeout=TIMEOUT)
        assert r.status_code != 401
        assert s.options(url(srv), timeout=TIMEOUT).status_code == 401


def test_user_is_not_carried_to_a_rejected_head(site: Path, access_lines: list[str]) -> None:
    with running(server(site, "--auth", "alice:pw")) as srv:
        out = raw(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  + basic(b"alice:pw").encode() + b"\r\n\r\nGET /\x00 HTTP/1.1\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in out
        # a head too large to parse is answered before parse_request (431)
        out = raw(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  + basic(b"alice:pw").encode() + b"\r\n\r\nGET / HTTP/1.1\r\nX: "
                  + b"A" * 200_000 + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 431 " in out
    assert [line.split(" ")[2] for line in access_lines] == ["alice", "-", "alice", "-"]


@pytest.mark.parametrize("fmt, pattern", [
    ("combined", r'^127\.0\.0\.1 - alice \[.*\] "GET /hello.txt HTTP/1.1" 200 6 "-" '),
    ("json", r'"user": "alice"'),
    ("{user}|{status}", r"^alice\|200$"),
])
def test_user_field_in_other_log_formats(site: Path, access_lines: list[str], fmt: str,
                                         pattern: str) -> None:
    with running(server(site, "--auth", "alice:pw", "--access-log-format", fmt)) as srv, \
            session() as s:
        assert s.get(url(srv), auth=("alice", "pw"), timeout=TIMEOUT).status_code == 200
    assert any(re.search(pattern, line) for line in access_lines), access_lines
