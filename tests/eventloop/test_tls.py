"""The non-blocking TLS handshake driver, over real loopback sockets (trustme certificates).

Each test drives :class:`minihttp.eventloop.tls.Handshake` from the test's own thread, the
way the event loop does: one ``step()`` whenever the socket is ready. The client is either a
real non-blocking ``SSLSocket`` or an ``SSLObject`` on memory BIOs, whose ClientHello the
test can cut, drip byte by byte, or abandon. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
from collections.abc import Iterator

import pytest

from minihttp.eventloop.tls import PLAIN_HTTP_RESPONSE, Handshake, Step
from tests.helpers.servers import open_fds

trustme = pytest.importorskip("trustme")

WANTS = (Step.WANT_READ, Step.WANT_WRITE)


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for localhost and a client context trusting it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(accepted server socket, client socket) over loopback; the client's is closed after."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    try:
        yield server, client
    finally:
        client.close()


def readable(sock: socket.socket, timeout: float = 5.0) -> None:
    """Wait (bounded) until ``sock`` has something to read, as the poller would."""
    r, _, _ = select.select([sock], [], [], timeout)
    assert r, "nothing arrived within the bound"


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """What the peer sent until it paused for 0.2 s (bounded by ``timeout`` in all)."""
    readable(sock, timeout)
    data = b""
    while True:
        r, _, _ = select.select([sock], [], [], 0.2)
        if not r:
            return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def step(hs: Handshake) -> Step:
    """``hs.step()`` on a thread, bounded: a step that blocks fails the test instead of
    hanging it (the socket is shut to release the thread)."""
    out: list[Step | BaseException] = []

    def run() -> None:
        try:
            out.append(hs.step())
        except BaseException as exc:
            out.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        with contextlib.suppress(OSError):
            socket.socket.shutdown(hs.sock, socket.SHUT_RDWR)
        worker.join(5)
        pytest.fail("Handshake.step() blocked")
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


class BioClient:
    """A TLS client on memory BIOs: the test decides when each of its bytes is sent."""

    def __init__(self, context: ssl.SSLContext, sock: socket.socket) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.sock = sock

    def advance(self) -> bytes:
        """Run the client's handshake as far as it goes; the bytes it wants to send."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def receive(self) -> None:
        """Feed the client what the server sent (waits, bounded, for the server's flight)."""
        self.incoming.write(recv_all(self.sock))


def handshake_with_real_client(hs: Handshake, client: ssl.SSLSocket) -> list[Step]:
    """Alternate the client's and the server's handshake steps; the server's results."""
    steps: list[Step] = []
    client_done = False
    for _ in range(50):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if not steps or steps[-1] in WANTS:
            steps.append(step(hs))
        if client_done and steps[-1] not in WANTS:
            return steps
        select.select([hs.sock, client], [], [], 0.2)
    raise AssertionError(f"no end to the handshake: {steps}")


def test_handshake_completes_through_want_read_steps(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket]) -> None:
    sctx, cctx = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw, ("127.0.0.1", 1))
    try:
        assert not hs.wrapped  # no byte yet: no SSL object either
        client_raw.setblocking(False)
        client = cctx.wrap_socket(client_raw, server_hostname="localhost",
                                  do_handshake_on_connect=False)
        steps = handshake_with_real_client(hs, client)
        assert steps[-1] is Step.DONE
        assert len(steps) >= 2 and set(steps[:-1]) == {Step.WANT_READ}
        assert hs.error is None and hs.wrapped
        # DONE: blocking again, no timeout (the handler's setup() sets its own).
        assert hs.sock.gettimeout() is None
        hs.sock.settimeout(5)  # only so that a broken build fails instead of hanging
        client.settimeout(5)
        client.sendall(b"ping" * 25)
        assert hs.sock.recv(10) == b"pingpingpi"
        # The other 90 bytes are decrypted already: a poller would not see them.
        assert hs.pending() == 90
        hs.sock.sendall(b"pong")
        assert client.recv(4) == b"pong"
        assert step(hs) is Step.DONE  # again: same answer, no I/O
    finally:
        hs.close()


def test_dripped_client_hello_never_blocks_and_completes(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket]) -> None:
    # A slow-handshaking client: its ClientHello one byte at a time. Each byte is one step
    # that returns at once (WANT_READ); the handshake then completes as usual.
    sctx, cctx = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw)
    bio = BioClient(cctx, client_raw)
    try:
        hello = bio.advance()
        assert hello[:1] == b"\x16"
        assert step(hs) is Step.WANT_READ
        for i in range(len(hello) - 1):
            client_raw.sendall(hello[i:i + 1])
            readable(hs.sock)
            assert step(hs) is Step.WANT_READ
        client_raw.sendall(hello[-1:])
        readable(hs.sock)
        assert step(hs) is Step.WANT_READ  # server flight sent; waits for client Finished
        bio.receive()
        finished = bio.advance()
        assert finished
        client_raw.sendall(finished)
        readable(hs.sock)
        assert step(hs) is Step.DONE
    finally:
        hs.close()


def test_silent_client_never_blocks_the_caller(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket]) -> None:
    # A client that connects and sends nothing: every step returns WANT_READ at once (step()
    # runs each on a thread, bounded: a blocking step fails the test instead of hanging it).
    sctx, _ = contexts
    raw, _client = pair
    hs = Handshake(sctx, raw)
    try:
        assert [step(hs) for _ in range(3)] == [Step.WANT_READ] * 3
        assert hs.sock.gettimeout() == 0.0
        assert not hs.wrapped  # an idle connection costs no SSL object
    finally:
        hs.close()


def test_full_send_buffer_gives_want_write_then_completes() -> None:
    # A certificate of ~60 KB and tiny socket buffers: the server's flight does not fit, so
    # a step says WANT_WRITE (the loop then waits for EPOLLOUT) instead of blocking, and the
    # handshake goes on as the client reads.
    ca = trustme.CA()
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", *(f"h{i}.example" for i in range(3000))).configure_cert(sctx)
    cctx = ssl.create_default_context()
    ca.configure_trust(cctx)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client_raw = socket.socket()
        client_raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        client_raw.settimeout(5)
        client_raw.connect(listener.getsockname())
        raw, _ = listener.accept()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
    hs = Handshake(sctx, raw)
    bio = BioClient(cctx, client_raw)
    try:
        client_raw.sendall(bio.advance())
        readable(hs.sock)
        results = [step(hs)]
        assert results == [Step.WANT_WRITE]
        finished = b""
        for _ in range(1000):  # the client reads; the server writes when it can
            r, w, _ = select.select([client_raw], [hs.sock], [], 0.5)
            if r:
                bio.incoming.write(client_raw.recv(65536))
                finished = bio.advance()
                if finished:
                    break
            if w and results[-1] is Step.WANT_WRITE:
                results.append(step(hs))
        assert finished, "the client never got the whole server flight"
        assert results[-1] is Step.WANT_READ  # all written: waits for the client Finished
        assert set(results[:-1]) == {Step.WANT_WRITE}
        client_raw.sendall(finished)
        readable(hs.sock)
        assert step(hs) is Step.DONE
    finally:
        hs.close()
        client_raw.close()


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\x03 not a TLS record\r\n\r\n",
    b"\x16\x03\x01\x00\x05hello",  # a handshake record with nonsense inside
    b"\x15\x03\x03\x00\x02\x02\x28",  # an alert record (handshake_failure) instead of a hello
    bytes(range(0x80, 0x100)),
], ids=["binary", "bad-handshake-record", "alert", "high-bytes"])
def test_garbage_fails_cleanly(contexts: tuple[ssl.SSLContext, ssl.SSLContext],
                               pair: tuple[socket.socket, socket.socket],
                               garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="minihttp.error")
    sctx, _ = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw, ("127.0.0.1", 9))
    try:
        client_raw.sendall(garbage)
        readable(hs.sock)
        result = step(hs)
        if result is Step.WANT_READ:  # OpenSSL waits for the rest of a record: end it
            client_raw.shutdown(socket.SHUT_WR)
            readable(hs.sock)
            result = step(hs)
        assert result is Step.FAILED
        assert hs.error
        assert step(hs) is Step.FAILED
        records = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
        assert len(records) == 1
        assert records[0].levelno == logging.DEBUG and records[0].exc_info is None
        assert "127.0.0.1" in records[0].getMessage()
    finally:
        hs.close()


@pytest.mark.parametrize("cut", [0, 5, 23], ids=["whole", "split-in-line", "split-in-head"])
def test_plain_http_request_is_answered_400(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket], cut: int) -> None:
    # curl http://host:443/ : a short plain-HTTP 400 saying to use https, then FAILED.
    sctx, _ = contexts
    raw, client_raw = pair
    request = b"GET /x HTTP/1.1\r\nHost: example\r\n\r\n"
    hs = Handshake(sctx, raw)
    try:
        if cut:
            client_raw.sendall(request[:cut])
            readable(hs.sock)
            assert step(hs) is Step.WANT_READ  # waits for the end of the head
        client_raw.sendall(request[cut:])
        readable(hs.sock)
        assert step(hs) is Step.FAILED
        assert hs.error is not None and "plain HTTP" in hs.error and "GET /x" in hs.error
        assert not hs.wrapped
        hs.close()  # the owner closes: the client reads the answer, then EOF (no reset)
        answer = recv_all(client_raw)
        assert answer == PLAIN_HTTP_RESPONSE
        assert answer.startswith(b"HTTP/1.1 400 ") and b"https://" in answer
        head, body = answer.split(b"\r\n\r\n", 1)
        assert b"Content-Length: %d\r\n" % len(body) in head + b"\r\n"
    finally:
        hs.close()


def test_eof_before_any_byte_fails_cleanly(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket]) -> None:
    sctx, _ = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw)
    try:
        assert step(hs) is Step.WANT_READ
        client_raw.close()
        readable(hs.sock)
        assert step(hs) is Step.FAILED
        assert hs.error == "closed before the handshake"
    finally:
        hs.close()


def test_reset_before_any_byte_fails_cleanly(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        pair: tuple[socket.socket, socket.socket]) -> None:
    sctx, _ = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw)
    try:
        client_raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client_raw.close()  # RST
        readable(hs.sock)
        assert step(hs) is Step.FAILED
        assert hs.error
    finally:
        hs.close()


@pytest.mark.parametrize("when", ["half-hello", "after-server-flight"])
def test_eof_mid_handshake_fails_cleanly(contexts: tuple[ssl.SSLContext, ssl.SSLContext],
                                         pair: tuple[socket.socket, socket.socket],
                                         when: str) -> None:
    sctx, cctx = contexts
    raw, client_raw = pair
    hs = Handshake(sctx, raw)
    bio = BioClient(cctx, client_raw)
    try:
        hello = bio.advance()
        if when == "half-hello":
            client_raw.sendall(hello[:len(hello) // 2])
        else:
            client_raw.sendall(hello)
        readable(hs.sock)
        assert step(hs) is Step.WANT_READ
        if when == "after-server-flight":
            assert recv_all(client_raw)[:1] == b"\x16"  # the ServerHello came
        client_raw.shutdown(socket.SHUT_WR)  # EOF, the client still listens
        readable(hs.sock)
        assert step(hs) is Step.FAILED
        assert hs.error
        assert hs.wrapped
    finally:
        hs.close()


def test_no_descriptor_leaked(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    # Every way a handshake ends, twenty times over: closing ``hs.sock`` (the socket that
    # holds the descriptor, raw or wrapped) releases everything.
    sctx, cctx = contexts
    before = open_fds()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        for _ in range(20):
            for scenario in ("done", "plain", "garbage", "eof-mid", "silent"):
                client_raw = socket.create_connection(listener.getsockname(), timeout=5)
                raw, _ = listener.accept()
                hs = Handshake(sctx, raw)
                try:
                    if scenario == "done":
                        client_raw.setblocking(False)
                        client = cctx.wrap_socket(client_raw, server_hostname="localhost",
                                                  do_handshake_on_connect=False)
                        assert handshake_with_real_client(hs, client)[-1] is Step.DONE
                        client_raw = client
                    elif scenario == "plain":
                        client_raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        readable(hs.sock)
                        assert step(hs) is Step.FAILED
                    elif scenario == "garbage":
                        client_raw.sendall(b"\x16\x03\x01\x00\x05hello")
                        readable(hs.sock)
                        assert step(hs) is Step.FAILED
                    elif scenario == "eof-mid":
                        client_raw.sendall(BioClient(cctx, client_raw).advance()[:40])
                        readable(hs.sock)
                        assert step(hs) is Step.WANT_READ
                        client_raw.shutdown(socket.SHUT_WR)
                        readable(hs.sock)
                        assert step(hs) is Step.FAILED
                    else:
                        assert step(hs) is Step.WANT_READ
                finally:
                    hs.close()
                    client_raw.close()
    assert open_fds() == before


# -- write interest of the pollers (what the loop waits for after WANT_WRITE) -------------------


@pytest.mark.parametrize("portable", [False, True], ids=["epoll", "selectors"])
def test_poller_write_interest_is_one_shot_then_back_to_reading(portable: bool) -> None:
    from minihttp.eventloop.pollers import make_poller

    a, b = socket.socketpair()
    poller = make_poller(lambda: None, portable)
    try:
        fd = a.fileno()
        poller.add(fd)
        assert poller.poll(0.05) == []  # armed for reading, nothing to read
        poller.rearm_write(fd)
        assert [f for f, _ in poller.poll(1.0)] == [fd]  # writable at once
        assert poller.poll(0.05) == []  # one-shot: no second event
        poller.rearm(fd)  # back to reading
        assert poller.poll(0.05) == []  # still writable, but that is no longer watched
        b.sendall(b"x")
        assert [f for f, _ in poller.poll(1.0)] == [fd]
    finally:
        poller.close()
        a.close()
        b.close()
