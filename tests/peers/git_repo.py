"""Throwaway git repositories made from a dict of files, for tests and benchmarks alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT = ["git", "-c", "user.email=wren@example.com", "-c", "user.name=wren", "-c", "init.defaultBranch=main"]


def make_git_repo(path: Path, files: dict[str, str]) -> Path:
    """`files` (relative path -> text) written under `path` and committed as one initial commit."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    subprocess.run([*GIT, "init", "-q"], cwd=path, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=path, check=True)
    subprocess.run([*GIT, "commit", "-qm", "initial"], cwd=path, check=True)
    return path
