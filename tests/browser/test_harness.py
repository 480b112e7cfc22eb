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
def test_without_a_browser_the_tests_skip(variable: str, reason: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("selenium")
    monkeypatch.setenv(variable, "/nonexistent/" + variable.lower())
    assert reason in str(why_no_browser())
    env = {**os.environ, variable: "/nonexistent/" + variable.lower()}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/browser/test_listing.py::test_listing_links_every_entry"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED [1] tests/browser/test_listing.py:" in done.stdout, done.stdout
    assert reason in done.stdout, done.stdout
