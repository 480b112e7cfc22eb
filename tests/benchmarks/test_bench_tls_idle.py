"""Smoke tests of benchmarks/bench_tls_idle.py: arguments, pure helpers, the pressure thread.

No timing assertions (speed belongs in benchmarks/). The pressure clients run against an
in-process listener on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import math
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import wait_for

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import bench_tls_idle as b  # noqa: E402


def test_parse_args_defaults_and_errors() -> None:
    args = b.parse_args([])
    assert (args.idle, args.slow, args.requests) == (1000, 0, 200)
    assert args.timeout > 0 and args.time_limit > 0 and args.threads is None
    args = b.parse_args(["--idle", "10", "--slow", "5", "--drip", "0.5", "--threads", "8"])
    assert (args.idle, args.slow, args.drip, args.threads) == (10, 5, 0.5, 8)
    for bad in (["--idle", "-1"], ["--requests", "0"], ["--timeout", "0"], ["--drip", "-2"]):
        with pytest.raises(SystemExit):
            b.parse_args(bad)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert b.percentile(values, 50) == 50.0
    assert b.percentile(values, 99) == 99.0
    assert b.percentile(values, 100) == 100.0
    assert b.percentile([7.0, 1.0], 99) == 7.0
    assert b.percentile([3.0], 0) == 3.0
    assert math.isnan(b.percentile([], 50))


def test_series_row_counts_failures_as_timeouts() -> None:
    ok = b.series_row("s", [1.0] * 99 + [40.0], 0, 5000.0)
    assert ok == ["s", 100, 0, 1.0, 1.0, 40.0, "yes"]
    slow = b.series_row("s", [1.0] * 98, 2, 5000.0)
    assert slow[1:3] == [98, 2] and slow[4] == 5000.0 and slow[-1] == "NO"
    assert b.series_row("s", [60.0] * 10, 0, 5000.0)[-1] == "NO"  # p99 over 50 ms
    none = b.series_row("s", [], 3, 2000.0)
    assert none[1:6] == [0, 3, 2000.0, 2000.0, 2000.0]


def test_status_figures() -> None:
    status = {"Threads": "34", "VmRSS": "30720 kB", "Name": "python3"}
    assert b.status_figures(status, 57) == (34, 30.0, 57)


def test_client_hello_is_a_tls_handshake_record() -> None:
    hello = b.client_hello(ssl.create_default_context())
    assert hello[0] == 0x16 and hello[5] == 0x01  # handshake record, ClientHello
    assert int.from_bytes(hello[3:5], "big") == len(hello) - 5  # one whole record


def test_pressure_keeps_connections_open_and_drips() -> None:
    hello = b"\x16HELLO"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        pressure = b.Pressure(listener.getsockname()[1], 2, 1, hello, 0.02)
        accepted: list[socket.socket] = []
        try:
            pressure.start()
            accepted += [listener.accept()[0] for _ in range(3)]
            for s in accepted:
                s.settimeout(0.5)
            got = b""
            for s in accepted:  # only the slow one sends, a byte per drip, all of it
                try:
                    while len(got) < len(hello):
                        chunk = s.recv(1)
                        if not chunk:
                            break
                        got += chunk
                except TimeoutError:
                    continue
            assert got == hello
            accepted[0].close()  # the server closes one: it comes back
            accepted.append(listener.accept()[0])
            assert wait_for(lambda: pressure.reconnects == 1)
        finally:
            pressure.close()
            for s in accepted:
                s.close()
    assert pressure.stop.is_set() and not pressure.thread.is_alive()


def test_script_help() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_tls_idle.py"),
                          "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert "--idle" in out.stdout and "--slow" in out.stdout
