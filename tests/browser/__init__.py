"""Tests in a real browser: headless Chromium against ``python -m minihttp`` (issue 14 item 8)."""
