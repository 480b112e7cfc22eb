"""The command line of authentication: ``--auth``, ``--auth-file``, ``MINIHTTP_AUTH``,
``--auth-upload-only`` and ``python -m minihttp hash-password``.

The file server and the proxy take the same credential options (:func:`add_arguments`,
:func:`credentials_from_args`); :func:`with_auth` puts :class:`~minihttp.auth.BasicAuthMixin`
on the file server's handler. Where credentials come from:

* ``--auth USER:PASS`` (repeatable): in clear, visible in ``ps`` to other local users;
* ``MINIHTTP_AUTH``: the same ``USER:PASS`` entries, separated by whitespace (spaces, tabs
  or newlines; a password holding whitespace belongs in ``--auth-file``), not visible in
  ``ps``;
* ``--auth-file FILE`` (repeatable): ``USER:HASH`` lines of ``hash-password`` (format in
  :mod:`minihttp.auth`); blank lines and lines starting with ``#`` are skipped.

Rules of this module:

* A bad entry is one line on stderr that names its source (option, variable, or file and
  line) and exit status 2, never the password itself.
* Auth over plain HTTP on an address other hosts can reach sends passwords in clear
  (base64 is no protection): a warning on stderr at start, not a refusal (a TLS-terminating
  reverse proxy in front is a legitimate setup).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO, TypeVar, cast

from .auth import BasicAuthMixin, Credentials, Plain, Verifier, hash_password, parse_hashed

__all__ = ["ENVIRONMENT", "add_arguments", "credentials_from_args", "main_hash_password",
           "parse_user_pass", "read_auth_file", "warn_without_tls", "with_auth"]

H = TypeVar("H", bound=type)

#: The environment variable holding ``USER:PASS`` entries.
ENVIRONMENT = "MINIHTTP_AUTH"


def parse_user_pass(text: str) -> tuple[str, str]:
    """``USER:PASS`` (the password may hold colons); ValueError without echoing it."""
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise ValueError("must be USER:PASS (a user name, a colon, a password)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("must not contain control characters")
    return user, password


def _user_pass_arg(text: str) -> tuple[str, str]:
    try:
        return parse_user_pass(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser, *, upload_only: bool = True,
                  header: str = "Authorization") -> None:
    """The credential options (and, for the file server, ``--auth-upload-only``)."""
    parser.add_argument("--auth", action="append", type=_user_pass_arg, default=[],
                        metavar="USER:PASS",
                        help=f"require HTTP Basic credentials ({header}); repeatable. Also "
                        f"read from ${ENVIRONMENT} (whitespace-separated USER:PASS entries, "
                        "not visible in ps)")
    parser.add_argument("--auth-file", action="append", default=[], metavar="FILE",
                        help="require credentials from FILE: USER:HASH lines written by "
                        "'python -m minihttp hash-password USER' (# comments allowed)")
    if upload_only:
        parser.add_argument("--auth-upload-only", action="store_true",
                            help="ask for credentials only for methods that change things "
                            "(PUT, POST, DELETE, ...); GET and HEAD stay open")


def read_auth_file(path: str) -> list[tuple[str, Verifier]]:
    """The entries of an auth file; ValueError naming the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read --auth-file {path}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    entries: list[tuple[str, Verifier]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, stored = line.partition(":")
        try:
            if not colon or not user:
                raise ValueError("expected USER:HASH")
            entries.append((user, parse_hashed(stored)))
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
    if not entries:
        raise ValueError(f"--auth-file {path} holds no entries")
    return entries


def credentials_from_args(args: argparse.Namespace,
                          environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials the options and ``MINIHTTP_AUTH`` give (None: no authentication).

    Raises ValueError (bad file or variable entry)."""
    environ = os.environ if environ is None else environ
    entries: list[tuple[str, Verifier]] = [
        (user, Plain.of(password)) for user, password in getattr(args, "auth", None) or []]
    for number, item in enumerate(environ.get(ENVIRONMENT, "").split(), 1):
        try:
            user, password = parse_user_pass(item)
        except ValueError as exc:
            raise ValueError(f"{ENVIRONMENT} entry {number}: {exc}") from None
        entries.append((user, Plain.of(password)))
    for path in getattr(args, "auth_file", None) or []:
        entries.extend(read_auth_file(path))
    return Credentials(entries) if entries else None


def _exposed(bind: str | None) -> bool:
    """Whether an address other hosts may reach is bound (None: all interfaces)."""
    if bind is None:
        return True
    if bind.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name: assume it is reachable


def warn_without_tls(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Warn on stderr when credentials would cross a network in clear; whether it did."""
    if getattr(args, "tls_cert", None) or getattr(args, "unix", None):
        return False
    bind = getattr(args, "bind", None)
    if not _exposed(bind):
        return False
    print(f"warning: authentication without TLS on {bind or 'all interfaces'}: passwords "
          "cross the network readable by anyone on the path (Basic credentials are only "
          "base64); use --tls-cert, a TLS reverse proxy, or bind 127.0.0.1",
          file=stream or sys.stderr, flush=True)
    return True


def with_auth(handler: H, args: argparse.Namespace) -> H:
    """``handler`` asking for the credentials ``args`` give (itself when none); warns when
    they would travel in clear. Raises ValueError (bad credentials source)."""
    credentials = credentials_from_args(args)
    if credentials is None:
        if getattr(args, "auth_upload_only", False):
            raise ValueError(f"--auth-upload-only needs --auth, --auth-file or {ENVIRONMENT}")
        return handler
    warn_without_tls(args)
    return cast(H, type(handler.__name__, (BasicAuthMixin, handler), {
        "auth_credentials": credentials,
        "auth_upload_only": bool(getattr(args, "auth_upload_only", False)),
    }))


# -- python -m minihttp hash-password --------------------------------------------------------


def _read_password(stdin: TextIO) -> str:
    """Twice without echo from a terminal; else the first line of standard input."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise ValueError("the passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


def main_hash_password(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    """``python -m minihttp hash-password USER``: print the ``--auth-file`` line for USER."""
    parser = argparse.ArgumentParser(
        prog="python -m minihttp hash-password",
        description="Print a line for --auth-file: USER and a salted hash of a password read "
        "without echo (twice) from the terminal, or from the first line of standard input.")
    parser.add_argument("user", help="the user name (no colon)")
    parser.add_argument("--scheme", choices=("scrypt", "pbkdf2-sha256"), default="scrypt",
                        help="key derivation function (default: scrypt, N=16384 r=8 p=1)")
    args = parser.parse_args(argv)
    if ":" in args.user or not args.user or not args.user.isprintable():
        print("error: the user name must be printable and hold no colon", file=sys.stderr)
        return 2
    try:
        password = _read_password(stdin or sys.stdin)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("", file=sys.stderr)
        return 1
    if not password:
        print("error: empty password", file=sys.stderr)
        return 2
    print(f"{args.user}:{hash_password(password, args.scheme)}")
    return 0
