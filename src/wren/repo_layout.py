"""What a repository's layout says about its folders, shared by the judge's self-check (which
finds the package under test) and task synthesis (which finds the code to mutate)."""

from __future__ import annotations

# Directories that never hold the code under test.
SKIPPED_DIRS = frozenset(
    {
        "test",
        "tests",
        "testing",
        "docs",
        "doc",
        "examples",
        "example",
        "benchmarks",
        "benchmark",
        "scripts",
        "build",
        "dist",
        "site-packages",
        "node_modules",
        "venv",
        "env",
        "__pycache__",
    }
)
