"""Every name of ``http.server.__all__`` (Python 3.10-3.14) is importable from minihttp.server.

The README promises that porting is a change of imports. ``SimpleHTTPRequestHandler`` and the
HTTPS servers live in modules that import minihttp.server, so minihttp.server serves them
lazily (PEP 562); a fresh interpreter per name checks that no import order breaks that
(minihttp.static already imported would hide a cycle). ``CGIHTTPRequestHandler`` is not
provided, on purpose, and says so.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
from pathlib import Path

import pytest

import minihttp.server
import minihttp.static

ROOT = Path(__file__).resolve().parent.parent

#: http.server.__all__ over the supported Pythons: 3.10-3.13, plus 3.14's HTTPS servers.
STDLIB_NAMES = {"HTTPServer", "ThreadingHTTPServer", "BaseHTTPRequestHandler",
                "SimpleHTTPRequestHandler", "CGIHTTPRequestHandler", "HTTPSServer",
                "ThreadingHTTPSServer"}
NOT_PROVIDED = {"CGIHTTPRequestHandler"}
PROVIDED = sorted(STDLIB_NAMES - NOT_PROVIDED)


def test_the_running_pythons_names_are_known() -> None:
    assert set(http.server.__all__) <= STDLIB_NAMES


@pytest.mark.parametrize("name", PROVIDED)
def test_name_is_listed_and_importable(name: str) -> None:
    assert name in minihttp.server.__all__
    namespace: dict[str, object] = {}
    exec(f"from minihttp.server import {name}", namespace)
    assert isinstance(namespace[name], type)
    assert name in dir(minihttp.server)


def test_star_import_gives_every_provided_name() -> None:
    namespace: dict[str, object] = {}
    exec("from minihttp.server import *", namespace)
    assert set(PROVIDED) <= set(namespace)


@pytest.mark.parametrize("name", PROVIDED)
def test_importable_first_thing_in_a_fresh_interpreter(name: str) -> None:
    code = f"from minihttp.server import {name}; print({name}.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == name


def test_lazy_names_are_the_real_classes() -> None:
    from minihttp.https import HTTPSServer, ThreadingHTTPSServer

    served = minihttp.server
    assert served.SimpleHTTPRequestHandler is minihttp.static.SimpleHTTPRequestHandler
    assert served.HTTPSServer is HTTPSServer
    assert served.ThreadingHTTPSServer is ThreadingHTTPSServer
    assert issubclass(HTTPSServer, minihttp.server.HTTPServer)
    assert issubclass(ThreadingHTTPSServer, HTTPSServer)
    assert ThreadingHTTPSServer.daemon_threads


def test_cgi_handler_is_refused_with_a_reason() -> None:
    with pytest.raises(ImportError, match="does not provide CGIHTTPRequestHandler") as info:
        exec("from minihttp.server import CGIHTTPRequestHandler", {})
    assert "3.15" in str(info.value) and "do_GET" in str(info.value)
    assert "CGIHTTPRequestHandler" not in minihttp.server.__all__


def test_other_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = minihttp.server.NoSuchThing  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'NoSuchThing'"):
        exec("from minihttp.server import NoSuchThing", {})
