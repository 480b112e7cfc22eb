"""HTTP Basic authentication (RFC 7617) for the file server and the proxy.

Credentials come as plain ``USER:PASS`` pairs (``--auth``, ``MINIHTTP_AUTH``) or as salted
hashes (``--auth-file``, lines written by ``python -m minihttp hash-password``); the command
line side lives in :mod:`minihttp.auth_cli`. This module holds what a request needs: the
credential store (:class:`Credentials`), the ``Authorization`` field's parsing
(:func:`parse_basic`) and the handler mix-in (:class:`BasicAuthMixin`).

The hashed format, one entry a line (``#`` starts a comment line)::

    USER:scrypt$N$r$p$SALT$KEY           hashlib.scrypt (default: N=16384, r=8, p=1)
    USER:pbkdf2-sha256$ITERATIONS$SALT$KEY   hashlib.pbkdf2_hmac('sha256', ...)

SALT and KEY in standard base64. Both KDFs are the standard library's (OpenSSL's).

Rules of this module:

* Every comparison of a secret is constant time (``hmac.compare_digest`` on equal-length
  digests, so not even the password's length leaks).
* An unknown user costs the same work as a known one with a wrong password: the password
  is checked against a dummy entry of the same kind as the store's costliest entry (with
  plain and hashed entries mixed, a plain user still answers faster than a hashed one).
* A hashed entry's KDF runs once per (user, password) within :data:`CACHE_SECONDS`: a
  successful check is remembered in memory (under a keyed BLAKE2b hash of the pair with a
  per-process random key, never the password itself), at most :data:`CACHE_SIZE` entries.
  Failures are never cached, so guessing always pays the KDF.
* Anything wrong in an ``Authorization`` field (another scheme, bad base64, no colon, not
  UTF-8, control characters, longer than :data:`MAX_TOKEN`, the field twice) is simply "not
  authenticated": 401 with a fresh challenge, never a 500 and never a traceback.
* User names and passwords are compared in Unicode normalization form C (RFC 7617 section
  2.1, ``charset="UTF-8"``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = [
    "CACHE_SECONDS",
    "CACHE_SIZE",
    "MAX_TOKEN",
    "PBKDF2",
    "SAFE_METHODS",
    "BasicAuthMixin",
    "Credentials",
    "Plain",
    "Scrypt",
    "Verifier",
    "challenge",
    "hash_password",
    "parse_basic",
    "parse_hashed",
]

#: A successful check of a hashed entry is remembered this long (seconds).
CACHE_SECONDS = 60.0
#: At most this many remembered checks (the oldest go first).
CACHE_SIZE = 256
#: Longest base64 credentials token accepted (characters); longer is "not authenticated".
MAX_TOKEN = 4096

#: scrypt defaults: Django's ScryptPasswordHasher (2**14, 8, 1): about 16 MiB and 40 ms
#: here (measured: ``hashlib.scrypt`` timed once, 36 ms; 2**15 took 84 ms).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: PBKDF2-HMAC-SHA256 iterations, OWASP's 2023 recommendation.
PBKDF2_ITERATIONS = 600_000
#: Bounds on parameters read from a file: a typo must not make every request take minutes.
_MAX_N, _MAX_R, _MAX_P, _MAX_ITERATIONS = 2**20, 32, 16, 10_000_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64; ValueError ("... base64") on anything else."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("salt and key must be base64") from None
    if len(data) < 8:  # an empty key would match every password
        raise ValueError("salt and key must be at least 8 bytes")
    return data


class Verifier(Protocol):
    """One user's stored secret."""

    #: True when checking costs a KDF run (worth remembering a success).
    costly: bool

    def verify(self, password: bytes) -> bool: ...

    def decoy(self) -> Verifier:
        """An entry of the same kind and cost that no password matches (unknown users)."""
        ...


@dataclasses.dataclass(frozen=True)
class Plain:
    """A password given in clear (``--auth``): kept as its SHA-256 digest, so that the
    comparison is between equal lengths."""

    digest: bytes
    costly = False

    @classmethod
    def of(cls, password: str) -> Plain:
        return cls(hashlib.sha256(_nfc(password).encode("utf-8")).digest())

    def verify(self, password: bytes) -> bool:
        return hmac.compare_digest(hashlib.sha256(password).digest(), self.digest)

    def decoy(self) -> Plain:
        return Plain(secrets.token_bytes(32))


@dataclasses.dataclass(frozen=True)
class Scrypt:
    """``scrypt$N$r$p$SALT$KEY``."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes
    costly = True

    def derive(self, password: bytes) -> bytes:
        return hashlib.scrypt(password, salt=self.salt, n=self.n, r=self.r, p=self.p,
                              maxmem=256 * self.n * self.r * self.p + (1 << 20),
                              dklen=len(self.key))

    def verify(self, password: bytes) -> bool:
        return hmac.compare_digest(self.derive(password), self.key)

    def decoy(self) -> Scrypt:
        return dataclasses.replace(self, salt=secrets.token_bytes(len(self.salt)),
                                   key=secrets.token_bytes(len(self.key)))

    def __str__(self) -> str:
        return f"scrypt${self.n}${self.r}${self.p}${_b64(self.salt)}${_b64(self.key)}"


@dataclasses.dataclass(frozen=True)
class PBKDF2:
    """``pbkdf2-sha256$ITERATIONS$SALT$KEY``."""

    iterations: int
    salt: bytes
    key: bytes
    costly = True

    def derive(self, password: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password, self.salt, self.iterations,
                                   len(self.key))

    def verify(self, password: bytes) -> bool:
        return hmac.compare_digest(self.derive(password), self.key)

    def decoy(self) -> PBKDF2:
        return dataclasses.replace(self, salt=secrets.token_bytes(len(self.salt)),
                                   key=secrets.token_bytes(len(self.key)))

    def __str__(self) -> str:
        return f"pbkdf2-sha256${self.iterations}${_b64(self.salt)}${_b64(self.key)}"


def hash_password(password: str, scheme: str = "scrypt") -> str:
    """The stored form of ``password`` (a fresh 16-byte salt): the part after ``USER:``."""
    raw = _nfc(password).encode("utf-8")
    salt = secrets.token_bytes(16)
    entry: Scrypt | PBKDF2
    if scheme == "scrypt":
        entry = Scrypt(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, b"\0" * 32)
    elif scheme == "pbkdf2-sha256":
        entry = PBKDF2(PBKDF2_ITERATIONS, salt, b"\0" * 32)
    else:
        raise ValueError(f"unknown scheme {scheme!r} (scrypt or pbkdf2-sha256)")
    return str(dataclasses.replace(entry, key=entry.derive(raw)))


def _int(text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{what} must be an integer in {low}..{high}")
    return int(text)


def parse_hashed(text: str) -> Scrypt | PBKDF2:
    """The stored hash ``text`` (after ``USER:``); ValueError saying what is wrong."""
    scheme, *fields = text.strip().split("$")
    if scheme == "scrypt" and len(fields) == 5:
        n = _int(fields[0], 2, _MAX_N, "scrypt N")
        if n & (n - 1):
            raise ValueError("scrypt N must be a power of 2")
        return Scrypt(n, _int(fields[1], 1, _MAX_R, "scrypt r"),
                      _int(fields[2], 1, _MAX_P, "scrypt p"),
                      _unb64(fields[3]), _unb64(fields[4]))
    if scheme == "pbkdf2-sha256" and len(fields) == 3:
        return PBKDF2(_int(fields[0], 1000, _MAX_ITERATIONS, "pbkdf2 iterations"),
                      _unb64(fields[1]), _unb64(fields[2]))
    raise ValueError("expected scrypt$N$r$p$SALT$KEY or pbkdf2-sha256$ITERATIONS$SALT$KEY "
                     "(see python -m minihttp hash-password)")


def _nfc(text: str) -> str:
    # ASCII is already in form C (measured: the check of a plain entry went from 6.1 to
    # 3.6 us with the ASCII shortcuts here and in _has_control; timeit on this machine)
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _has_control(text: str) -> bool:
    if text.isascii():
        return not text.isprintable()  # ASCII's non-printables are C0 and DEL
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def parse_basic(value: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization`` / ``Proxy-Authorization`` value, or
    None when it is absent or not valid Basic credentials (RFC 7617 section 2: token68 of
    base64(user-id ":" password), UTF-8, no control characters)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token or len(token) > MAX_TOKEN:
        return None
    try:
        text = base64.b64decode(token.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeError is a ValueError
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or _has_control(text):
        return None
    return _nfc(user), _nfc(password)


def challenge(realm: str) -> str:
    """The ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 7617 section 2.1)."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{quoted}", charset="UTF-8"'


class Credentials:
    """The users allowed in and how to check them; safe to share between threads."""

    def __init__(self, entries: Iterable[tuple[str, Verifier]]) -> None:
        self._users: dict[str, Verifier] = {}
        for user, verifier in entries:
            self._users[_nfc(user)] = verifier  # a later entry replaces an earlier one
        if not self._users:
            raise ValueError("no credentials")
        costly = [v for v in self._users.values() if v.costly]
        self._decoy: Verifier = (costly or list(self._users.values()))[0].decoy()
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._cache_key = secrets.token_bytes(32)
        self._lock = threading.Lock()

    @classmethod
    def plain(cls, pairs: Iterable[tuple[str, str]]) -> Credentials:
        """From ``(user, password)`` pairs given in clear."""
        return cls((user, Plain.of(password)) for user, password in pairs)

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._users)

    def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s (equal work for unknown users, see module)."""
        user, raw = _nfc(user), _nfc(password).encode("utf-8")
        verifier = self._users.get(user)
        if verifier is None:
            self._decoy.verify(raw)
            return False
        if not verifier.costly:
            return verifier.verify(raw)
        # keyed BLAKE2b, not hmac.new: measured (timeit) 8.6 us a cached check with HMAC,
        # about 4 with this
        key = hashlib.blake2b(user.encode("utf-8") + b"\0" + raw, key=self._cache_key,
                              digest_size=32).digest()
        now = time.monotonic()
        with self._lock:
            until = self._cache.get(key)
            if until is not None:
                if now < until:
                    return True
                del self._cache[key]
        if not verifier.verify(raw):
            return False
        with self._lock:
            self._cache[key] = now + CACHE_SECONDS
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return True

    def check(self, values: Sequence[str] | None) -> str | None:
        """The authenticated user for the values of the request's ``Authorization`` (or
        ``Proxy-Authorization``) fields, or None. Two such fields are ambiguous: None."""
        if not values or len(values) != 1:
            return None
        pair = parse_basic(values[0])
        if pair is None or not self.verify(*pair):
            return None
        return pair[0]


#: Methods that change nothing (RFC 9110 section 9.2.1): open with ``--auth-upload-only``.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BasicAuthMixin:
    """Handler mix-in (put it before the handler class): requests without valid Basic
    credentials get 401 with a challenge, before their ``do_*`` method runs and before
    their body is read (an ``Expect: 100-continue`` upload is refused without its body).

    ``remote_user`` (the access log's user field) is the authenticated user. CORS preflights
    (``OPTIONS`` with ``Access-Control-Request-Method``) are never challenged: browsers
    send them without credentials (Fetch standard, CORS-preflight fetch).
    """

    #: Who may come in; None: everyone (the mix-in does nothing).
    auth_credentials: Credentials | None = None
    auth_realm: str = "minihttp"
    #: True: only methods outside :data:`SAFE_METHODS` need credentials.
    auth_upload_only: bool = False
    remote_user: str | None
    command: str | None
    headers: Any

    def parse_request(self) -> bool:
        self.remote_user = None
        if not super().parse_request():  # type: ignore[misc]
            return False
        credentials = self.auth_credentials
        command = self.command
        if credentials is None or (self.auth_upload_only and command in SAFE_METHODS):
            return True
        if command == "OPTIONS" and "Access-Control-Request-Method" in self.headers:
            return True
        user = credentials.check(self.headers.get_all("Authorization"))
        if user is not None:
            self.remote_user = user
            return True
        self._challenge()
        return False

    def _challenge(self) -> None:
        """401 with ``WWW-Authenticate`` (RFC 9110 section 11.6.1)."""
        body = b"401 Unauthorized: this server needs a user name and password.\n"
        send: Any = self
        send.send_response(401)
        send.send_header("WWW-Authenticate", challenge(self.auth_realm))
        send.send_header("Content-Type", "text/plain; charset=utf-8")
        send.send_header("Content-Length", str(len(body)))
        send.end_headers()
        if self.command != "HEAD":
            send.wfile.write(body)
