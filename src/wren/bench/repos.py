"""Local git repositories and clean per-instance checkouts of them.

A repos directory holds one entry per repository, named `owner__name` or `owner+name`, which is a
git repository (bare or not) or a directory with one in `repo/` (the layout of fetched mirrors).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from wren.exceptions import WrenError


class WorkspaceError(WrenError):
    """A workspace could not be made: the repository or commit is missing, or git failed."""


def _git(*args: str, cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-1000:]}")
    return proc.stdout


def _is_git_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    probe = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, text=True, timeout=60
    )
    return probe.returncode == 0


def find_repo(repos_dir: str | Path, repo: str) -> Path:
    """The local git repository for `owner/name` under `repos_dir`."""
    root = Path(repos_dir)
    if not root.is_dir():
        raise WorkspaceError(f"--repos {root} is not a directory")
    owner, _, name = repo.partition("/")
    if not owner or not name:
        raise WorkspaceError(f"repo {repo!r} is not of the form owner/name")
    tried = []
    for entry in (f"{owner}__{name}", f"{owner}+{name}", f"{owner}__{name}.git", f"{owner}+{name}.git"):
        for candidate in (root / entry, root / entry / "repo"):
            tried.append(candidate.name if candidate.parent == root else f"{entry}/repo")
            if _is_git_dir(candidate):
                return candidate
    raise WorkspaceError(f"no git repository for {repo} in {root} (looked for {', '.join(tried)})")


def _checkout_without(dest: Path, commit: str, missing: list[str]) -> None:
    """Check out all but files whose contents the source lacks (mirrors that drop large blobs)."""
    _git("config", "core.sparseCheckout", "true", cwd=dest)
    patterns = "/*\n" + "".join(f"!/{path}\n" for path in missing)
    (dest / ".git" / "info").mkdir(exist_ok=True)
    (dest / ".git" / "info" / "sparse-checkout").write_text(patterns)
    try:
        _git("-c", "advice.detachedHead=false", "checkout", "-q", "-f", commit, cwd=dest)
    except WorkspaceError as e:
        raise WorkspaceError(f"commit {commit}: {e}") from None
    (dest / ".git" / "wren-missing-files").write_text("\n".join(missing) + "\n")


def checkout(source: Path, commit: str, dest: Path) -> Path:
    """Make `dest` a clean checkout of `commit` whose history ends there.

    Branches, the remote and tags on later commits are removed, so that `git log --all` cannot
    show the future fix.
    Objects are hard-linked from `source` when on the same file system (cheap, and self-contained
    unlike `--shared`, so the checkout also works when mounted into a container).
    """
    if dest.exists() and any(dest.iterdir()):
        raise WorkspaceError(f"workspace {dest} already exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Agents commit and stash: the checkout gets an identity.
    _git(
        "clone",
        "-q",
        "--no-checkout",
        "-c",
        "user.email=wren@localhost",
        "-c",
        "user.name=wren",
        str(source),
        str(dest),
    )
    try:
        _git("-c", "advice.detachedHead=false", "checkout", "-q", "-f", commit, cwd=dest)
    except WorkspaceError as e:
        missing = re.findall(r"unable to read sha1 file of (.+) \([0-9a-f]+\)", str(e))
        if not missing:
            raise WorkspaceError(f"commit {commit} of {source}: {e}") from None
        _checkout_without(dest, commit, missing)
    _git("config", "--remove-section", "remote.origin", cwd=dest)
    # Tags on the history up to the commit stay (setuptools_scm and friends read versions from
    # them); tags on later commits would show the future, so they go with the other refs.
    past_tags = _git(
        "for-each-ref", "--merged", "HEAD", "--format=%(objectname) %(refname)", "refs/tags", cwd=dest
    )
    # A fresh clone keeps its refs and reflogs as plain files; with HEAD detached at the commit,
    # removing them leaves the history ending there (one process instead of one per ref).
    git_dir = dest / ".git"
    for path in (
        git_dir / "packed-refs",
        git_dir / "logs",
        git_dir / "refs" / "remotes",
        git_dir / "refs" / "tags",
    ):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for head in (git_dir / "refs" / "heads").iterdir():
        shutil.rmtree(head) if head.is_dir() else head.unlink()
    (git_dir / "refs" / "tags").mkdir()
    if past_tags.strip():
        (git_dir / "packed-refs").write_text("# pack-refs with: sorted \n" + past_tags)
    return dest
