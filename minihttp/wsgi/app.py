"""Load ``MODULE:APP`` (or ``MODULE:factory()``) for the command line.

Forms accepted (those of gunicorn and uvicorn):

* ``package.module:name`` (``name`` may be dotted: ``module:obj.wsgi_app``);
* ``package.module:factory()`` or ``factory('prod', debug=False)``: called with literal
  arguments (Python literals only, read with :func:`ast.literal_eval`, never evaluated);
* ``package.module`` alone: its ``application``, else its ``app``.

Rules of this module:

* Every failure is an :class:`AppLoadError` whose message is one line saying what is wrong
  and where (module not found, a missing dependency inside it, a syntax error with file and
  line, an exception while importing, a missing attribute, a non-callable, a factory that
  failed): the command line prints it and exits with status 2.
* The current directory is importable (as with ``python -m``), so ``myapp:app`` run from
  the project's directory works in a pre-forked worker or after a reload too.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from typing import Any

__all__ = ["AppLoadError", "load_app", "load_object", "parse_spec"]


class AppLoadError(Exception):
    """The application cannot be loaded; the message is one line for the user."""


def parse_spec(spec: str) -> tuple[str, str, tuple[Any, ...] | None, dict[str, Any]]:
    """``"m:f(1, a=2)"`` -> ``("m", "f", (1,), {"a": 2})``; the args are None when the
    object is not called."""
    module, sep, attr = spec.strip().partition(":")
    if not module or (sep and not attr):
        raise AppLoadError(f"expected MODULE:NAME, got {spec!r}")
    if not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(f"invalid module name {module!r} in {spec!r}")
    if not sep:
        return module, "", None, {}
    if "(" not in attr:
        if not all(part.isidentifier() for part in attr.split(".")):
            raise AppLoadError(f"invalid attribute name {attr!r} in {spec!r}")
        return module, attr, None, {}
    try:
        call = ast.parse(attr, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"cannot parse the call {attr!r} in {spec!r}") from None
    if not isinstance(call, ast.Call):
        raise AppLoadError(f"expected NAME or NAME(ARGS) after ':', got {attr!r}")
    name = ast.unparse(call.func)
    if not all(part.isidentifier() for part in name.split(".")):
        raise AppLoadError(f"invalid factory name {name!r} in {spec!r}")
    try:
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError:
        raise AppLoadError(f"factory arguments must be Python literals in {spec!r}") from None
    if any(k.arg is None for k in call.keywords):
        raise AppLoadError(f"**kwargs not allowed in {spec!r}")
    return module, name, args, kwargs


def _import(module: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise AppLoadError(f"module {module!r} not found (looked in {cwd} and "
                               "sys.path)") from None
        raise AppLoadError(f"importing {module!r} failed: {exc}") from None
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else module
        raise AppLoadError(f"syntax error in {where}: {exc.msg}") from None
    except Exception as exc:
        raise AppLoadError(f"importing {module!r} failed: {type(exc).__name__}: "
                           f"{_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def load_object(spec: str) -> Any:
    """The object ``spec`` names (called, for the factory form)."""
    module_name, attr, args, kwargs = parse_spec(spec)
    module = _import(module_name)
    names = attr.split(".") if attr else []
    if not names:
        for default in ("application", "app"):
            if hasattr(module, default):
                names = [default]
                break
        else:
            raise AppLoadError(f"module {module_name!r} has neither 'application' nor 'app': "
                               f"name it as {module_name}:NAME")
    obj: Any = module
    for i, name in enumerate(names):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            where = module_name + (":" + ".".join(names[:i]) if i else "")
            raise AppLoadError(f"{where!r} has no attribute {name!r}") from None
    if args is None:
        return obj
    label = f"{module_name}:{'.'.join(names)}()"
    if not callable(obj):
        raise AppLoadError(f"{label[:-2]!r} is not callable (it is a {type(obj).__name__})")
    try:
        return obj(*args, **kwargs)
    except Exception as exc:
        raise AppLoadError(f"factory {label} failed: {type(exc).__name__}: "
                           f"{_one_line(exc)}") from None


def load_app(spec: str) -> Any:
    """The WSGI application ``spec`` names; an :class:`AppLoadError` unless it is callable."""
    app = load_object(spec)
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not a WSGI application: not callable (it is a "
                           f"{type(app).__name__})")
    return app
