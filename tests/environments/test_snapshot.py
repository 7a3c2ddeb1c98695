"""Workspace snapshots through real environments: local, sandbox (real bwrap), docker (real engine)."""

from __future__ import annotations

import subprocess

import pytest

from tests.environments.test_sandbox import _bwrap_works
from tests.peers.containers import require_docker_image
from wren.environments.docker import DockerEnvironment
from wren.environments.local import LocalEnvironment
from wren.environments.sandbox import SandboxEnvironment
from wren.environments.snapshot import Snapshot, SnapshotError, WorkspaceSnapshots

# Prints every file under the current directory (outside .git) with its content, and git's view.
STATE = (
    "find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | while read -r f; do "
    'echo "== $f"; cat "$f"; done; echo "== HEAD $(git symbolic-ref -q HEAD) $(git rev-parse -q --verify HEAD)"; '
    "echo '== index'; git diff --cached --name-status 2>/dev/null"
)

INIT_REPO = (
    "git init -q -b main . && git config user.email t@t && git config user.name t && "
    "mkdir -p pkg && printf 'a = 1\\n' > pkg/mod.py && printf 'keep\\n' > README && "
    "printf '*.log\\n' > .gitignore && git add -A && git commit -qm base"
)


def _make_env(kind: str, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    if kind == "local":
        return LocalEnvironment(cwd=str(work)), str(work)
    if kind == "sandbox":
        if _bwrap_works():
            pytest.skip(_bwrap_works())
        return SandboxEnvironment(workdir=str(work), cwd=str(work)), str(work)
    image = require_docker_image()
    env = DockerEnvironment(image=image, cwd="/work", run_args=["-w", "/work"])
    env.execute("mkdir -p /work")
    return env, "/work"


@pytest.fixture(params=["local", "sandbox", pytest.param("docker", marks=pytest.mark.docker)])
def env_root(request, tmp_path):
    env, root = _make_env(request.param, tmp_path)
    yield env, root
    env.close()


def _state(env) -> str:
    return env.execute(STATE)["output"]


def test_restore_brings_back_tracked_untracked_deleted_staged_and_head(env_root):
    env, root = env_root
    assert env.execute(INIT_REPO)["returncode"] == 0
    env.execute(
        "printf 'a = 2\\n' > pkg/mod.py && printf 'new\\n' > pkg/new.py && rm README && "
        "printf 'staged\\n' > staged.txt && git add staged.txt"
    )
    snaps = WorkspaceSnapshots(env, root=root)
    before = _state(env)
    snap = snaps.save()
    assert snap.own_repo and snap.head_ref == "refs/heads/main"
    # The snapshot leaves the agent's index and branches as they were.
    assert _state(env) == before
    assert "refs/wren/snapshots/" not in env.execute("git branch -a; git status --short")["output"]

    env.execute(
        "git checkout -qb other && git add -A && git commit -qm wip && printf 'x\\n' > junk.txt && "
        "mkdir -p deep/er && printf 'y\\n' > deep/er/f && printf 'a = 3\\n' > pkg/mod.py && rm -rf pkg/new.py"
    )
    assert _state(env) != before
    snaps.restore(snap)
    assert _state(env) == before
    assert env.execute("test -d deep && echo present || echo gone")["output"] == "gone\n"


def test_snapshots_of_a_directory_that_is_not_a_repository(env_root):
    env, root = env_root
    env.execute("printf 'one\\n' > a.txt && mkdir sub && printf 'two\\n' > sub/b.txt")
    snaps = WorkspaceSnapshots(env, root=root)
    first = snaps.save()
    assert not first.own_repo
    env.execute("printf 'changed\\n' > a.txt && rm -r sub && printf 'three\\n' > c.txt")
    second = snaps.save()
    snaps.restore(first)
    assert env.execute("cat a.txt sub/b.txt; ls")["output"] == "one\ntwo\na.txt\nsub\n"
    snaps.restore(second)
    assert env.execute("cat a.txt c.txt; ls")["output"] == "changed\nthree\na.txt\nc.txt\n"
    # The workspace did not become a repository; the snapshots' own directory is hidden and kept.
    assert env.execute("test -e .git && echo yes || echo no")["output"] == "no\n"
    assert env.execute("ls -A")["output"] == ".wren-snapshots.git\na.txt\nc.txt\n"
    snaps.drop_all()


def test_ignored_files_follow_the_option(env_root):
    env, root = env_root
    env.execute(INIT_REPO + " && printf 'log1\\n' > run.log")
    plain = WorkspaceSnapshots(env, root=root)
    snap = plain.save()
    env.execute("printf 'log2\\n' > run.log")
    plain.restore(snap)
    assert env.execute("cat run.log")["output"] == "log2\n"  # ignored files are not the snapshot's

    full = WorkspaceSnapshots(env, root=root, include_ignored=True)
    snap = full.save()
    env.execute("printf 'log3\\n' > run.log && printf 'x\\n' > other.log")
    full.restore(snap)
    assert env.execute("cat run.log; ls *.log")["output"] == "log2\nrun.log\n"


def test_snapshot_round_trips_as_a_dict_and_a_bad_one_fails_clearly(env_root):
    env, root = env_root
    env.execute(INIT_REPO)
    snaps = WorkspaceSnapshots(env, root=root)
    snap = snaps.save()
    assert Snapshot.from_dict(snap.to_dict()) == snap
    bogus = Snapshot(commit="0" * 40, tree="0" * 40, own_repo=True)
    with pytest.raises(SnapshotError, match="snapshot restore failed"):
        snaps.restore(bogus)


def test_refs_are_removed_by_drop_all(tmp_path):
    subprocess.run(["bash", "-c", INIT_REPO], cwd=tmp_path, check=True)
    env = LocalEnvironment(cwd=str(tmp_path))
    snaps = WorkspaceSnapshots(env)
    snaps.save()
    assert "refs/wren/snapshots/" in env.execute("git for-each-ref")["output"]
    snaps.drop_all()
    assert "refs/wren/snapshots/" not in env.execute("git for-each-ref")["output"]
