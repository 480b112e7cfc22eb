"""The browser harness itself: without a browser the browser tests skip, saying why."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.browser import REPO, why_no_browser


@pytest.mark.parametrize(("variable", "reason"), [
    ("MINIHTTP_CHROMIUM", "Chromium is not installed"),
    ("MINIHTTP_CHROMEDRIVER", "chromedriver is not installed"),
])
def test_a_missing_browser_is_a_reason(variable: str, reason: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("selenium")
    monkeypatch.setenv(variable, "/nonexistent/" + variable.lower())
    assert reason in str(why_no_browser())


def test_without_a_browser_the_tests_skip() -> None:
    """A whole pytest run, as on a machine without Chromium: the browser test skips with the
    reason, and the run passes."""
    pytest.importorskip("selenium")
    env = {**os.environ, "MINIHTTP_CHROMIUM": "/nonexistent/chromium"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/browser/test_listing.py::test_listing_links_every_entry"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED [1] tests/browser/test_listing.py:" in done.stdout, done.stdout
    assert "Chromium is not installed" in done.stdout, done.stdout
