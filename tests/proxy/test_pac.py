"""``--pac FILE``: the proxy auto-config file served at /proxy.pac to direct requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from minihttp.proxy import ProxyConfig, config_from_args
from minihttp.proxy.config import parse_args
from tests.helpers.proxy import proxy, raw_exchange

pytestmark = pytest.mark.usefixtures("proxy_kind")

PAC = b'function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:3128; DIRECT"; }\n'


def _cfg(**changes: object) -> ProxyConfig:
    return ProxyConfig(upstream_timeout=5, quiet=True, **changes)  # type: ignore[arg-type]


def _base(server: object) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]


def test_pac_is_served_with_its_type() -> None:
    with proxy(_cfg(pac=PAC)) as p:
        r = requests.get(_base(p) + "/proxy.pac", timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/x-ns-proxy-autoconfig"
        assert r.content == PAC
        r = requests.get(_base(p) + "/proxy.pac?v=2", timeout=5)
        assert r.status_code == 200 and r.content == PAC
        r = requests.head(_base(p) + "/proxy.pac", timeout=5)
        assert r.status_code == 200 and r.headers["Content-Length"] == str(len(PAC))
        assert r.content == b""
        r = requests.post(_base(p) + "/proxy.pac", data=b"x", timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_other_direct_requests_keep_their_answer() -> None:
    with proxy(_cfg(pac=PAC)) as p:
        for path in ("/", "/proxy.pac.bak", "/x/proxy.pac"):
            r = requests.get(_base(p) + path, timeout=5)
            assert r.status_code == 400 and "absolute-form" in r.text, path
    with proxy(_cfg()) as p:  # no --pac: /proxy.pac is a direct request like any other
        r = requests.get(_base(p) + "/proxy.pac", timeout=5)
        assert r.status_code == 400


def test_pac_needs_no_proxy_credentials_but_the_allow_list_applies() -> None:
    with proxy(_cfg(pac=PAC, auth=("u", "p"))) as p:
        assert requests.get(_base(p) + "/proxy.pac", timeout=5).content == PAC
        assert requests.get(_base(p) + "/", timeout=5).status_code == 407
    with proxy(_cfg(pac=PAC, allow=("10.0.0.0/8",))) as p:
        answer = raw_exchange(p.server_address[1],
                              b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403 ") and PAC not in answer


def test_command_line(tmp_path: Path) -> None:
    path = tmp_path / "proxy.pac"
    path.write_bytes(PAC)
    assert config_from_args(parse_args(["--pac", str(path)])).pac == PAC
    with pytest.raises(ValueError, match="cannot read --pac"):
        config_from_args(parse_args(["--pac", str(tmp_path / "missing.pac")]))
