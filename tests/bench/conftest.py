"""Fixtures of the judge's tests: one offline wheelhouse and environment cache per module."""

from tests.peers.wheelhouse import env_cache, shared_dirs  # noqa: F401 (fixtures)
