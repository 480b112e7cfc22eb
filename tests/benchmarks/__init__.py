"""Smoke tests of the benchmark scripts (their pure parts; no wrk run)."""
