"""A fingerprint of a run's workspace: what its files are after a step.

A git work tree: HEAD, and a hash of the diff against it and of every untracked file. Anything
else: a hash of every file's path and content. `wren run --resume` compares the fingerprint the last
recorded step left with the workspace's now (wren.trajectory.resume).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

# Files outside git are hashed up to this many; past it, their sizes and times stand for them.
MAX_HASHED_FILES = 20_000


def _git(cwd: Path, *args: str) -> bytes | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _excluded(path: Path, exclude: list[Path]) -> bool:
    return any(path == e or e in path.parents for e in exclude)


def _hash_file(digest: Any, path: Path) -> None:
    try:
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    except OSError:
        digest.update(b"<unreadable>")


def workspace_fingerprint(cwd: str | Path, exclude: list[Path] = ()) -> dict[str, str] | None:
    """What the files under `cwd` are (None when it is not a directory on this machine).

    A git work tree: HEAD, and a hash of the diff against it and of every untracked file (ignored
    files are left out). Anything else: a hash of every file's path and content. Paths under
    `exclude` (the run's own output directory) are left out.
    """
    root = Path(cwd).resolve()
    if not root.is_dir():
        return None
    exclude = [Path(e).resolve() for e in exclude]
    digest = hashlib.sha256()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None:
        head = (_git(root, "rev-parse", "HEAD") or b"").decode().strip() or "(no commit)"
        pathspec = ["--", "."] + [
            f":(exclude){os.path.relpath(e, root)}" for e in exclude if e == root or root in e.parents
        ]
        digest.update(_git(root, "diff", "HEAD", "--binary", *pathspec) or b"")
        untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", *pathspec) or b""
        for name in sorted(n for n in untracked.split(b"\0") if n):
            digest.update(b"\0" + name + b"\0")
            _hash_file(digest, root / name.decode(errors="surrogateescape"))
        return {"kind": "git", "head": head, "digest": digest.hexdigest()}
    files = sorted(
        p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts and not _excluded(p, exclude)
    )
    for n, path in enumerate(files):
        digest.update(b"\0" + str(path.relative_to(root)).encode(errors="surrogateescape") + b"\0")
        if n < MAX_HASHED_FILES:
            _hash_file(digest, path)
        else:
            stat = path.lstat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return {"kind": "files", "digest": digest.hexdigest()}
