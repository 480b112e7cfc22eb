"""Loading ``MODULE:APP`` / ``MODULE:factory()``: what works, and one clear line otherwise."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from minihttp.wsgi.app import AppLoadError, load_app, load_object, parse_spec

MODULES = {
    "wapp_good": """
        def application(environ, start_response):
            return []
        class Holder:
            wsgi = application
        def create(name="x", debug=False):
            def app(environ, start_response):
                return [name.encode()]
            app.debug = debug
            return app
        def broken_factory():
            raise RuntimeError("no config\\nsecond line")
        NOT_CALLABLE = 42
        def make_none():
            return None
    """,
    "wapp_only_app": "app = lambda environ, start_response: []\n",
    "wapp_nothing": "x = 1\n",
    "wapp_syntax": "def f(:\n    pass\n",
    "wapp_raises": "raise ValueError('bad settings')\n",
    "wapp_missing_dep": "import wapp_no_such_dependency\n",
}


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name, None)


def test_forms_that_load(modules: Path) -> None:
    import wapp_good  # type: ignore[import-not-found]

    assert load_app("wapp_good:application") is wapp_good.application
    assert load_app("wapp_good") is wapp_good.application
    assert load_app("wapp_good:Holder.wsgi") is wapp_good.application
    assert load_app("wapp_only_app")({}, None) == []
    made = load_app("wapp_good:create()")
    assert made({}, None) == [b"x"]
    made = load_app("wapp_good:create('prod', debug=True)")
    assert made({}, None) == [b"prod"] and made.debug is True
    assert load_object("wapp_good:NOT_CALLABLE") == 42


@pytest.mark.parametrize(("spec", "message"), [
    ("wapp_absent:app", "module 'wapp_absent' not found"),
    ("wapp_missing_dep:app", "No module named 'wapp_no_such_dependency'"),
    ("wapp_syntax:app", "syntax error in "),
    ("wapp_raises:app", "importing 'wapp_raises' failed: ValueError: bad settings"),
    ("wapp_good:nope", "'wapp_good' has no attribute 'nope'"),
    ("wapp_good:Holder.nope", "'wapp_good:Holder' has no attribute 'nope'"),
    ("wapp_nothing", "neither 'application' nor 'app'"),
    ("wapp_good:NOT_CALLABLE", "not callable (it is a int)"),
    ("wapp_good:NOT_CALLABLE()", "not callable (it is a int)"),
    ("wapp_good:broken_factory()", "factory wapp_good:broken_factory() failed: "
                                   "RuntimeError: no config"),
    ("wapp_good:make_none()", "not callable (it is a NoneType)"),
    ("wapp_good:create(open('x'))", "must be Python literals"),
    ("wapp_good:", "expected MODULE:NAME"),
    ("not a module:app", "invalid module name"),
    ("wapp_good:1abc", "invalid attribute name"),
    ("wapp_good:create(", "cannot parse"),
])
def test_failures_are_one_clear_line(modules: Path, spec: str, message: str) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app(spec)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_syntax_error_names_file_and_line(modules: Path) -> None:
    with pytest.raises(AppLoadError, match=r"wapp_syntax\.py, line 1"):
        load_app("wapp_syntax:app")


def test_parse_spec() -> None:
    assert parse_spec("a.b:c") == ("a.b", "c", None, {})
    assert parse_spec("a:f(1, 'x', k=[2])") == ("a", "f", (1, "x"), {"k": [2]})
    assert parse_spec("a") == ("a", "", None, {})
