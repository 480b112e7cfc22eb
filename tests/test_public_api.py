"""Every public module lists its public names in ``__all__``, and every listed name exists.

A name is public when it does not start with an underscore and is defined in the module
itself (not imported into it). This keeps ``from minihttp.x import *`` and the documentation
honest as modules grow.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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


#: The standard-library modules minihttp must never import (its own layers replace them).
FORBIDDEN = ("socketserver", "http.server")


def _forbidden_imports(path: Path) -> list[str]:
    """Every import of a FORBIDDEN module in one source file, wherever it is (module level,
    inside a function, ``from http import server``, ``importlib.import_module("...")``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                names = [str(node.args[0].value)]
        found += [f"{path}:{node.lineno}: {name}" for name in names
                  if name in FORBIDDEN or name.startswith("socketserver.")]
    return found


def test_no_stdlib_socketserver_or_http_server_imported() -> None:
    """minihttp's layers are its own: no source file imports the standard library's
    ``socketserver`` or ``http.server`` (read from the source, so an import inside a function
    counts too), and importing every module of the package loads neither."""
    root = Path(minihttp.__file__).resolve().parent
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 40 and root / "proxy" / "__main__.py" in sources
    assert [hit for path in sources for hit in _forbidden_imports(path)] == []
    # At run time, in a fresh interpreter importing this tree (not an installed copy);
    # the __main__ modules run their command line when imported (the scan covered them).
    code = (
        "import sys, importlib, pkgutil, minihttp\n"
        f"assert minihttp.__file__ == {str(root / '__init__.py')!r}, minihttp.__file__\n"
        "names = [i.name for i in pkgutil.walk_packages(minihttp.__path__, 'minihttp.')\n"
        "         if not i.name.endswith('.__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(len(names), ','.join(bad))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=root.parent, env=env)
    count, bad = out.stdout.split(" ")
    assert int(count) > 40 and bad.strip() == "", out.stdout
