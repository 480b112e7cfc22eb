"""Every public module lists its public names in ``__all__``, and every listed name exists.

A name is public when it does not start with an underscore and is defined in the module
itself (not imported into it). This keeps ``from minihttp.x import *`` and the documentation
honest as modules grow.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import minihttp

PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(minihttp.__path__, "minihttp.")
    if not any(part.startswith("_") for part in info.name.split("."))
)


#: Defined on purpose but not listed, to match the standard library's ``__all__`` on this
#: Python (``ForkingUnix*`` joined the stdlib's list in 3.12).
NOT_LISTED = {
    "minihttp.socketserver": (
        set() if sys.version_info >= (3, 12)
        else {"ForkingUnixDatagramServer", "ForkingUnixStreamServer"}
    ),
}


def test_there_are_public_modules() -> None:
    assert {"minihttp.server", "minihttp.socketserver", "minihttp.static", "minihttp.proxy",
            "minihttp.eventloop"} <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_lists_exactly_the_public_definitions(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"
    defined_here = {
        n for n, v in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(v) or inspect.isfunction(v))
        and getattr(v, "__module__", None) == name
    }
    unlisted = defined_here - set(exported) - NOT_LISTED.get(name, set())
    assert not unlisted, f"{name} defines public names missing from __all__: {sorted(unlisted)}"


def test_package_root_reexports() -> None:
    for n in minihttp.__all__:
        assert getattr(minihttp, n) is not None
    from minihttp.server import BaseHTTPRequestHandler
    assert minihttp.BaseHTTPRequestHandler is BaseHTTPRequestHandler


def test_no_stdlib_socketserver_or_http_server_imported() -> None:
    """minihttp's layers are its own: importing all of it loads neither stdlib module."""
    code = (
        "import sys, importlib, pkgutil, minihttp\n"
        "for i in pkgutil.walk_packages(minihttp.__path__, 'minihttp.'):\n"
        "    if not i.name.endswith('.__main__'):\n"
        "        importlib.import_module(i.name)\n"
        "bad = [m for m in ('socketserver', 'http.server') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == ""
