"""Proxy authentication with the file server's credential options (issue 14 item 2):
``--auth`` (repeatable), ``--auth-file`` (hashes), ``MINIHTTP_AUTH``; 407 with
``Proxy-Authenticate``; the authenticated user in the access log (issue 15 item 8)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from minihttp.auth import hash_password
from minihttp.proxy import ProxyConfig, config_from_args
from minihttp.proxy.config import parse_args
from tests.helpers.logstate import access_messages
from tests.helpers.proxy import Upstream, proxy, raw_exchange

#: Every test here runs on each proxy server (threads, pooled event loop).
pytestmark = pytest.mark.usefixtures("proxy_kind")


@pytest.fixture(autouse=True)
def no_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIHTTP_AUTH", raising=False)


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    with access_messages() as got:
        yield got


def _session(url: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": url, "https": url}
    return s


def _config(*argv: str) -> ProxyConfig:
    return config_from_args(parse_args(["0", *argv])).replace(
        upstream_timeout=5, tunnel_idle_timeout=5)


def test_auth_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   access_lines: list[str]) -> None:
    users = tmp_path / "users"
    users.write_text("carol:" + hash_password("c pw", "pbkdf2-sha256") + "\n")
    monkeypatch.setenv("MINIHTTP_AUTH", "dan:d1")
    cfg = _config("--auth-file", str(users), "--auth", "erin:e1")
    with Upstream() as up, proxy(cfg) as px:
        port = px.server_address[1]
        with _session(f"http://127.0.0.1:{port}") as s:
            r = s.get(f"{up.base}/", timeout=5)
            assert r.status_code == 407
            assert r.headers["Proxy-Authenticate"] == 'Basic realm="minihttp", charset="UTF-8"'
        for user, password in (("carol", "c%20pw"), ("dan", "d1"), ("erin", "e1")):
            with _session(f"http://{user}:{password}@127.0.0.1:{port}") as s:
                assert s.get(f"{up.base}/{user}", timeout=5).status_code == 200
        with _session(f"http://carol:d1@127.0.0.1:{port}") as s:
            assert s.get(f"{up.base}/", timeout=5).status_code == 407
        assert [seen.target for seen in up.seen] == ["/carol", "/dan", "/erin"]
        assert all(seen.get("Proxy-Authorization") is None for seen in up.seen)
    # A line is written after its response went out, so the next request may log first:
    # compare as a multiset, and pair each named user with its own request.
    users_logged = [line.split(" ")[2] for line in access_lines]
    assert sorted(users_logged) == ["-", "-", "carol", "dan", "erin"]
    for user in ("carol", "dan", "erin"):
        assert [line.split(" ")[2] for line in access_lines if f"/{user} " in line] == [user]


def test_user_of_one_request_is_not_logged_for_the_next(access_lines: list[str]) -> None:
    with Upstream() as up, proxy(_config("--auth", "alice:pw")) as px:
        good = base64.b64encode(b"alice:pw").decode()
        target = f"http://127.0.0.1:{up.port}/"
        raw_exchange(px.server_address[1], (
            f"GET {target} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {good}\r\n\r\n"
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
    assert [line.split(" ")[2] for line in access_lines] == ["alice", "-"]


@pytest.mark.parametrize("field", [
    "Basic " + base64.b64encode(b"alice:\xff").decode(),   # not UTF-8
    "Basic " + base64.b64encode(b"alicepw").decode(),      # no colon
    "Basic " + "A" * 5000,                                 # huge
])
def test_malformed_proxy_credentials_get_407(field: str) -> None:
    with proxy(_config("--auth", "alice:pw")) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n"
                           f"Proxy-Authorization: {field}\r\nConnection: close\r\n\r\n"
                           .encode())
        assert out.startswith(b"HTTP/1.1 407 ")
