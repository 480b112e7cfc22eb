"""The browser fixtures (``chromium``, ``browser``, ``shots``) from tests/helpers/browser.py."""

from tests.helpers.browser import browser, chromium, shots

__all__ = ["browser", "chromium", "shots"]
