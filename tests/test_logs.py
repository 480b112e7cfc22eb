"""Tests of minihttp.logs (routes, LineHandler, the access-line renderer) and of the batching
writer under it (minihttp._linewriter): lines whole, in order, atomic on pipes, nothing lost
at exit or across fork(), nothing raised into a request.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import select
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minihttp import _linewriter, logs
from minihttp._linewriter import LineWriter
from tests.helpers.logstate import PipeReader, isolated_logging
from tests.helpers.servers import wait_for

REPO = Path(__file__).resolve().parent.parent
PIPE_BUF = select.PIPE_BUF


@contextlib.contextmanager
def _logging_to_pipe(**options: Any) -> Iterator[PipeReader]:
    """Inside ``isolated_logging``: minihttp's logging configured (``options``) to write to
    a new pipe, whose reader is yielded. On exit its handlers are closed (they flush) and
    then the pipe's write end, so ``reader.data()`` afterwards has every line."""
    r, w = os.pipe()
    reader = PipeReader(r)
    try:
        logs.configure(fd=w, **options)
        yield reader
    finally:
        for handler in list(logs.package_log.handlers):
            logs.package_log.removeHandler(handler)
            handler.close()
        os.close(w)


def _run_python(code: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- the writer


def test_lines_from_many_threads_are_whole_in_order_and_atomic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: Any) -> int:
        if fd == w:
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(_linewriter.os, "write", spy)
    reader = PipeReader(r)
    writer = LineWriter(w, delay=0.005)
    threads, per_thread = 8, 1500

    def produce(t: int) -> None:
        for i in range(per_thread):
            writer.write(f"t{t} {i:05d} " + "x" * (i % 97))

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30.0)
    writer.close()
    os.close(w)
    lines = reader.data().decode().split("\n")
    assert lines.pop() == ""
    assert len(lines) == threads * per_thread
    last = [-1] * threads
    for line in lines:
        m = re.fullmatch(r"t(\d) (\d{5}) (x*)", line)
        assert m, line
        t, i = int(m.group(1)), int(m.group(2))
        assert i == last[t] + 1 and len(m.group(3)) == i % 97  # whole, and in order
        last[t] = i
    assert writes and all(len(c) <= PIPE_BUF and c.endswith(b"\n") for c in writes)


TWO_PROCESSES = """
    import sys
    from minihttp._linewriter import LineWriter
    tag = sys.argv[1]
    w = LineWriter(1, delay=0.05)  # stdout: the pipe both processes share
    for i in range(4000):
        w.write(f"{tag} {i:05d} " + tag * 200)
    # no flush: at exit
"""


def test_two_processes_writing_one_pipe_never_interleave() -> None:
    r, w = os.pipe()
    reader = PipeReader(r, size=4096, pause=0.0005)  # slow: the pipe stays full
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(TWO_PROCESSES), tag],
                              stdout=w, env=env) for tag in "ab"]
    os.close(w)
    try:
        for proc in procs:
            assert proc.wait(60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    lines = reader.data(60).decode().split("\n")
    assert lines.pop() == ""
    seen = {"a": -1, "b": -1}
    for line in lines:
        m = re.fullmatch(r"([ab]) (\d{5}) ([ab]{200})", line)
        assert m and m.group(3) == m.group(1) * 200, line[:120]
        assert int(m.group(2)) == seen[m.group(1)] + 1
        seen[m.group(1)] += 1
    assert seen == {"a": 3999, "b": 3999}


def test_nothing_is_lost_at_exit() -> None:
    result = _run_python("""
        import logging
        from minihttp import logs
        from minihttp._linewriter import LineWriter
        w = LineWriter(1, delay=60)  # a batch that would wait a minute
        for i in range(3000):
            w.write(f"plain {i}")
        logs.configure(fd=1)  # the command line's handler, on stdout here
        for i in range(3000):
            logs.access_log.info("record %d", i)
        logs.error_log.error("failure")
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [x for x in lines if x.startswith("plain")] == [f"plain {i}" for i in range(3000)]
    assert [x for x in lines if x.startswith("record")] == [f"record {i}" for i in range(3000)]
    assert lines.count("failure") == 1


def test_a_forked_child_starts_with_an_empty_buffer_and_its_own_thread() -> None:
    result = _run_python("""
        import os, time
        from minihttp._linewriter import LineWriter
        w = LineWriter(1, delay=0.05)
        w.write("parent-1")  # still waiting for its batch at the fork
        pid = os.fork()
        if pid == 0:
            w.write("child-1")
            time.sleep(1.0)  # written by the child's own thread, not by an exit flush
            os._exit(0)
        os.waitpid(pid, 0)
        w.write("parent-2")
    """)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["child-1", "parent-1", "parent-2"]


def test_synchronous_writes_at_once_with_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_linewriter, "_threads_allowed", True)
    r, w = os.pipe()
    reader = PipeReader(r)
    writer = LineWriter(w, delay=60.0)
    try:
        writer.write("batched")  # starts the writer's thread, waits a minute for its batch
        assert wait_for(lambda: _writer_threads(w))
        _linewriter.synchronous()
        assert not _writer_threads(w)
        assert wait_for(lambda: reader.text() == "batched\n")  # flushed
        writer.write("at once")
        assert wait_for(lambda: reader.text() == "batched\nat once\n")
        assert not _writer_threads(w)
    finally:
        monkeypatch.setattr(_linewriter, "_threads_allowed", True)
        writer.close()
        os.close(w)
        reader.data()


def _writer_threads(fd: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"minihttp-log-{fd}"]


def test_close_ends_the_thread_and_later_lines_go_out_at_once() -> None:
    r, w = os.pipe()
    reader = PipeReader(r)
    writer = LineWriter(w, delay=60.0)
    writer.write("one")
    assert wait_for(lambda: _writer_threads(w))
    writer.close()
    assert not _writer_threads(w)
    assert wait_for(lambda: reader.text() == "one\n")
    writer.write("two")
    assert wait_for(lambda: reader.text() == "one\ntwo\n")
    writer.close()  # twice: harmless
    os.close(w)
    reader.data()


def test_a_broken_descriptor_never_raises() -> None:
    r, w = os.pipe()
    os.close(r)  # EPIPE on every write
    writer = LineWriter(w, delay=60.0)
    for i in range(100):
        writer.write(f"line {i}")
    assert writer.flush()
    writer.close()
    os.close(w)


def test_a_line_longer_than_pipe_buf_goes_alone_and_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(_linewriter.os, "write",
                        lambda fd, data: (writes.append(bytes(data)), real_write(fd, data))[1])
    reader = PipeReader(r)
    writer = LineWriter(w, delay=60.0)
    lines = ["a" * 100, "b" * (PIPE_BUF * 2), "c" * 100]
    for line in lines:
        writer.write(line)
    writer.close()
    os.close(w)
    assert reader.data().decode() == "".join(x + "\n" for x in lines)
    assert [len(x) for x in writes] == [101, PIPE_BUF * 2 + 1, 101]


# --------------------------------------------------------------------------- the access line


@settings(max_examples=300, deadline=None)
@given(host=st.sampled_from(["127.0.0.1", "::1", "-"]),
       requestline=st.text(max_size=40),
       code=st.sampled_from([200, 404, "-"]),
       size=st.one_of(st.integers(0, 10**9), st.just("-")),
       now=st.floats(1e9, 4e9))
def test_rendered_access_line_is_log_messages_line(host: str, requestline: str, code: Any,
                                                   size: Any, now: float) -> None:
    """The line built on the writer's thread is the one log_message writes (message
    escaped, host and date not), alone and among other records."""
    date = logs.log_date(now)
    expected = (f"{host} - - [{date}] "
                + logs.control_escape(f'"{requestline}" {code} {size}'))
    client = (host, 1) if host != "-" else ""  # a client_address; an empty one logs "-"
    record = (client, date, requestline, code, size)
    assert logs.render_access([record]) == [expected]
    clean = (("10.0.0.1", 2), date, "GET / HTTP/1.1", 200, 5)
    assert logs.render_access([clean, record, clean])[1] == expected
    assert logs.render_access(["a str line", record]) == ["a str line", expected]


def test_log_date_is_http_servers_and_follows_the_clock_back() -> None:
    def stdlib(t: float) -> str:  # http.server's log_date_time_string, for a given time
        months = [None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                  "Oct", "Nov", "Dec"]
        year, month, day, hh, mm, ss, _x, _y, _z = time.localtime(t)
        return "%02d/%3s/%04d %02d:%02d:%02d" % (  # noqa: UP031 - http.server's own words
            day, months[month], year, hh, mm, ss)

    base = 1_700_000_000.0
    for t in (base, base + 0.999, base + 1.0, base + 59.5, base - 3600.25, base + 0.5,
              base - 86400 * 40, base + 0.25):  # forward, then back in time, then forward
        assert logs.log_date(t) == stdlib(t), t


def test_control_escape_fast_path_matches_the_table() -> None:
    for text in ["plain", "caf\u00e9", "a\\b", "\x1b[31m", "\x7f", "\x85", "\u00ad", "\u2028",
                 ""]:
        assert logs.control_escape(text) == text.translate(logs._CONTROL_TABLE)


# --------------------------------------------------------------------------- routes


def _kind(route: Any) -> str:
    if route is None:
        return "off"
    if route is logs.TO_STDERR:
        return "stderr"
    if route is logs.VIA_LOGGING:
        return "logging"
    owner = getattr(route, "__self__", None)
    assert isinstance(owner, LineWriter), route
    return "line-handler"


def test_routes_follow_the_logging_configuration_at_once() -> None:
    # pytest puts its handlers on the root logger for each phase: clear them here, in the
    # test's own phase (a fixture would clear them before pytest adds the call's).
    with isolated_logging():
        _routes_follow_the_logging_configuration()


def _routes_follow_the_logging_configuration() -> None:
    access, error = logs.access_route, logs.error_route
    assert _kind(access()) == _kind(error()) == "stderr"  # nothing configured: http.server
    logs.access_log.setLevel(logging.WARNING)
    assert (_kind(access()), _kind(error())) == ("off", "stderr")
    logs.access_log.setLevel(logging.NOTSET)
    logs.package_log.setLevel(logging.ERROR)
    assert _kind(access()) == _kind(error()) == "off"
    logs.package_log.setLevel(logging.NOTSET)
    logs.access_log.disabled = True
    assert _kind(access()) == "off"
    logs.access_log.disabled = False
    logging.disable(logging.INFO)
    assert _kind(access()) == "off"
    logging.disable(logging.NOTSET)
    assert _kind(access()) == "stderr"

    root_handler = logging.StreamHandler(io.StringIO())
    logging.root.addHandler(root_handler)  # configured, at WARNING: INFO is not logged
    assert _kind(access()) == "off"
    logging.root.setLevel(logging.INFO)
    assert _kind(access()) == _kind(error()) == "logging"
    logging.root.removeHandler(root_handler)
    assert _kind(access()) == "stderr"
    logs.error_log.addHandler(root_handler)
    assert (_kind(access()), _kind(error())) == ("stderr", "logging")
    logs.error_log.removeHandler(root_handler)

    r, w = os.pipe()
    try:
        logs.configure(fd=w)
        assert _kind(access()) == _kind(error()) == "line-handler"
        ours = logs.package_log.handlers[0]
        assert isinstance(ours, logs.LineHandler)
        ours.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # theirs: records
        assert _kind(access()) == "logging"
        ours.setFormatter(None)  # type: ignore[arg-type]
        assert _kind(access()) == "line-handler"
        ours.addFilter(lambda record: True)
        assert _kind(access()) == "logging"
        ours.filters.clear()
        logs.access_log.addFilter(lambda record: True)
        assert _kind(access()) == "logging"
        logs.access_log.filters.clear()
        logs.package_log.propagate = True  # a root handler would get the records too
        logging.root.addHandler(root_handler)
        assert _kind(access()) == "logging"
        logging.root.removeHandler(root_handler)
        assert _kind(access()) == "line-handler"
        logs.configure(quiet=True, fd=w)
        assert _kind(access()) == _kind(error()) == "off"
        assert len(logs.package_log.handlers) == 1  # configured twice: one handler
        logs.configure(fd=w)
        assert _kind(access()) == "line-handler"
    finally:
        for handler in list(logs.package_log.handlers):
            logs.package_log.removeHandler(handler)
            handler.close()
        os.close(r)
        os.close(w)


def test_line_handler_writes_records_and_fast_lines_in_order_with_the_pid() -> None:
    with isolated_logging(), _logging_to_pipe(with_pid=True) as reader:
        emit = logs.access_route()
        assert _kind(emit) == "line-handler" and emit is not None
        emit("a fast line")
        logs.access_log.info("a record %s", "line")
        emit((("127.0.0.1", 1), logs.log_date(1_700_000_000.0), "GET / HTTP/1.1", 200,
              5))
        logs.error_log.error("a failure")  # WARNING and above: written at once
        pid = os.getpid()
        expected = [f"[{pid}] a fast line", f"[{pid}] a record line",
                    f'[{pid}] 127.0.0.1 - - [{logs.log_date(1_700_000_000.0)}] '
                    f'"GET / HTTP/1.1" 200 5', f"[{pid}] a failure"]
        assert wait_for(lambda: reader.text().splitlines() == expected, timeout=2.0), \
            reader.text()
    reader.data()  # the reader thread ends


def test_the_request_path_rechecks_handlers_within_recheck_and_levels_always() -> None:
    with isolated_logging():
        route = logs.access_route
        now = time.time()
        assert _kind(route(now)) == "stderr"
        handler = logging.StreamHandler(io.StringIO())
        logging.root.addHandler(handler)
        logging.root.setLevel(logging.INFO)
        assert _kind(route(now + logs.RECHECK / 2)) == "stderr"  # handlers: not yet re-read
        assert _kind(route()) == "logging"  # without a time: a full check, at once
        assert _kind(route(now + logs.RECHECK / 2)) == "logging"
        logs.access_log.setLevel(logging.WARNING)  # a level: on the next line
        assert _kind(route(now + logs.RECHECK / 2)) == "off"
        logs.access_log.setLevel(logging.NOTSET)
        assert _kind(route(now + logs.RECHECK / 2)) == "logging"
        logs.access_log.disabled = True  # so does disabling the logger
        try:
            assert _kind(route(now + logs.RECHECK / 2)) == "off"
        finally:
            logs.access_log.disabled = False
        logging.disable(logging.INFO)  # and logging.disable()
        try:
            assert _kind(route(now + logs.RECHECK / 2)) == "off"
        finally:
            logging.disable(logging.NOTSET)
        logging.root.removeHandler(handler)
        assert _kind(route(now + logs.RECHECK * 0.75)) == "logging"
        assert _kind(route(now + logs.RECHECK * 3)) == "stderr"  # re-read after RECHECK
        logs.access_log.setLevel(logging.WARNING)
        assert _kind(route(now + logs.RECHECK * 3.5)) == "off"


def test_a_unit_that_cannot_be_formatted_loses_nothing_else() -> None:
    r, w = os.pipe()
    reader = PipeReader(r)
    writer = LineWriter(w, delay=60.0)  # no render function: tuples cannot be joined
    writer.write("before")
    writer.write(("a", "tuple"))
    writer.write("after")
    assert writer.flush()
    writer.close()
    os.close(w)
    assert reader.data().decode().splitlines() == [
        "before", "(unprintable log line ('a', 'tuple'))", "after"]


def test_access_log_file_is_appended_through_a_line_handler(tmp_path: Path) -> None:
    """``--access-log FILE`` (cli._configure_access_log): the fast route, appended, in
    order with records, the descriptor closed with the handler."""
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    with isolated_logging():
        logs.package_log.setLevel(logging.INFO)  # as configure() sets it first
        handler = logs.access_to(str(path))
        try:
            emit = logs.access_route()
            assert _kind(emit) == "line-handler" and emit is not None
            emit((("127.0.0.1", 1), logs.log_date(1_700_000_000.0), "GET / HTTP/1.1", 200,
                  5))
            logs.access_log.info("a record")
            handler.flush()
            assert path.read_text().splitlines() == [
                "earlier", f'127.0.0.1 - - [{logs.log_date(1_700_000_000.0)}] '
                           f'"GET / HTTP/1.1" 200 5', "a record"]
        finally:
            handler.close()
        with pytest.raises(OSError):
            os.fstat(handler.writer.fd)


# --------------------------------------------------------------------------- the request path's cost


_RECORDS = st.tuples(st.sampled_from([("127.0.0.1", 1), ("::1", 2, 0, 0), ""]),
                     st.sampled_from([logs.log_date(t) for t in (1_700_000_000.25,
                                                                 1_700_000_001.5)]),
                     st.sampled_from(["GET / HTTP/1.1", "GET /a HTTP/1.1", "GET /\x1b HTTP/1.1"]),
                     st.sampled_from([200, 1, True, 404]), st.sampled_from([5, 6, "-"]))


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(_RECORDS, max_size=12))
def test_a_rendered_line_reused_from_the_previous_record_is_its_own(
        batch: list[tuple[Any, ...]]) -> None:
    """render_access reuses the previous record's line when the record is the same: a
    batch of few distinct records (host, second, request line, code and its class, size)
    renders each exactly as alone."""
    assert logs.render_access(list(batch)) == [logs.render_access([r])[0] for r in batch]


def test_access_record_hands_the_record_to_the_line_handlers_writer() -> None:
    """One call per request (server._end_request): the record goes to the command line's
    writer; the other routes come back to the caller; off (a level, a disabled logger)
    writes nothing; a level change applies to the next record."""
    now = time.time()
    record = logs.access_record
    with isolated_logging():
        assert record(("h", 1), "GET / HTTP/1.1", 200, 5, now) is logs.TO_STDERR
        with _logging_to_pipe() as reader:
            writer = logs.package_log.handlers[0]
            assert isinstance(writer, logs.LineHandler)
            assert record(("10.0.0.1", 1), "GET /a HTTP/1.1", 200, 5, now) is None
            assert record(("10.0.0.1", 1), "GET /a HTTP/1.1", 200, 5, now) is None  # fast check
            logs.access_log.setLevel(logging.WARNING)  # as --quiet
            assert record(("10.0.0.2", 1), "GET /quiet HTTP/1.1", 200, 5, now) is None
            logs.access_log.setLevel(logging.NOTSET)
            assert record(("10.0.0.4", 1), "GET /b HTTP/1.1", 404, "-", now) is None
            logs.access_log.disabled = True  # logging's cached level answer does not say
            try:
                assert record(("10.0.0.3", 1), "GET /disabled HTTP/1.1", 200, 5, now) is None
            finally:
                logs.access_log.disabled = False
            logs.package_log.handlers[0].setFormatter(logging.Formatter("%(message)s"))
            assert record(("10.0.0.5", 1), "GET /c HTTP/1.1", 200, 5, now + 1.0) is (
                logs.VIA_LOGGING)  # the user's formatter: through a record
            writer.flush()
    date = logs.log_date(now)
    assert reader.data().decode().splitlines() == [
        f'10.0.0.1 - - [{date}] "GET /a HTTP/1.1" 200 5',
        f'10.0.0.1 - - [{date}] "GET /a HTTP/1.1" 200 5',
        f'10.0.0.4 - - [{date}] "GET /b HTTP/1.1" 404 -']


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_one_write_a_batch_except_on_pipes_sockets_and_terminals() -> None:
    """PIPE_BUF pieces keep lines of several processes apart on what they may share (a
    pipe, a socket, a terminal); a device such as /dev/null takes a batch in one write."""
    fd = os.open("/dev/null", os.O_WRONLY)
    r, w = os.pipe()
    try:
        assert LineWriter(fd).atomic > 1 << 20
        assert LineWriter(w).atomic == PIPE_BUF
    finally:
        for x in (fd, r, w):
            os.close(x)


def test_a_record_in_the_next_second_gets_its_own_date_within_recheck() -> None:
    """The request path's window keeps the date text of its second: a record past that
    second but within RECHECK of the last full check is dated by its own time."""
    second = float(int(time.time()))
    first, second_line = second + 1.0 - logs.RECHECK / 4, second + 1.0 + logs.RECHECK / 4
    with isolated_logging(), _logging_to_pipe() as reader:
        for now in (first, second_line):
            assert logs.access_record(("10.0.0.1", 1), "GET / HTTP/1.1", 200, 5, now) is None
        logs.package_log.handlers[0].flush()
    assert reader.data().decode().splitlines() == [
        f'10.0.0.1 - - [{logs.log_date(now)}] "GET / HTTP/1.1" 200 5'
        for now in (first, second_line)]


def test_the_request_path_writes_the_batch_itself_past_the_limit() -> None:
    """Records handed over while the writer's thread is busy (not idle) wait; when a
    window opens with ``limit`` of them waiting, the request's thread writes them."""
    now = float(int(time.time())) + 0.25
    with isolated_logging(), _logging_to_pipe() as reader:
        writer = logs.package_log.handlers[0].writer
        writer.limit = 3
        writer.idle = False  # as while its thread writes a batch: appends do not wake it
        for i in range(4):  # one window: the level check and an append each
            logs.access_record(("10.0.0.1", 1), f"GET /{i} HTTP/1.1", 200, 5, now)
        assert len(writer.pending) == 4
        logs.access_record(("10.0.0.1", 1), "GET /4 HTTP/1.1", 200, 5,
                           now + 2 * logs.RECHECK)  # a new window: 4 >= limit
        assert len(writer.pending) == 1  # the four written, the fifth waits
        writer.idle = True
        writer.flush()
    assert [line.split('"')[1] for line in reader.data().decode().splitlines()] == [
        f"GET /{i} HTTP/1.1" for i in range(5)]
