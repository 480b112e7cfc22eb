"""Upload file names and sizes (minihttp.static.names) as tables."""

from __future__ import annotations

import pytest

from minihttp.static.names import BadName, check_name, parse_size

ACCEPTED = ["a.txt", "résumé 1.pdf", "名前.txt", "👩‍👩‍👧.png", "a" * 255, "é" * 127 + "a",
            "x..y", "icon.d", "CONSOLE", "COM10", "a b", "100%.txt", "#hash?q=1&x"]

REFUSED = {
    "": "missing", ".": "missing", "..": "missing",
    "a/b": "/", "a\\b": "/", "/etc": "/",
    "a\x00b": "control", "a\nb": "control", "a\rb": "control", "a\x7fb": "control",
    "a\x85b": "control", "tab\there": "control",
    "evil\u202etxt.exe": "bidirectional", "\u2066x": "bidirectional",
    "bad\udcffname": "UTF-8",
    "a" * 256: "255", "é" * 128: "255",
    ".hidden": "dot", ".htaccess": "dot",
    "CON": "reserved", "nul.txt": "reserved", "Com1.tar.gz": "reserved", "LPT9": "reserved",
    "conin$": "reserved", "trailing.": "reserved", "trailing ": "reserved",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_names_are_kept_as_they_are(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "why"), REFUSED.items())
def test_refused_names_say_why(name: str, why: str) -> None:
    with pytest.raises(BadName) as info:
        check_name(name)
    assert info.value.status == 400 and not info.value.close
    assert why in info.value.message


def test_dotfiles_when_allowed() -> None:
    assert check_name(".env", allow_dotfiles=True) == ".env"
    for still_refused in (".", "..", "./x"):
        with pytest.raises(BadName):
            check_name(still_refused, allow_dotfiles=True)


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("100", 100), ("512K", 512 * 1024), ("10M", 10 << 20), ("10m", 10 << 20),
    ("1G", 1 << 30), ("1.5G", 3 << 29), ("2T", 2 << 40), ("10MB", 10 << 20),
    ("10MiB", 10 << 20), (" 3 k ", 3072)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "M", "10X", "1e6", "1,000", "10 M B", "0.1"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
