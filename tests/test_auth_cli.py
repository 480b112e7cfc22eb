"""Unit tests of minihttp.auth_cli: where credentials come from, the warning, hash-password."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from minihttp import auth_cli
from minihttp.auth import BasicAuthMixin, Credentials, hash_password, parse_hashed
from minihttp.auth_cli import credentials_from_args, main_hash_password, warn_without_tls


def parse(*argv: str, upload_only: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    auth_cli.add_arguments(parser, upload_only=upload_only)
    return parser.parse_args(argv)


def test_no_source_no_credentials() -> None:
    assert credentials_from_args(parse(), environ={}) is None


def test_sources_add_up(tmp_path: Path) -> None:
    file = tmp_path / "users"
    file.write_text("# team\n\ncarol:" + hash_password("c pw", "pbkdf2-sha256") + "\n")
    args = parse("--auth", "alice:a:1", "--auth-file", str(file))
    creds = credentials_from_args(args, environ={"MINIHTTP_AUTH": " bob:b1\n\tdan:d1 "})
    assert creds is not None
    assert creds.users == {"alice", "bob", "carol", "dan"}
    assert creds.verify("alice", "a:1") and creds.verify("bob", "b1")
    assert creds.verify("carol", "c pw") and creds.verify("dan", "d1")
    assert not creds.verify("carol", "c")


@pytest.mark.parametrize("argv", [["--auth", "alice"], ["--auth", "alice:"],
                                  ["--auth", ":pw"], ["--auth", "al\x1bice:pw"]])
def test_bad_auth_option_is_a_usage_error_without_echo(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --auth: must" in err
    assert "pw" not in err.replace("USER:PASS", "")


def test_bad_environment_entry_names_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match="MINIHTTP_AUTH entry 2") as exc:
        credentials_from_args(parse(), environ={"MINIHTTP_AUTH": "a:b s3cretnocolon"})
    assert "s3cret" not in str(exc.value)


@pytest.mark.parametrize("content, message", [
    ("alice:plaintext\n", "line 1: expected scrypt"),
    ("# only a comment\n", "holds no entries"),
    ("ok:" + "pbkdf2-sha256$1000$c2FsdHNhbHQ=$a2V5a2V5a2V5\nno-colon-here\n",
     "line 2: expected USER:HASH"),
])
def test_bad_auth_file_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "users"
    file.write_text(content)
    with pytest.raises(ValueError, match=message):
        credentials_from_args(parse("--auth-file", str(file)), environ={})


def test_missing_auth_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read --auth-file"):
        credentials_from_args(parse("--auth-file", str(tmp_path / "nope")), environ={})


def test_with_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIHTTP_AUTH", raising=False)

    class Handler:
        pass

    assert auth_cli.with_auth(Handler, parse()) is Handler
    with pytest.raises(ValueError, match="--auth-upload-only needs"):
        auth_cli.with_auth(Handler, parse("--auth-upload-only"))
    args = parse("--auth", "a:b", "--auth-upload-only")
    args.bind = "127.0.0.1"
    wrapped: Any = auth_cli.with_auth(Handler, args)
    assert issubclass(wrapped, BasicAuthMixin) and issubclass(wrapped, Handler)
    assert wrapped.auth_upload_only and wrapped.auth_credentials.verify("a", "b")


@pytest.mark.parametrize("bind, tls, unix, warns", [
    (None, None, None, True), ("0.0.0.0", None, None, True), ("::", None, None, True),
    ("192.0.2.7", None, None, True), ("example.org", None, None, True),
    ("127.0.0.1", None, None, False), ("127.0.0.2", None, None, False),
    ("::1", None, None, False), ("localhost", None, None, False),
    ("0.0.0.0", "cert.pem", None, False), (None, None, "/run/x.sock", False),
])
def test_warning_without_tls(bind: str | None, tls: str | None, unix: str | None,
                             warns: bool) -> None:
    out = io.StringIO()
    args = argparse.Namespace(bind=bind, tls_cert=tls, unix=unix)
    assert warn_without_tls(args, out) is warns
    assert ("warning: authentication without TLS" in out.getvalue()) is warns


# -- hash-password ----------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_hash_password_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_hash_password(["alice"], stdin=io.StringIO("s3 cr:t\nignored\n")) == 0
    line = capsys.readouterr().out.strip()
    user, _, stored = line.partition(":")
    assert user == "alice" and stored.startswith("scrypt$16384$8$1$")
    assert Credentials([(user, parse_hashed(stored))]).verify("alice", "s3 cr:t")


def test_hash_password_on_a_terminal_asks_twice(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["pw1", "pw1", "pw1", "pw2"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(auth_cli.getpass, "getpass", fake_getpass)
    assert main_hash_password(["bob", "--scheme", "pbkdf2-sha256"], stdin=Tty()) == 0
    assert capsys.readouterr().out.startswith("bob:pbkdf2-sha256$600000$")
    assert len(prompts) == 2
    assert main_hash_password(["bob"], stdin=Tty()) == 1  # the two differ
    assert "differ" in capsys.readouterr().err


@pytest.mark.parametrize("argv, stdin", [(["a:b"], "pw\n"), (["alice"], "\n"),
                                         (["alice"], "")])
def test_hash_password_refuses(argv: list[str], stdin: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main_hash_password(argv, stdin=io.StringIO(stdin)) == 2
    assert capsys.readouterr().out == ""
