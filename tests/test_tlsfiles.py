"""A bad certificate or key gets one line saying what is wrong and what to pass.

Files made by trustme; each case is checked through :func:`minihttp.tlsfiles.load_cert_chain`
and through the command line (exit status 1, one line on stderr, no traceback, no prompt
for a password).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from minihttp.tlsfiles import CertificateError, load_cert_chain

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    other = ca.issue_cert("other.example")
    files = {
        "cert": cert.cert_chain_pems[0].bytes(),
        "key": cert.private_key_pem.bytes(),
        "both": cert.private_key_and_cert_chain_pem.bytes(),
        "other_key": other.private_key_pem.bytes(),
        "garbage": b"this is not a certificate\n",
        "der": ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode()),
    }
    key = serialization.load_pem_private_key(files["key"], None)
    for name, fmt in (("encrypted", serialization.PrivateFormat.PKCS8),
                      ("encrypted_trad", serialization.PrivateFormat.TraditionalOpenSSL)):
        files[name] = key.private_bytes(serialization.Encoding.PEM, fmt,
                                        serialization.BestAvailableEncryption(b"secret"))
    paths = {}
    for name, data in files.items():
        path = d / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = str(path)
    paths["missing"] = str(d / "missing.pem")
    return paths


# (cert, key, words the one line must contain)
CASES = {
    "cert_without_key": ("cert", None, ["no private key", "--tls-key"]),
    "key_mismatch": ("cert", "other_key", ["does not belong", "--tls-key"]),
    "garbage_cert": ("garbage", None, ["not a PEM certificate", "--tls-cert"]),
    "der_cert": ("der", "key", ["not a PEM certificate", "--tls-cert"]),
    "missing_cert": ("missing", None, ["cannot read --tls-cert", "missing.pem"]),
    "missing_key": ("cert", "missing", ["cannot read --tls-key", "missing.pem"]),
    "encrypted_key": ("cert", "encrypted", ["encrypted", "--tls-key"]),
    "encrypted_trad_key": ("cert", "encrypted_trad", ["encrypted", "--tls-key"]),
    "encrypted_in_chain": ("encrypted", None, ["no certificate", "--tls-cert"]),
    "swapped": ("key", "cert", ["no certificate", "--tls-cert"]),
    "garbage_key": ("cert", "garbage", ["not a private key", "--tls-key"]),
}


@pytest.mark.parametrize("case", CASES)
def test_load_cert_chain_says_what_is_wrong(pems: dict[str, str], case: str) -> None:
    cert, key, words = CASES[case]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(CertificateError) as info:
        load_cert_chain(context, pems[cert], pems[key] if key else None)
    message = str(info.value)
    assert "\n" not in message and "PEM lib" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("cert, key", [("cert", "key"), ("both", None)])
def test_good_files_load(pems: dict[str, str], cert: str, key: str | None) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    load_cert_chain(context, pems[cert], pems[key] if key else None)


@pytest.mark.parametrize("case", ["cert_without_key", "key_mismatch", "garbage_cert",
                                  "missing_cert", "encrypted_key"])
def test_command_line_one_line(pems: dict[str, str], case: str) -> None:
    cert, key, words = CASES[case]
    args = [sys.executable, "-m", "minihttp", "0", "-b", "127.0.0.1", "--tls-cert", pems[cert]]
    if key:
        args += ["--tls-key", pems[key]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=20,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
