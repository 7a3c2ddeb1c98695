"""Finding local repositories and making clean checkouts of them, with real git."""

from __future__ import annotations

import subprocess

import pytest

from tests.peers.fixture_repo import OPS, OPS_FIXED, REPO, build_calc_repo
from wren.bench.repos import WorkspaceError, checkout, find_repo


@pytest.mark.parametrize(("bare", "style"), [(False, "__"), (True, "__"), (False, "+"), (True, "+")])
def test_find_repo_accepts_both_names_bare_or_not(tmp_path, bare, style):
    build_calc_repo(tmp_path, bare=bare, entry_style=style)
    found = find_repo(tmp_path, REPO)
    assert found.name == f"wren-fixtures{style}calc"


def test_find_repo_accepts_a_mirror_layout(tmp_path):
    build_calc_repo(tmp_path / "build")
    (tmp_path / "mirror" / "wren-fixtures+calc").mkdir(parents=True)
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(tmp_path / "build" / "wren-fixtures__calc"),
         str(tmp_path / "mirror" / "wren-fixtures+calc" / "repo")],
        check=True,
    )  # fmt: skip
    assert find_repo(tmp_path / "mirror", REPO).name == "repo"


def test_find_repo_errors(tmp_path):
    with pytest.raises(WorkspaceError, match="not a directory"):
        find_repo(tmp_path / "nope", REPO)
    with pytest.raises(WorkspaceError, match="no git repository for wren-fixtures/calc"):
        find_repo(tmp_path, REPO)
    with pytest.raises(WorkspaceError, match="owner/name"):
        find_repo(tmp_path, "calc")


def test_checkout_is_clean_and_hides_the_future(tmp_path):
    inst = build_calc_repo(tmp_path / "repos", bare=True)
    dest = checkout(find_repo(tmp_path / "repos", REPO), inst["base_commit"], tmp_path / "ws")
    assert (dest / "calc" / "ops.py").read_text() == OPS

    def git(*args):
        return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, check=True).stdout

    assert git("rev-parse", "HEAD").strip() == inst["base_commit"]
    assert git("status", "--porcelain") == ""
    history = git("log", "--all", "--format=%s")
    assert "fix clamp" not in history and "clamp bug" in history
    assert git("remote") == ""
    assert git("tag").split() == ["v1.0"]  # the release before the base stays, the later one goes
    assert git("describe", "--tags").strip() == "v1.0"
    # The checkout stands alone (no alternates): it keeps working if the source goes away.
    subprocess.run(["rm", "-rf", str(tmp_path / "repos")], check=True)
    assert "clamp bug" in git("log", "--format=%s")
    (dest / "calc" / "ops.py").write_text(OPS_FIXED)
    git("commit", "-qam", "agents can commit")


def test_checkout_errors(tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    source = find_repo(tmp_path / "repos", REPO)
    with pytest.raises(WorkspaceError, match="commit 0123456"):
        checkout(source, "0123456789abcdef0123456789abcdef01234567", tmp_path / "ws1")
    (tmp_path / "ws2").mkdir()
    (tmp_path / "ws2" / "x").write_text("")
    with pytest.raises(WorkspaceError, match="not empty"):
        checkout(source, inst["base_commit"], tmp_path / "ws2")
