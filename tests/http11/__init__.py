"""Tests (the layout mirrors minihttp/)."""
