"""How responses go out: one send for a small response, ``sendfile`` for wsgi.file_wrapper.

``Spied`` (conftest) swaps the response writer's socket for a spy that records every send,
so the tests see the system calls the gateway makes, over a real loopback connection.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wsgi.conftest import Spied, StrictClient, header

TEXT = [("Content-Type", "text/plain")]


@pytest.fixture
def calls() -> Iterator[list[tuple[str, int]]]:
    Spied.calls.clear()
    yield Spied.calls
    Spied.calls.clear()


def sends_of_one(port: int, calls: list[tuple[str, int]], method: str = "GET"
                 ) -> tuple[Any, bytes, list[tuple[str, int]]]:
    """One request on a fresh keep-alive connection; the response and the sends it took."""
    with StrictClient(port) as c:
        calls.clear()
        resp, body = c.request(method, "/")
        return resp, body, list(calls)


# Not validated: wsgiref's validator wraps every result in an iterator of its own, and these
# tests are about what the gateway does with the application's own result type.


def test_list_result_is_one_send_with_a_computed_length(serve_app: Any, calls: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"Hello, ", b"World"]

    with serve_app(app, validate=False, handler=Spied) as port:
        resp, body, sent = sends_of_one(port, calls)
    assert body == b"Hello, World" and header(resp, "content-length") == "12"
    assert [c for c, _ in sent] == ["sendall"]


def test_generator_with_content_length_is_one_send(serve_app: Any, calls: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        yield b"Hello"

    with serve_app(app, handler=Spied) as port:
        _resp, body, sent = sends_of_one(port, calls)
    assert body == b"Hello"
    assert [c for c, _ in sent] == ["sendall"]


def test_streamed_generator_sends_each_block(serve_app: Any, calls: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"a"
        yield b"b"

    with serve_app(app, handler=Spied) as port:
        resp, body, sent = sends_of_one(port, calls)
    assert body == b"ab" and header(resp, "transfer-encoding") == "chunked"
    assert len(sent) == 3  # head + "a", "b", the last chunk


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 400)  # 102,400 bytes
    return path


def file_app(path: Path, *, seek: int = 0, length: int | None = None,
             opened: list[Any] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = open(path, "rb")  # noqa: SIM115 - closed by the gateway through close()
        f.seek(seek)
        if opened is not None:
            opened.append(f)
        fields = [("Content-Type", "application/octet-stream")]
        if length is not None:
            fields.append(("Content-Length", str(length)))
        start_response("200 OK", fields)
        return environ["wsgi.file_wrapper"](f, 8192)

    return app


def test_file_wrapper_uses_sendfile_and_closes(serve_app: Any, calls: Any,
                                               data_file: Path) -> None:
    opened: list[Any] = []
    with serve_app(file_app(data_file, opened=opened), validate=False,
                   handler=Spied) as port:
        resp, body, sent = sends_of_one(port, calls)
    assert body == data_file.read_bytes()
    assert header(resp, "content-length") == str(len(body))
    assert ("sendfile", len(body)) in sent
    assert opened[0].closed


def test_file_wrapper_from_offset_and_declared_length(serve_app: Any, calls: Any,
                                                      data_file: Path) -> None:
    with serve_app(file_app(data_file, seek=1000, length=5000), validate=False,
                   handler=Spied) as port:
        _resp, body, sent = sends_of_one(port, calls)
    assert body == data_file.read_bytes()[1000:6000]
    assert ("sendfile", 5000) in sent


def test_file_wrapper_head_sends_no_body(serve_app: Any, calls: Any,
                                         data_file: Path) -> None:
    with serve_app(file_app(data_file), validate=False, handler=Spied) as port, \
            StrictClient(port) as c:
        resp, body = c.request("HEAD", "/")
        assert body == b"" and header(resp, "content-length") == "102400"
        resp, body = c.request("GET", "/")  # the connection is still in step
        assert len(body) == 102400
    assert "sendfile" in [c for c, _ in calls]


def test_file_wrapper_validated(serve_app: Any, data_file: Path) -> None:
    # Through wsgiref's validator the result is no longer a FileWrapper: iterated instead.
    with serve_app(file_app(data_file)) as port, StrictClient(port) as c:
        _resp, body = c.request("GET", "/")
    assert body == data_file.read_bytes()


def test_file_wrapper_over_a_non_file_is_iterated(serve_app: Any, calls: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 20000), 4096)

    with serve_app(app, validate=False, handler=Spied) as port:
        _resp, body, sent = sends_of_one(port, calls)
    assert body == b"x" * 20000
    assert "sendfile" not in [c for c, _ in sent]
