"""Unit tests of minihttp.auth: Basic parsing, stored hashes, verification, the cache."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from minihttp import auth
from minihttp.auth import (
    PBKDF2,
    Credentials,
    Plain,
    Scrypt,
    challenge,
    hash_password,
    parse_basic,
    parse_hashed,
)


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


def cheap_scrypt(password: str) -> Scrypt:
    """A valid scrypt entry with tiny parameters (tests stay fast)."""
    entry = Scrypt(16, 1, 1, b"salt" * 4, b"\0" * 32)
    return dataclasses.replace(entry, key=entry.derive(password.encode()))


class Counting:
    """A verifier wrapper counting KDF runs."""

    def __init__(self, inner: Any, parent: Counting | None = None) -> None:
        self.inner = inner
        self.parent = parent
        self.costly = True
        self.runs = self.decoy_runs = 0

    def verify(self, password: bytes) -> bool:
        self.runs += 1
        if self.parent is not None:
            self.parent.decoy_runs += 1
        return bool(self.inner.verify(password))

    def decoy(self) -> Any:
        return Counting(self.inner.decoy(), parent=self)


# -- the Authorization field ------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (basic(b"alice:s3cr:t"), ("alice", "s3cr:t")),      # the password may hold colons
    ("basic   " + base64.b64encode(b"a:b").decode(), ("a", "b")),  # scheme case, spaces
    (basic("jos\u00e9:p\u00e4ss".encode()), ("jos\u00e9", "p\u00e4ss")),
    # NFC: a decomposed e + combining acute compares equal to the precomposed one
    (basic("jose\u0301:x".encode()), ("jos\u00e9", "x")),
    (basic(b"alice:"), ("alice", "")),
])
def test_parse_basic_accepts(value: str, expected: tuple[str, str]) -> None:
    assert parse_basic(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "Basic", "Basic ", "Bearer abc", "Digest " + base64.b64encode(b"a:b").decode(),
    "Basic !!!notbase64", "Basic YWxpY2U6cw",            # bad alphabet, bad padding
    basic(b"no-colon"),                                    # missing colon
    basic(b":password"),                                   # empty user-id
    basic(b"\xff\xfe:\x80"),                               # not UTF-8
    basic(b"al\x1bice:pw"), basic(b"alice:p\nw"),          # control characters
    basic(b"alice:" + b"x" * auth.MAX_TOKEN),              # huge token, else valid
    "Basic YWxp\u00e9Y2U6cw==",                            # non-ASCII in the token
])
def test_parse_basic_rejects(value: str | None) -> None:
    assert parse_basic(value) is None


def test_challenge_quotes_the_realm_and_names_the_charset() -> None:
    assert challenge("files") == 'Basic realm="files", charset="UTF-8"'
    assert challenge('a"b\\c') == 'Basic realm="a\\"b\\\\c", charset="UTF-8"'


# -- stored hashes ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["scrypt", "pbkdf2-sha256"])
def test_hash_format_round_trip(scheme: str) -> None:
    stored = hash_password("correct horse", scheme)
    assert stored.startswith(scheme + "$")
    entry = parse_hashed(stored)
    assert str(entry) == stored
    assert entry.verify(b"correct horse")
    assert not entry.verify(b"correct horsE")
    assert hash_password("correct horse", scheme) != stored  # a fresh salt each time


def test_hash_password_normalizes_like_the_check() -> None:
    creds = Credentials([("u", parse_hashed(hash_password("jose\u0301", "pbkdf2-sha256")))])
    assert creds.verify("u", "jos\u00e9")


@pytest.mark.parametrize("text, message", [
    ("md5$abc", "expected scrypt"),
    ("scrypt$16384$8$1$c2FsdA==", "expected scrypt"),           # a field missing
    ("scrypt$1000$8$1$c2FsdA==$a2V5", "power of 2"),
    ("scrypt$2097152$8$1$c2FsdA==$a2V5", "scrypt N"),           # above the bound
    ("scrypt$16384$x$1$c2FsdA==$a2V5", "scrypt r"),
    ("scrypt$16384$8$1$not*base64$a2V5", "base64"),
    ("pbkdf2-sha256$10$c2FsdHNhbHQ=$a2V5a2V5a2V5", "iterations"),  # too few
    ("pbkdf2-sha256$600000$c2FsdHNhbHQ=$", "at least 8 bytes"),  # an empty key
    ("scrypt$16384$8$1$$a2V5a2V5a2V5", "at least 8 bytes"),     # an empty salt
    ("pbkdf2-sha256$600000$c2FsdHNhbHQ=$a2V5\u00e9", "base64"),
])
def test_parse_hashed_rejects_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hashed(text)


# -- verification -----------------------------------------------------------------------------


def test_plain_credentials() -> None:
    creds = Credentials.plain([("alice", "pw"), ("bob", "x:y")])
    assert creds.users == {"alice", "bob"}
    assert creds.verify("alice", "pw")
    assert creds.verify("bob", "x:y")
    assert not creds.verify("alice", "pw ")
    assert not creds.verify("alice", "")
    assert not creds.verify("carol", "pw")
    assert not creds.verify("bob", "pw")


def test_check_takes_the_field_values() -> None:
    creds = Credentials.plain([("alice", "pw")])
    assert creds.check([basic(b"alice:pw")]) == "alice"
    assert creds.check([basic(b"alice:no")]) is None
    assert creds.check([basic(b"eve:pw")]) is None
    assert creds.check(None) is None
    assert creds.check([]) is None
    # two Authorization fields are ambiguous, even if one of them is right
    assert creds.check([basic(b"alice:pw"), basic(b"alice:pw")]) is None


def test_unknown_user_costs_a_kdf_run_like_a_known_one() -> None:
    counting = Counting(cheap_scrypt("pw"))
    creds = Credentials([("alice", counting)])
    assert not creds.verify("mallory", "pw")
    assert counting.decoy_runs == 1 and counting.runs == 0  # the decoy's run, not alice's
    assert not creds.verify("alice", "wrong")
    assert counting.runs == 1 and counting.decoy_runs == 1


def test_decoy_has_the_same_kind_and_cost() -> None:
    entry = parse_hashed(hash_password("pw", "pbkdf2-sha256"))
    assert isinstance(entry, PBKDF2)
    decoy = entry.decoy()
    assert isinstance(decoy, PBKDF2)
    assert decoy.iterations == entry.iterations and decoy.salt != entry.salt
    assert not decoy.verify(b"pw")
    # with plain and hashed entries mixed, unknown users cost what a hashed one costs
    plain = Counting(Plain.of("x"))
    plain.costly = False
    hashed = Counting(cheap_scrypt("y"))
    mixed = Credentials([("a", plain), ("b", hashed)])
    assert not mixed.verify("nobody", "x")
    assert hashed.decoy_runs == 1 and plain.decoy_runs == 0


def test_successes_are_cached_failures_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(cheap_scrypt("pw"))
    creds = Credentials([("alice", counting)])
    for _ in range(3):
        assert creds.verify("alice", "pw")
    assert counting.runs == 1
    for _ in range(3):
        assert not creds.verify("alice", "nope")
    assert counting.runs == 4
    # expired: the KDF runs again
    now = auth.time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + auth.CACHE_SECONDS + 1)
    assert creds.verify("alice", "pw")
    assert counting.runs == 5


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "CACHE_SIZE", 4)
    entries = [Counting(cheap_scrypt(f"p{i}")) for i in range(10)]
    creds = Credentials((f"u{i}", e) for i, e in enumerate(entries))
    for i in range(10):
        assert creds.verify(f"u{i}", f"p{i}")
    assert creds.verify("u9", "p9") and entries[9].runs == 1    # still remembered
    assert creds.verify("u0", "p0") and entries[0].runs == 2    # pushed out: KDF again


def test_no_credentials_is_an_error() -> None:
    with pytest.raises(ValueError):
        Credentials([])
