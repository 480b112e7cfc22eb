"""Shared test helpers (not tests): servers in threads, the proxy upstream, replay, vectors."""
