"""Loading a server's certificate and key, with errors that say what is wrong.

OpenSSL reports most mistakes with the same line, ``[SSL] PEM lib (_ssl.c:3926)``: a
certificate file without its key, a garbage file, a key given as the certificate. Before
loading, :func:`load_cert_chain` looks at the PEM blocks of each file (``-----BEGIN
CERTIFICATE-----``, ``-----BEGIN ... PRIVATE KEY-----``) and says which one is missing and
which option to pass; after loading, it translates the one error OpenSSL names well (a key
that does not belong to the certificate).

Rules of this module:

* Every failure raises :class:`CertificateError` with ONE line: the file, what is wrong in
  it, and what to pass instead (the option names are the command line's, given by the
  caller), never OpenSSL's text alone.
* An encrypted key is refused before OpenSSL sees it: with no password OpenSSL would ask for
  one on the terminal and a server started by a supervisor would hang there. A password
  callback that refuses is passed too, for the encrypted keys the sniffing does not see.
* Reading a file for sniffing is bounded (:data:`SNIFF_LIMIT`); a longer file is sniffed on
  its beginning (certificates and keys are a few KiB).
"""

from __future__ import annotations

import re
import ssl

__all__ = ["CertificateError", "describe", "load_cert_chain"]

#: Bytes of a file read to find its PEM blocks.
SNIFF_LIMIT = 1 << 20

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


class CertificateError(Exception):
    """The TLS certificate or key cannot be used (the message names the file and the fix)."""


def _blocks(path: str) -> tuple[list[str], bool]:
    """The PEM block labels of ``path`` and whether a key in it is encrypted."""
    with open(path, "rb") as f:
        data = f.read(SNIFF_LIMIT)
    labels = [m.group(1).decode("ascii") for m in _BEGIN.finditer(data)]
    encrypted = b"Proc-Type: 4,ENCRYPTED" in data or "ENCRYPTED PRIVATE KEY" in labels
    return labels, encrypted


def _has_cert(labels: list[str]) -> bool:
    return any(label.endswith("CERTIFICATE") for label in labels)


def _has_key(labels: list[str]) -> bool:
    return any(label.endswith("PRIVATE KEY") for label in labels)


def describe(cert: str, key: str | None, cert_option: str = "--tls-cert",
             key_option: str = "--tls-key") -> str | None:
    """What is wrong with these files, in one line (None: nothing the PEM blocks show)."""
    for path, option in ((cert, cert_option), (key, key_option)):
        if path is None:
            continue
        try:
            _blocks(path)
        except OSError as exc:
            return f"cannot read {option} {path}: {exc.strerror or exc}"
    cert_labels, cert_encrypted = _blocks(cert)
    if not _has_cert(cert_labels):
        if _has_key(cert_labels):
            return (f"{cert} holds a private key but no certificate: pass the certificate "
                    f"(PEM, '-----BEGIN CERTIFICATE-----') with {cert_option} and this file "
                    f"with {key_option}")
        return (f"{cert} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line): "
                f"pass a PEM certificate chain with {cert_option}")
    if key is None:
        if not _has_key(cert_labels):
            return (f"{cert} holds a certificate but no private key: pass the key file with "
                    f"{key_option} FILE (or append the key to {cert})")
        key_path, encrypted = cert, cert_encrypted
    else:
        key_labels, encrypted = _blocks(key)
        key_path = key
        if not _has_key(key_labels):
            what = ("a certificate" if _has_cert(key_labels)
                    else "nothing PEM ('-----BEGIN PRIVATE KEY-----')")
            return (f"{key} holds {what}, not a private key: pass the private key of "
                    f"{cert} with {key_option}")
    if encrypted:
        return (f"the private key in {key_path} is encrypted with a password: decrypt it "
                f"(openssl pkey -in {key_path} -out plain-key.pem) and pass that file with "
                f"{key_option}")
    return None


def _refuse_password() -> bytes:
    raise CertificateError("the private key is encrypted with a password")


def load_cert_chain(context: ssl.SSLContext, cert: str, key: str | None = None,
                    cert_option: str = "--tls-cert", key_option: str = "--tls-key") -> None:
    """``context.load_cert_chain(cert, key)``, raising :class:`CertificateError` with a
    one-line reason and the option to pass (``cert_option`` / ``key_option``)."""
    problem = describe(cert, key, cert_option, key_option)
    if problem is not None:
        raise CertificateError(problem)
    try:
        context.load_cert_chain(cert, key, password=_refuse_password)
    except CertificateError:
        where = key if key is not None else cert
        raise CertificateError(
            f"the private key in {where} is encrypted with a password: decrypt it "
            f"(openssl pkey -in {where} -out plain-key.pem) and pass that file with "
            f"{key_option}") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None)
        if reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(
                f"the private key in {key if key is not None else cert} does not belong to "
                f"the certificate in {cert}: pass the key the certificate was issued for "
                f"with {key_option}") from None
        detail = reason or getattr(exc, "strerror", None) or exc
        files = f"{cert}{f' / {key}' if key is not None else ''}"
        raise CertificateError(f"cannot load the certificate and key {files}: {detail} "
                               f"(pass a PEM certificate chain with {cert_option} and its "
                               f"private key with {key_option})") from None

