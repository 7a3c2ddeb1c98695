"""Git snapshots: the repository as it is, each task's broken state, and private copies to test in.

The snapshot lives in a repos directory entry `{owner}__{name}` (what `wren eval --repos` reads).
The user's repository is never written to: git runs with the entry's git directory and a
temporary index, pointed at the user's tree. Each task's broken state is a root commit of its own
(the clean tree with the mutated file) on a branch named after the task, so its history shows
nothing of the fix. Commits use a fixed identity and date, so the same content gives the same ids.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wren.synth.testrun import SynthError

IDENTITY = {
    "GIT_AUTHOR_NAME": "wren synth",
    "GIT_AUTHOR_EMAIL": "synth@wren.invalid",
    "GIT_AUTHOR_DATE": "@0 +0000",
    "GIT_COMMITTER_NAME": "wren synth",
    "GIT_COMMITTER_EMAIL": "synth@wren.invalid",
    "GIT_COMMITTER_DATE": "@0 +0000",
}
# Caches and environments are not part of a repository even where no .gitignore says so.
EXCLUDES = """\
__pycache__/
*.py[cod]
.pytest_cache/
.mypy_cache/
.ruff_cache/
.hypothesis/
.tox/
.nox/
.venv/
venv/
.eggs/
*.egg-info/
.coverage
.coverage.*
"""


def _git(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> str:
    full_env = {**os.environ, **IDENTITY, **(env or {})}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise SynthError(f"git {' '.join(args[:3])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def sanitize_name(name: str) -> str:
    """A repository name usable in `owner/name`, a directory name and a branch name."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return clean or "repo"


@dataclass(frozen=True)
class Snapshot:
    """The clean state of the repository, committed in its repos directory entry."""

    entry: Path
    owner: str
    name: str
    commit: str
    tree: str

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def git_dir(self) -> Path:
        return self.entry / ".git"


def take_snapshot(
    repo_dir: Path, repos_dir: Path, owner: str = "local", name: str = "", exclude: Sequence[Path] = ()
) -> Snapshot:
    """Commit the working tree of `repo_dir` as it is into `repos_dir/{owner}__{name}` (on `main`);
    `exclude` names paths (our own outputs) to leave out when they lie inside the repository."""
    repo_dir = Path(repo_dir).resolve()
    if not repo_dir.is_dir():
        raise SynthError(f"repository directory {repo_dir} does not exist")
    name = sanitize_name(name or repo_dir.name)
    owner = sanitize_name(owner)
    entry = Path(repos_dir).resolve() / f"{owner}__{name}"
    if entry == repo_dir or entry in repo_dir.parents:
        raise SynthError(
            f"the snapshot {entry} would replace the repository {repo_dir}; choose another --repos-dir"
        )
    git_dir = entry / ".git"
    if not git_dir.is_dir():
        if entry.exists() and any(entry.iterdir()):
            raise SynthError(f"{entry} exists and is not a git repository made by wren synth")
        entry.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", str(entry))
        _git("symbolic-ref", "HEAD", "refs/heads/main", cwd=entry)
    excludes = git_dir / "info" / "wren-synth-exclude"
    excludes.parent.mkdir(parents=True, exist_ok=True)
    own = []
    for path in exclude:
        path = Path(path).resolve()
        if repo_dir in path.parents:
            own.append("/" + path.relative_to(repo_dir).as_posix())
    excludes.write_text(EXCLUDES + "".join(f"{p}\n" for p in own))
    with tempfile.TemporaryDirectory(prefix="wren-synth-index-") as tmp:
        env = {
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(repo_dir),
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
        }
        _git("-c", f"core.excludesFile={excludes}", "add", "-A", ".", cwd=repo_dir, env=env)
        tree = _git("write-tree", cwd=repo_dir, env=env).strip()
    if tree == "4b825dc642cb6eb9a060e54bf8d69288fbee4904":
        raise SynthError(f"{repo_dir} has no files to snapshot")
    commit = _git("commit-tree", tree, "-m", f"{name}", cwd=entry).strip()
    _git("update-ref", "refs/heads/main", commit, cwd=entry)
    _git("-c", "advice.detachedHead=false", "checkout", "-q", "-f", "main", cwd=entry)
    return Snapshot(entry=entry, owner=owner, name=name, commit=commit, tree=tree)


def export(snapshot: Snapshot, commit: str, dest: Path) -> Path:
    """Write the files of `commit` into a new directory `dest` (no .git there)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory(prefix="wren-synth-index-") as tmp:
        env = {
            "GIT_DIR": str(snapshot.git_dir),
            "GIT_WORK_TREE": str(dest),
            "GIT_INDEX_FILE": str(Path(tmp) / "i"),
        }
        _git("read-tree", "--reset", "-u", commit, cwd=dest, env=env)
    return dest


def file_modes(snapshot: Snapshot) -> dict[str, str]:
    """Git file mode of every file of the clean snapshot."""
    out = _git("ls-tree", "-r", "--full-tree", snapshot.commit, cwd=snapshot.entry)
    modes: dict[str, str] = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        modes[path] = meta.split()[0]
    return modes


@dataclass(frozen=True)
class BrokenState:
    """One task's broken repository: the clean tree with `path` holding `content`."""

    branch: str
    path: str
    content: str


def _quote_path(path: str) -> str:
    if re.search(r'[\x00-\x1f"\\]', path) or path.startswith('"'):
        escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return path


def commit_broken_states(
    snapshot: Snapshot, states: Sequence[BrokenState], modes: dict[str, str]
) -> list[str]:
    """Commit each state as a root commit on `refs/heads/{branch}` in one git fast-import; their ids."""
    if not states:
        return []
    chunks: list[bytes] = []
    for mark, state in enumerate(states, start=1):
        message = f"{snapshot.name}\n".encode()
        content = state.content.encode()
        mode = modes.get(state.path, "100644")
        chunks += [
            f"reset refs/heads/{state.branch}\n\n".encode(),
            f"commit refs/heads/{state.branch}\nmark :{mark}\n".encode(),
            f"author {IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}> 0 +0000\n".encode(),
            f"committer {IDENTITY['GIT_COMMITTER_NAME']} <{IDENTITY['GIT_COMMITTER_EMAIL']}> 0 +0000\n".encode(),
            f"data {len(message)}\n".encode() + message,
            f'M 040000 {snapshot.tree} ""\n'.encode(),
            f"M {mode} inline {_quote_path(state.path)}\n".encode(),
            f"data {len(content)}\n".encode() + content + b"\n\n",
        ]
    with tempfile.TemporaryDirectory(prefix="wren-synth-marks-") as tmp:
        marks = Path(tmp) / "marks"
        proc = subprocess.run(
            ["git", "fast-import", "--quiet", "--force", f"--export-marks={marks}"],
            cwd=snapshot.entry,
            input=b"".join(chunks),
            capture_output=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SynthError(f"git fast-import failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        by_mark = dict(line.split()[:2] for line in marks.read_text().splitlines() if line.strip())
    return [by_mark[f":{mark}"] for mark in range(1, len(states) + 1)]
