"""Smoke tests of benchmarks/bench_concurrency.py's pure parts (no wrk, no timing).

The command line, the listen-queue counters, the tables and the issue-12 verdict, the
competitors' command lines and apps, and the two server variants it builds from
servers/minihttp_hello.py (access log on; another checkout as the baseline), each started
once and checked with one request.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import _harness as h  # noqa: E402
from benchmarks import bench_concurrency as bc  # noqa: E402

NETSTAT = """\
TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits
TcpExt: 0 0 17 23 377621
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""


# -- the command line ------------------------------------------------------------------------

def test_parser_defaults() -> None:
    args = bc.build_parser().parse_args([])
    assert args.connections == [16, 128, 512, 1000]
    assert (args.duration, args.rounds, args.threads, args.warmup) == (5, 3, 2, 1)
    assert args.timeout == 2.0
    assert args.only is None and not args.access_log and args.baseline is None


def test_parser_levels_only_and_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bc.VENV_ENV, "/opt/bench-venv")
    args = bc.build_parser().parse_args(
        ["--connections", "1000,16", "--only", "granian, minihttp-pool", "--duration", "3"])
    assert args.connections == [1000, 16]
    assert args.only == ["granian", "minihttp-pool"]
    assert args.venv == "/opt/bench-venv"
    assert args.duration == 3


@pytest.mark.parametrize("text", ["", "16,,16", "0", "-5", "16,abc", "1e3"])
def test_parse_levels_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bc.parse_levels(text)


def test_parse_levels_and_names() -> None:
    assert bc.parse_levels("16, 128,1000") == [16, 128, 1000]
    with pytest.raises(argparse.ArgumentTypeError):
        bc.parse_names(" , ")


def test_bad_levels_exit_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        bc.build_parser().parse_args(["--connections", "16,16"])
    assert exc.value.code == 2


def test_ensure_nofile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bc, "raise_nofile", lambda: 1024)
    with pytest.raises(SystemExit, match="ulimit"):
        bc.ensure_nofile([16, 1000])
    assert bc.ensure_nofile([16, 128]) == 1024
    monkeypatch.setattr(bc, "raise_nofile", lambda: 65536)
    assert bc.ensure_nofile([1000]) == 65536


def test_venv_python(tmp_path: Path) -> None:
    assert bc.venv_python(None) == sys.executable
    with pytest.raises(SystemExit, match="no "):
        bc.venv_python(str(tmp_path))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    assert bc.venv_python(str(tmp_path)) == str(tmp_path / "bin" / "python")


def test_missing_modules() -> None:
    assert bc.missing_modules(sys.executable, ["json", "no_such_module_for_minihttp"]) == [
        "no_such_module_for_minihttp"]
    assert bc.missing_modules(sys.executable, []) == []


# -- the competitors -------------------------------------------------------------------------

def test_competitors_and_their_command_lines(tmp_path: Path) -> None:
    comps = bc.competitors("/venv/bin/python", access_log=False)
    assert [c.spec.name for c in comps] == ["minihttp-pool", "uvicorn", "granian"]
    pool, uvicorn, granian = (c.spec.argv(8123) for c in comps)
    assert pool[1:] == [str(h.SERVERS_DIR / "minihttp_hello.py"), "--port", "8123", "--pool"]
    assert uvicorn[:3] == ["/venv/bin/python", "-m", "uvicorn"]
    for flag in ("--loop uvloop", "--http httptools", "--no-access-log", "--port 8123",
                 "--host 127.0.0.1"):
        assert flag in " ".join(uvicorn)
    assert granian[:3] == ["/venv/bin/python", "-m", "granian"]
    for flag in ("--interface rsgi", "--workers 1", "--port 8123", "--host 127.0.0.1"):
        assert flag in " ".join(granian)
    assert granian[-1] == "benchmarks.bench_concurrency:rsgi_hello"
    assert comps[1].needs == ("uvicorn", "uvloop", "httptools")
    assert comps[2].spec.cwd == h.REPO_ROOT
    more = bc.competitors(sys.executable, access_log=True, baseline=tmp_path)
    assert [c.spec.name for c in more] == ["minihttp-pool", "minihttp-pool-base",
                                           "minihttp-pool-log", "uvicorn", "granian"]
    assert str(tmp_path) in " ".join(more[1].spec.argv(1))


def test_asgi_and_rsgi_hello() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    asyncio.run(bc.asgi_hello({"type": "http"}, receive, send))
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(bc.BODY)).encode()
    assert sent[1] == {"type": "http.response.body", "body": bc.BODY}
    sent.clear()
    asyncio.run(bc.asgi_hello({"type": "lifespan"}, receive, send))
    assert sent == []

    calls: list[tuple[Any, ...]] = []

    class Proto:
        def response_bytes(self, *args: Any) -> None:
            calls.append(args)

    asyncio.run(bc.rsgi_hello(None, Proto()))
    assert calls == [(200, [("content-type", "text/plain"), ("content-length", "12")],
                      bc.BODY)]


def _serve_once(spec: h.ServerSpec) -> str:
    """Start ``spec``, check one keep-alive exchange, return the server's output."""
    port = h.free_port()
    with h.start_server(spec.name, spec.argv(port), port, cwd=spec.cwd) as srv:
        h.check_get(srv.port, "/", bc.BODY)
        log_path = srv.log_path
        # The access line is written when the request ends: wait for it, bounded.
        for _ in range(50):
            text = log_path.read_text(errors="replace")
            if '"GET / HTTP/1.1" 200' in text:
                break
            time.sleep(0.05)
        return log_path.read_text(errors="replace")


def test_access_log_variant_serves_and_logs() -> None:
    spec = bc.competitors(sys.executable, access_log=True)[1].spec
    assert spec.name == "minihttp-pool-log"
    assert '"GET / HTTP/1.1" 200 12' in _serve_once(spec)


def test_baseline_variant_runs_the_other_checkouts_minihttp(tmp_path: Path) -> None:
    # A fake checkout whose minihttp says it was imported (then lends the real subpackages)
    # and whose hello server is the real one.
    servers = tmp_path / "benchmarks" / "servers"
    servers.mkdir(parents=True)
    (tmp_path / "minihttp").mkdir()
    (tmp_path / "minihttp" / "__init__.py").write_text(
        "import sys\n"
        "print('baseline-checkout', file=sys.stderr, flush=True)\n"
        f"__path__.append({str(REPO / 'minihttp')!r})\n")
    (servers / "minihttp_hello.py").write_text(
        (REPO / "benchmarks" / "servers" / "minihttp_hello.py").read_text())
    spec = bc.competitors(sys.executable, access_log=False, baseline=tmp_path)[1].spec
    assert spec.name == "minihttp-pool-base"
    assert "baseline-checkout" in _serve_once(spec)


# -- listen queues, tables, verdict ----------------------------------------------------------

def test_listen_counters() -> None:
    assert bc.listen_counters(NETSTAT) == {"ListenOverflows": 17, "ListenDrops": 23}
    assert bc.listen_counters("IpExt: a\nIpExt: 1\n") == {}
    assert bc.listen_counters("") == {}


def _wrk(rps: float, p99_ms: float, *, timeout: int = 0, read: int = 0,
         non2xx: int = 0) -> h.WrkResult:
    return h.WrkResult(requests=int(rps), duration=1.0, bytes_read=0.0, requests_per_sec=rps,
                       transfer_per_sec=0.0, latency_avg=1e-3, latency_max=p99_ms / 1e3,
                       latency_percentiles={"50": 1e-3, "99": p99_ms / 1e3},
                       socket_errors={"connect": 0, "read": read, "write": 0,
                                      "timeout": timeout},
                       non_2xx_3xx=non2xx)


def _s(rps: float, p99_ms: float, ovf: int = 0, **errors: int) -> bc.Sample:
    return bc.Sample(_wrk(rps, p99_ms, **errors), ovf)


def test_level_rows_medians_worst_and_sums() -> None:
    rows = bc.level_rows({"a": [_s(100.0, 10.0, 1), _s(300.0, 90.0, timeout=4, read=1),
                                _s(200.0, 20.0, 2, non2xx=3)]})
    assert len(rows[0]) == len(bc.TABLE_HEADERS)
    name, med, lo, hi, p50, p99, worst, conn, read, write, tmo, non2xx, ovf = rows[0]
    assert (name, med, lo, hi) == ("a", 200.0, 100.0, 300.0)
    assert p50 == pytest.approx(1.0)
    assert p99 == pytest.approx(20.0)   # the median round
    assert worst == pytest.approx(90.0)  # the tail one round in three
    assert (conn, read, write, tmo, non2xx, ovf) == (0, 1, 0, 4, 3, 3)


def test_target_rows_verdicts() -> None:
    good_128 = [_s(1000.0, 5.0)] * 3
    results = {
        128: {"ok": good_128, "slow-tail": good_128, "errors": good_128, "drops": good_128},
        1000: {
            "ok": [_s(950.0, 30.0), _s(900.0, 49.0), _s(1000.0, 20.0)],
            "slow-tail": [_s(1000.0, 30.0), _s(1000.0, 779.0), _s(1000.0, 20.0)],
            "errors": [_s(1000.0, 30.0, timeout=74), _s(1000.0, 30.0), _s(1000.0, 30.0)],
            "drops": [_s(850.0, 30.0)] * 3,
        },
    }
    rows = {r[0]: r for r in bc.target_rows(results)}
    assert rows["ok"][1:] == [0, pytest.approx(49.0), "<= 50", pytest.approx(0.95), ">= 0.9",
                              "yes"]
    assert rows["slow-tail"][-1] == "NO" and rows["slow-tail"][2] == pytest.approx(779.0)
    assert rows["errors"][-1] == "NO" and rows["errors"][1] == 74
    assert rows["drops"][-1] == "NO" and rows["drops"][4] == pytest.approx(0.85)


def test_target_rows_without_the_128_level() -> None:
    rows = bc.target_rows({1000: {"x": [_s(10.0, 10.0)]}})
    assert math.isnan(rows[0][4]) and rows[0][-1] == "yes"
    assert bc.target_rows({}) == []


def test_report_has_a_table_per_level_and_the_missing() -> None:
    args = bc.build_parser().parse_args(["--rounds", "1"])
    text = bc.report({16: {"a": [_s(1.0, 1.0)]}, 1000: {"a": [_s(1.0, 1.0)]}}, args,
                     {"granian": "granian not installed"}, "a note")
    assert text.index("#### -c16") < text.index("#### -c1000") < text.index("#### Targets")
    assert "| server " in text and "p99 worst ms" in text
    assert "granian: not measured (granian not installed)" in text
    assert text.rstrip().endswith("_a note_")


def test_report_without_any_server_has_no_empty_tables() -> None:
    args = bc.build_parser().parse_args([])
    text = bc.report({16: {}, 1000: {}}, args, {"uvicorn": "not installed"}, "a note")
    assert "####" not in text and "| server" not in text
    assert "uvicorn: not measured (not installed)" in text


def test_script_help() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_concurrency.py"),
                          "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    for flag in ("--connections", "--venv", "--rounds", "--baseline", "--access-log"):
        assert flag in out.stdout
