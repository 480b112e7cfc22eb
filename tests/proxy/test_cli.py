"""The proxy's command line is one family with the file server's (issue 15 item 8): ``-q``,
``--version``, the usage naming ``python -m minihttp proxy``, the same port-in-use sentence,
the credential options and the authenticated user in the access log. Real subprocesses on
127.0.0.1, every wait bounded."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from minihttp import __version__
from minihttp.proxy import config as proxy_config
from tests.helpers.proxy import Upstream

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = [["-m", "minihttp", "proxy"], ["-m", "minihttp.proxy"]]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MINIHTTP_AUTH"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], env=_env(), capture_output=True,
                          text=True, timeout=20, cwd=ROOT)


def _announced_port(proc: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """The port of the proxy's "Serving HTTP proxy on ..." line, waiting at most
    ``timeout`` seconds for it."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "the proxy announced nothing in time"
    line = proc.stdout.readline()
    assert line.startswith("Serving HTTP proxy on 127.0.0.1 port "), line
    return int(line.split(" port ")[1].split()[0])


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_version(entry: list[str]) -> None:
    result = _run(*entry, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"minihttp {__version__}"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_usage_names_the_documented_command(entry: list[str]) -> None:
    result = _run(*entry, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m minihttp proxy ")
    for option in ("-q, --quiet", "--access-log", "--workers", "--auth-file", "--version"):
        assert option in result.stdout, option
    result = _run(*entry, "--bogus")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m minihttp proxy ")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_port_in_use_reads_as_the_file_servers(entry: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proxy = _run(*entry, str(port), "-b", "127.0.0.1")
        files = _run("-m", "minihttp", str(port), "-b", "127.0.0.1")
    assert proxy.returncode == files.returncode == 1
    assert "Traceback" not in proxy.stderr and "Errno" not in proxy.stderr
    assert proxy.stderr == files.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use\n")


def test_quiet_and_authenticated_user_in_the_log() -> None:
    """-q is known (nothing logged); without it the line names the authenticated user."""
    for quiet in (True, False):
        argv = ["-m", "minihttp", "proxy", "0", "--auth", "alice:pw", *(["-q"] if quiet else [])]
        with Upstream() as up:
            proc = subprocess.Popen([sys.executable, *argv], env=_env(), cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                port = _announced_port(proc)  # announced with -q too, as the file server
                with requests.Session() as s:
                    s.trust_env = False
                    s.proxies = {"http": f"http://alice:pw@127.0.0.1:{port}"}
                    assert s.get(f"{up.base}/x", timeout=5).status_code == 200
                proc.send_signal(signal.SIGINT)
                _out, err = proc.communicate(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=5)
        assert proc.returncode == 0
        assert "warning" not in err  # loopback: no warning
        if quiet:
            assert "/x" not in err
        else:
            assert re.search(rf'^127\.0\.0\.1 - alice \[.*\] "GET {re.escape(up.base)}/x '
                             r'HTTP/1.1" 200 3$', err, re.M), err


def test_auth_without_tls_on_a_public_address_warns() -> None:
    # 192.0.2.1 (TEST-NET-1) is never this machine's: the warning, then the bind fails.
    result = _run("-m", "minihttp", "proxy", "0", "-b", "192.0.2.1", "--auth", "a:b")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: authentication without TLS on 192.0.2.1")
    assert lines[1].startswith("error: cannot listen on 192.0.2.1:0")


def test_access_log_file_and_format(tmp_path: Path) -> None:
    """--access-log and --access-log-format, the file server's options, work on the proxy."""
    log = tmp_path / "access.log"
    argv = ["-m", "minihttp", "proxy", "0", "--auth", "alice:pw", "--access-log", str(log),
            "--access-log-format", "{user} {method} {status}"]
    with Upstream() as up:
        proc = subprocess.Popen([sys.executable, *argv], env=_env(), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = _announced_port(proc)
            with requests.Session() as s:
                s.trust_env = False
                s.proxies = {"http": f"http://alice:pw@127.0.0.1:{port}"}
                assert s.get(f"{up.base}/x", timeout=5).status_code == 200
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert log.read_text() == "alice GET 200\n"


def test_readme_summary_lists_every_proxy_option() -> None:
    """The README's proxy summary keeps up with the parser (options come from several
    people's work)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A forward proxy: `python -m minihttp proxy`"):]
    m = re.search(r"```\n(python -m minihttp proxy \[port\].*?)```", section, re.S)
    assert m, "no summary block in the README's proxy section"
    parser = proxy_config.build_parser()
    options = [opt for action in parser._actions for opt in action.option_strings
               if opt not in ("-h", "--help")]
    assert "--auth-file" in options and "-q" in options  # the parser was read
    missing = [opt for opt in options
               if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", m.group(1))]
    assert not missing, f"README's proxy CLI summary lacks {missing}"
