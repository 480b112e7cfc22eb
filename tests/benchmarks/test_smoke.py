"""Smoke tests of the benchmark harness: parsing, statistics, tables, server lifecycle.

No timing assertions here (speed belongs in benchmarks/): these check that the harness reads
wrk's report correctly, alternates competitors, stops every server it starts, and that the
stdlib and minihttp server programs really share their handler code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import _harness as h  # noqa: E402
from benchmarks import _nginx, bench_hello, bench_proxy, bench_static  # noqa: E402

WRK_SAMPLE = """\
Running 5s test @ http://127.0.0.1:40123/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us    1.20ms  31.50ms   95.12%
    Req/Sec    10.12k   640.11    11.30k    70.00%
  Latency Distribution
     50%  540.00us
     75%    0.90ms
     90%    1.40ms
     99%    6.02ms
  100702 requests in 5.00s, 8.74MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:  20140.40
Transfer/sec:      1.75MB
"""


def test_parse_wrk_sample() -> None:
    r = h.parse_wrk(WRK_SAMPLE)
    assert r.requests == 100702
    assert r.duration == pytest.approx(5.0)
    assert r.bytes_read == pytest.approx(8.74 * 1024**2)
    assert r.requests_per_sec == pytest.approx(20140.40)
    assert r.transfer_per_sec == pytest.approx(1.75 * 1024**2)
    assert r.latency_avg == pytest.approx(812e-6)
    assert r.latency_max == pytest.approx(31.5e-3)
    assert r.latency_percentiles == pytest.approx(
        {"50": 540e-6, "75": 0.9e-3, "90": 1.4e-3, "99": 6.02e-3})
    assert r.socket_errors == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert r.non_2xx_3xx == 7
    assert r.errors == 17
    assert json.loads(json.dumps(r.to_json()))["requests"] == 100702


def test_parse_wrk_without_errors_or_percentiles() -> None:
    text = "\n".join(line for line in WRK_SAMPLE.splitlines()
                     if "errors" not in line and "Non-2xx" not in line and "%  " not in line)
    r = h.parse_wrk(text)
    assert r.errors == 0
    assert r.latency_percentiles == {}
    assert r.requests_per_sec == pytest.approx(20140.40)


def test_parse_wrk_rejects_garbage() -> None:
    with pytest.raises(h.WrkError):
        h.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(("text", "seconds"), [
    ("540.00us", 540e-6), ("1.20ms", 1.2e-3), ("2.00s", 2.0), ("1.50m", 90.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert h.parse_duration(text) == pytest.approx(seconds)


def test_parse_units() -> None:
    assert h.parse_bytes("386.78KB") == pytest.approx(386.78 * 1024)
    assert h.parse_bytes("12.00B") == pytest.approx(12.0)
    assert h.parse_count("1.94k") == pytest.approx(1940.0)
    assert h.parse_count("3.00M") == pytest.approx(3e6)
    for bad in ("12.0parsecs", "fast", ""):
        with pytest.raises(h.WrkError):
            h.parse_bytes(bad)
    with pytest.raises(h.WrkError):
        h.parse_duration("3.0KB")


def test_median_and_ratio() -> None:
    assert h.median([3.0, 1.0, 2.0]) == 2.0
    assert h.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(h.median([]))
    assert h.ratio(10.0, 4.0) == 2.5
    assert math.isnan(h.ratio(1.0, 0.0))
    assert math.isnan(h.ratio(float("nan"), 1.0))


def _fake(rps: float, errors: int = 0) -> h.WrkResult:
    return h.WrkResult(requests=int(rps), duration=1.0, bytes_read=rps * 100,
                       requests_per_sec=rps, transfer_per_sec=rps * 100, latency_avg=1e-3,
                       latency_max=2e-3, latency_percentiles={"50": 1e-3, "99": 2e-3},
                       socket_errors={"connect": 0, "read": errors, "write": 0, "timeout": 0},
                       non_2xx_3xx=0)


def test_alternate_order_is_round_robin() -> None:
    calls: list[str] = []
    rps = {"a": 1.0, "b": 2.0, "c": 3.0}

    def measure(name: str) -> h.WrkResult:
        calls.append(name)
        return _fake(rps[name] * len(calls))

    out = h.alternate(["a", "b", "c"], 3, measure)
    assert calls == ["a", "b", "c"] * 3
    assert [r.requests_per_sec for r in out["b"]] == [4.0, 10.0, 16.0]


def test_summary_rows_and_markdown_table() -> None:
    rows = h.summary_rows({"x": [_fake(100.0), _fake(300.0, errors=2), _fake(200.0)]})
    assert rows[0][:4] == ["x", 200.0, 100.0, 300.0]
    assert rows[0][-1] == 2
    table = h.markdown_table(["name", "value"], [["a", 1234.5], ["bb", float("nan")]])
    lines = table.splitlines()
    assert lines[0] == "| name | value |"
    assert lines[1] == "|------|------:|"  # numbers right-aligned
    assert lines[2] == "| a    | 1,234 |" or lines[2] == "| a    | 1,235 |"
    assert lines[3] == "| bb   |   n/a |"


def test_write_json(tmp_path: Path) -> None:
    path = h.write_json("smoke", {"x": 1.5}, directory=tmp_path / "results")
    assert path.parent == tmp_path / "results"
    assert json.loads(path.read_text()) == {"x": 1.5}


def _shared_part(path: Path) -> str:
    text = path.read_text()
    start = text.index("# --- end import ---")
    end = text.index("# --- end of the code shared by")
    return text[start:end]


@pytest.mark.parametrize("kind", ["hello", "static"])
def test_stdlib_and_minihttp_servers_share_their_code(kind: str) -> None:
    servers = REPO / "benchmarks" / "servers"
    stdlib = _shared_part(servers / f"stdlib_{kind}.py")
    ours = _shared_part(servers / f"minihttp_{kind}.py")
    assert "class" in stdlib  # the region holds the handler, not nothing
    assert stdlib == ours


def test_minihttp_servers_import_only_minihttp() -> None:
    for name in ("minihttp_hello.py", "minihttp_static.py"):
        text = (REPO / "benchmarks" / "servers" / name).read_text()
        imports = [line.strip() for line in text.splitlines()
                   if line.strip().startswith(("import ", "from "))]
        assert any(line.startswith("from minihttp.server import") for line in imports)
        assert not any("http.server" in line.replace("minihttp.server", "")
                       or "socketserver" in line for line in imports), imports


def _children_of(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("mode", [[], ["--epoll"]], ids=["threads", "epoll"])
def test_start_server_floor_and_stop(mode: list[str]) -> None:
    port = h.free_port()
    with h.start_server("floor", h.python_server_argv("floor.py", "--port", str(port), *mode),
                        port) as srv:
        h.check_get(srv.port, "/", b"Hello World\n")
        # Pipelined requests each get an answer (the floor counts CRLFCRLF).
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            data = b""
            for _ in range(50):
                if data.count(b"Hello World\n") == 3:
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.count(b"HTTP/1.1 200 OK") == 3
        log_dir = srv.log_path.parent
        pid = srv.proc.pid
    assert srv.proc.poll() is not None
    assert not _children_of(pid)
    assert not log_dir.exists()


def test_start_server_reports_a_server_that_dies() -> None:
    port = h.free_port()
    argv = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="boom"), h.start_server("dead", argv, port):
        pass


def test_check_get_rejects_a_wrong_body() -> None:
    port = h.free_port()
    with h.start_server("floor", h.python_server_argv("floor.py", "--port", str(port)),
                        port) as srv, pytest.raises(RuntimeError, match="unexpected body"):
        h.check_get(srv.port, "/", b"something else")


def test_start_all_skips_missing_competitors() -> None:
    import contextlib

    messages: list[str] = []
    specs = [
        h.ServerSpec("floor", lambda p: h.python_server_argv("floor.py", "--port", str(p))),
        h.ServerSpec("broken", lambda p: [sys.executable, "-c", "raise SystemExit('nope')"]),
    ]
    with contextlib.ExitStack() as stack:
        running, missing = h.start_all(stack, specs, messages.append)
        assert list(running) == ["floor"]
        assert "nope" in missing["broken"]
        proc = running["floor"].proc
    assert proc.poll() is not None
    assert messages and "broken" in messages[0]


def test_proxy_command_template_and_lua() -> None:
    argv = bench_proxy.proxy_argv("{python} -m minihttp.proxy --quiet {port}", 8123)
    assert argv == [sys.executable, "-m", "minihttp.proxy", "--quiet", "8123"]
    lua = bench_proxy.lua_script(4567)
    assert 'wrk.path = "http://127.0.0.1:4567/"' in lua
    assert 'wrk.headers["Host"] = "127.0.0.1:4567"' in lua
    assert "request" not in lua
    vary = bench_proxy.lua_script(4567, vary=True)
    assert vary.startswith(lua)
    assert 'wrk.format(nil, "http://127.0.0.1:4567/?n=" .. n)' in vary


def test_ratio_rows_flag_missed_targets() -> None:
    rows = bench_hello.ratio_rows({"minihttp": 30.0, "stdlib": 10.0, "floor": 60.0})
    assert ["minihttp / stdlib", 3.0, ">= 4", "NO"] in rows
    assert ["minihttp / floor", 0.5, ">= 0.6", "NO"] in rows
    assert bench_hello.ratio_rows({"stdlib": 1.0, "floor": 2.0}) == []
    rows = bench_static.ratio_rows({("1 MiB", "minihttp"): 9.0, ("1 MiB", "nginx"): 10.0})
    assert rows == [["1 MiB", "minihttp / nginx", 0.9, ">= 0.8", "yes"]]


def test_nginx_conf(tmp_path: Path) -> None:
    conf = _nginx.write_nginx_conf(tmp_path, tmp_path / "www", 8123).read_text()
    for needle in ("daemon off;", "master_process off;", "sendfile on;", "access_log off;",
                   f"pid {tmp_path}/nginx.pid;", "listen 127.0.0.1:8123;",
                   f"root {tmp_path}/www;", f"error_log {tmp_path}/error.log"):
        assert needle in conf


@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx not installed")
def test_nginx_serves_and_stops(tmp_path: Path) -> None:
    root, work = tmp_path / "www", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    (root / "f.bin").write_bytes(b"x" * 5000)
    port = h.free_port()
    argv = _nginx.nginx_argv(_nginx.write_nginx_conf(work, root, port), work)
    with h.start_server("nginx", argv, port) as srv:
        h.check_get(srv.port, "/f.bin", b"x" * 5000)
        proc = srv.proc
    assert proc.poll() is not None


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_run_wrk_sends_absolute_form_through_the_lua_script(tmp_path: Path) -> None:
    """End to end for one second: wrk, our Lua script, and parsing of a real report."""
    lines: list[bytes] = []
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            buf = b""
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    if len(lines) < 10:
                        lines.append(head)
                    conn.sendall(response)

    def serve() -> None:
        # wrk opens (and closes) a probe connection before the measured one: serve a few
        # connections in turn, bounded in count.
        for _ in range(5):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            serve_one(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        script = tmp_path / "p.lua"
        script.write_text(bench_proxy.lua_script(4567))
        result = h.run_wrk(f"http://127.0.0.1:{port}/", connections=1, duration=1, threads=1,
                           script=script)
    finally:
        stop.set()
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        t.join(10)
    assert not t.is_alive()
    assert result.requests > 0 and result.errors == 0
    assert lines and lines[0].startswith(b"GET http://127.0.0.1:4567/ HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:4567" in lines[0]


def test_run_wrk_rejects_fractional_seconds() -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk not installed")
    with pytest.raises(ValueError):
        h.run_wrk("http://127.0.0.1:1/", connections=1, duration=0.5)  # type: ignore[arg-type]


def test_scripts_have_help() -> None:
    for script in ("bench_hello.py", "bench_static.py", "bench_proxy.py"):
        out = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
        assert "--duration" in out.stdout and "--rounds" in out.stdout


def test_baseline_twins_run_the_other_checkout(tmp_path: Path) -> None:
    """``--baseline DIR`` adds, after each minihttp server, its twin from DIR: DIR's own server
    script, the same arguments, and DIR first on PYTHONPATH (so it imports DIR's minihttp)."""
    names = [s.name for s in bench_hello.specs(True, tmp_path)]
    assert names[:4] == ["minihttp", "minihttp@base", "minihttp-pool", "minihttp-pool@base"]
    twin = bench_hello.specs(True, tmp_path)[3]
    assert twin.pythonpath == tmp_path
    argv = twin.argv(8123)
    assert argv[1] == str(tmp_path / "benchmarks" / "servers" / "minihttp_hello.py")
    assert argv[2:] == ["--port", "8123", "--pool"]
    assert "minihttp@base" not in [s.name for s in bench_hello.specs(True)]
    static = bench_static.specs(tmp_path, tmp_path, True, False, tmp_path)
    assert [s.name for s in static][:4] == ["minihttp", "minihttp@base", "minihttp-pool",
                                            "minihttp-pool@base"]
    assert static[1].argv(9)[2:] == ["--port", "9", "--directory", str(tmp_path)]


def test_check_and_alternate_with_custom_check_and_measure() -> None:
    """bench_proxy's route: its own check (absolute-form through a proxy) drops the failing
    competitor; its own measure is used for the warm-up and for every round, in turn."""
    calls: list[tuple[str, int, int]] = []
    result = h.WrkResult(10, 1.0, 0.0, 10.0, 0.0, 0.0, 0.0, {}, {}, 0)

    def check(name: str, srv: h.ServerProcess) -> None:
        if name == "bad":
            raise RuntimeError("no keep-alive")

    def measure(name: str, connections: int, duration: int) -> h.WrkResult:
        calls.append((name, connections, duration))
        return result

    args = type("A", (), {"connections": 16, "warmup": 1, "duration": 3, "rounds": 2,
                          "threads": 1})()
    servers: dict[str, h.ServerProcess] = {n: None for n in ("a", "bad", "b")}  # type: ignore[misc]
    missing: dict[str, str] = {}
    out = h.check_and_alternate(servers, missing, args, b"", check=check, measure=measure)
    assert "no keep-alive" in missing["bad"] and list(out) == ["a", "b"]
    assert calls == [("a", 16, 1), ("b", 16, 1), ("a", 16, 3), ("b", 16, 3),
                     ("a", 16, 3), ("b", 16, 3)]


def test_tinyproxy_conf_stays_in_work_dir(tmp_path: Path) -> None:
    conf = bench_proxy.tinyproxy_conf(tmp_path, 8123).read_text()
    for needle in ("Port 8123", "Listen 127.0.0.1", "Allow 127.0.0.1",
                   f'LogFile "{tmp_path}/', f'PidFile "{tmp_path}/'):
        assert needle in conf


@pytest.mark.skipif(shutil.which("tinyproxy") is None, reason="tinyproxy not installed")
def test_tinyproxy_runs_with_our_conf(tmp_path: Path) -> None:
    """The competitor as bench_proxy starts it forwards an absolute-form GET to a local
    upstream (one request: it closes client connections after each response)."""
    upstream = h.free_port()
    specs = [h.ServerSpec("up", lambda p: h.python_server_argv(
                 "minihttp_hello.py", "--port", str(p))),
             *[s for s in bench_proxy._competitor_specs(
                 type("A", (), {"no_competitors": False, "proxypy_python": None})(), tmp_path)
               if s.name == "tinyproxy"]]
    with contextlib.ExitStack() as stack:
        running, missing = h.start_all(stack, specs, lambda m: None)
        assert not missing, missing
        upstream = running["up"].port
        h.check_get(upstream, f"http://127.0.0.1:{upstream}/", b"Hello World\n",
                    host_header=f"127.0.0.1:{upstream}", connect_port=running["tinyproxy"].port,
                    keep_alive=False)


def test_bench_tunnels_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_tunnels.py with a few tunnels: every row printed, the proxy's threads bounded
    and the stop within the grace (the script's own verdicts)."""
    from benchmarks import bench_tunnels

    assert bench_tunnels.main(["--tunnels", "50", "--requests", "5"]) == 0
    out = capsys.readouterr().out
    assert "| proxy threads (before -> with tunnels)" in out
    for row in out.splitlines():
        if row.startswith(("| proxy threads", "| seconds from SIGINT")):
            assert row.rstrip(" |").endswith("yes"), row
    assert "50/50" in out


def test_nginx_gzip_only_when_asked(tmp_path: Path) -> None:
    assert "gzip on;" not in _nginx.write_nginx_conf(tmp_path, tmp_path, 8123).read_text()
    assert "gzip on;" in _nginx.write_nginx_conf(tmp_path, tmp_path, 8123, gzip=True).read_text()


@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx not installed")
def test_bench_slow_readers_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bench_slow_readers

    assert bench_slow_readers.main(["--readers", "5", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| normal client p99 ms (alone -> with readers)" in out
    assert "| proxy threads (before -> with readers)" in out


@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx not installed")
def test_bench_slow_uploads_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bench_slow_uploads

    assert bench_slow_uploads.main(["--uploaders", "5", "--seconds", "1",
                                    "--interval", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "| normal client p99 ms (alone -> with uploaders)" in out
    assert "| proxy threads (before -> with uploaders)" in out
    assert "| body bytes the uploaders sent" in out


@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx not installed")
def test_bench_static_gzip_row_servers_pass_the_check(tmp_path: Path) -> None:
    """The compressed row's competitors really send gzip (check_gzip refuses identity), and
    the plain servers are not measured on it."""
    root = tmp_path / "www"
    root.mkdir()
    contents = bench_static.make_files(root)
    specs = {s.name: s for s in bench_static.specs(root, tmp_path, pool=False, cli=False)}
    for name in ("minihttp-gzip", "nginx-gzip"):
        port = h.free_port()
        with h.start_server(name, specs[name].argv(port), port) as srv:
            bench_static.check_gzip(srv.port, contents[bench_static.JS_LABEL])
    port = h.free_port()
    with h.start_server("minihttp", specs["minihttp"].argv(port), port) as srv:
        with pytest.raises(RuntimeError):  # no --compress: identity, refused by the check
            bench_static.check_gzip(srv.port, contents[bench_static.JS_LABEL])
        plan = bench_static._plan({"minihttp": srv, "nginx-gzip": srv}, tmp_path / "g.lua")
    assert [(label, names) for label, _f, names, _s in plan] == [
        ("4 KiB", ["minihttp"]), ("1 MiB", ["minihttp"]),
        (bench_static.JS_LABEL, ["nginx-gzip"])]


def test_icount_hello_logs_every_request_it_serves(tmp_path: Path) -> None:
    """benchmarks/icount_hello.py (callgrind's driver) serves N hello requests with the
    command line's access log and writes their N lines; ``quiet`` writes none."""
    for mode, expected in (("cli", 7), ("quiet", 0)):
        out = tmp_path / f"{mode}.log"
        result = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "icount_hello.py"), mode, "7",
             "--out", str(out)], capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert result.returncode == 0, result.stderr
        lines = out.read_text().splitlines() if out.exists() else []
        assert len(lines) == expected, lines
        assert all(line.endswith('"GET / HTTP/1.1" 200 12') for line in lines), lines
