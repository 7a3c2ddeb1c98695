"""Snapshots of the agent's workspace: save the whole tree at a step, restore it later.

Everything goes through `env.execute`, so the same git plumbing works in local, sandbox and docker
environments (git must be in the environment). A snapshot is a commit of the whole tree, untracked
files included (ignored ones only with `include_ignored`), written with a private index into a private
ref, so neither the agent's index nor its branches see it. When the workspace root is the top of a git
repository its own object store is used and the repository's HEAD, branch tip and index are part of
the snapshot; otherwise a private git directory outside the workspace holds the snapshots.

Shell state (cwd, variables) is out of scope by construction: every environment runs each command in a
fresh shell (`bash -c`, or a subshell of the persistent one), so no command inherits another's state.
Files outside the root (site-packages, /tmp) are not restored.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any

from wren.exceptions import WrenError
from wren.validation import StrictModel

REF_PREFIX = "refs/wren/snapshots/"
PRIVATE_DIR = ".wren-snapshots.git"
_IDENTITY = (
    "export GIT_AUTHOR_NAME=wren GIT_AUTHOR_EMAIL=wren@localhost "
    "GIT_COMMITTER_NAME=wren GIT_COMMITTER_EMAIL=wren@localhost GIT_TERMINAL_PROMPT=0"
)

# Chooses the git directory: the repository's own when the root is its top level, else a private one.
# Sets GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE (private) and OWN=1 when the repository is the agent's.
_SETUP = r"""
set -e
cd {root}
{identity}
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(pwd -P)" ]; then
  OWN=1; export GIT_DIR=$(git rev-parse --absolute-git-dir)
else
  OWN=0; export GIT_DIR={private}
  [ -d "$GIT_DIR" ] || git init -q --bare "$GIT_DIR"
fi
case "$GIT_DIR" in /*) ;; *) GIT_DIR="$(pwd -P)/$GIT_DIR" ;; esac
export GIT_WORK_TREE="$(pwd -P)"
export GIT_INDEX_FILE="$GIT_DIR/wren-snapshot-index"
# The repository's index seeds the private one: its stat data spares hashing unchanged files.
if [ ! -f "$GIT_INDEX_FILE" ] && [ -f "$GIT_DIR/index" ]; then cp "$GIT_DIR/index" "$GIT_INDEX_FILE"; fi
"""

_SAVE = r"""
git add -A {force} -- . {exclude} >/dev/null
tree=$(git write-tree)
head_ref=""; head_sha=""; index_tree=""
if [ "$OWN" = 1 ]; then
  head_ref=$(git symbolic-ref -q HEAD || true)
  head_sha=$(git rev-parse -q --verify HEAD || true)
  index_tree=$(GIT_INDEX_FILE="$GIT_DIR/index" git write-tree 2>/dev/null || true)
fi
commit=$(echo "wren snapshot" | git commit-tree "$tree")
git update-ref "{prefix}$commit" "$commit"
echo "__wren_snapshot__ $commit $tree $OWN ${{head_ref:--}} ${{head_sha:--}} ${{index_tree:--}}"
"""

# Staging the current tree first makes the private index describe it, so `read-tree -u --reset`
# rewrites exactly the files that differ and removes those the snapshot lacks (untracked ones too).
_RESTORE = r"""
git add -A {force} -- . {exclude} >/dev/null
git read-tree -u --reset {tree}
{clean}
if [ "$OWN" = 1 ]; then
  if [ {head_ref} != - ]; then
    [ {head_sha} = - ] || git update-ref {head_ref} {head_sha}
    git symbolic-ref HEAD {head_ref}
  elif [ {head_sha} != - ]; then
    git update-ref --no-deref HEAD {head_sha}
  fi
  if [ {index_tree} != - ]; then GIT_INDEX_FILE="$GIT_DIR/index" git read-tree {index_tree}; fi
fi
echo __wren_restored__
"""

_DROP = r"""
git for-each-ref --format='delete %(refname)' {prefix} | git update-ref --stdin
[ "$OWN" = 1 ] && rm -f "$GIT_INDEX_FILE" || true
[ "$OWN" = 0 ] && rm -rf "$GIT_DIR" || true
echo __wren_dropped__
"""


class SnapshotError(WrenError):
    """A snapshot could not be saved or restored; the message carries git's own words."""


class SnapshotConfig(StrictModel):
    """How workspace snapshots are taken."""

    root: str = ""
    """Directory snapshotted ('' = the environment's cwd)."""
    include_ignored: bool = False
    """Also save files .gitignore excludes (build outputs, caches); slower on big trees."""
    private_git_dir: str = ""
    """Git directory for snapshots of a root that is not a repository top ('' = `.wren-snapshots.git`
    in the root, left out of every snapshot: a sandbox's /tmp does not outlive a command)."""
    timeout: float = 120.0
    """Seconds one save or restore may take."""


@dataclass(frozen=True)
class Snapshot:
    """One saved state of the workspace: the tree commit and the repository's HEAD and index."""

    commit: str
    tree: str
    own_repo: bool
    head_ref: str = "-"
    head_sha: str = "-"
    index_tree: str = "-"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(**data)


class WorkspaceSnapshots:
    """Saves and restores the workspace of `env` under `config.root`."""

    def __init__(self, env: Any, config: SnapshotConfig | None = None, **kwargs: Any):
        self.env = env
        self.config = config or SnapshotConfig(**kwargs)
        root = self.config.root or getattr(getattr(env, "config", None), "cwd", "") or "."
        private = self.config.private_git_dir or PRIVATE_DIR
        self._setup = _SETUP.format(root=shlex.quote(root), identity=_IDENTITY, private=shlex.quote(private))
        self._force = "-f" if self.config.include_ignored else ""
        # The default private directory sits in the root: no snapshot may hold it, no restore remove it.
        self._exclude = shlex.quote(f":(exclude){PRIVATE_DIR}")

    def _run(self, body: str, marker: str, what: str) -> str:
        result = self.env.execute(self._setup + body, timeout=self.config.timeout)
        output = result.get("output", "")
        for line in output.splitlines():
            if line.startswith(marker):
                return line
        raise SnapshotError(
            f"snapshot {what} failed (exit {result.get('returncode')}): {output.strip()[-2000:]}"
        )

    def save(self) -> Snapshot:
        """Save the workspace now."""
        line = self._run(
            _SAVE.format(force=self._force, exclude=self._exclude, prefix=REF_PREFIX),
            "__wren_snapshot__ ",
            "save",
        )
        commit, tree, own, head_ref, head_sha, index_tree = line.split()[1:7]
        return Snapshot(commit, tree, own == "1", head_ref, head_sha, index_tree)

    def restore(self, snapshot: Snapshot) -> None:
        """Make the workspace what it was when `snapshot` was saved."""
        clean = "git clean -fdxq" if self.config.include_ignored else "git clean -fdq"
        clean += f" -e {shlex.quote('/' + PRIVATE_DIR)}"
        body = _RESTORE.format(
            force=self._force,
            exclude=self._exclude,
            tree=shlex.quote(snapshot.tree),
            clean=clean,
            head_ref=shlex.quote(snapshot.head_ref),
            head_sha=shlex.quote(snapshot.head_sha),
            index_tree=shlex.quote(snapshot.index_tree),
        )
        self._run(body, "__wren_restored__", "restore")

    def drop_all(self) -> None:
        """Delete every snapshot ref (and the private git directory, when one was used)."""
        self._run(_DROP.format(prefix=REF_PREFIX), "__wren_dropped__", "cleanup")
