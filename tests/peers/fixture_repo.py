"""A fixture repository for benchmark tests: a small Python project with a planted bug, a test
patch that exposes it, and the gold patch that fixes it, in SWE-bench's instance format.

Built with real git in a directory the test owns; a later commit holding the fix is added on top
of the base commit, as in real repositories, so that checkouts must hide the future.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = "wren-fixtures/calc"
TEST_CMD = "python3 -m pytest -rA -p no:cacheprovider tests"

OPS = '''def add(a, b):
    return a + b


def clamp(x, lo, hi):
    """Limit x to the range [lo, hi]."""
    if x < lo:
        return lo
    return x
'''
OPS_FIXED = OPS.replace("    return x\n", "    if x > hi:\n        return hi\n    return x\n")
TESTS = """from calc.ops import add, clamp


def test_add():
    assert add(2, 3) == 5


def test_clamp_low():
    assert clamp(-5, 0, 10) == 0
"""
TESTS_NEW = (
    TESTS
    + """

def test_clamp_high():
    assert clamp(50, 0, 10) == 10
"""
)
PROBLEM = "clamp(x, lo, hi) returns x when x is above hi; it should return hi."


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _diff_after(repo: Path, path: str, content: str) -> str:
    """The diff that turns the committed `path` into `content`, leaving the tree unchanged."""
    target = repo / path
    before = target.read_text()
    target.write_text(content)
    diff = _git(repo, "diff", "--", path)
    target.write_text(before)
    return diff


PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "calc"
version = "1.0"

[project.optional-dependencies]
test = ["pytest"]
"""


def build_calc_repo(
    repos_dir: Path, *, bare: bool = False, entry_style: str = "__", packaged: bool = False
) -> dict[str, Any]:
    """Create the repo under `repos_dir`; return one instance dict for it.

    `packaged`: a src layout with a pyproject.toml, so the package imports only once installed, and
    the instance carries no test_cmd (its spec is detected).
    """
    owner, name = REPO.split("/")
    work = repos_dir / f"{owner}{entry_style}{name}"
    if bare:
        work = repos_dir / f".build-{name}"
    package = work / "src" / "calc" if packaged else work / "calc"
    package.mkdir(parents=True)
    (work / "tests").mkdir()
    (package / "__init__.py").write_text("")
    (package / "ops.py").write_text(OPS)
    (work / "tests" / "test_ops.py").write_text(TESTS)
    if packaged:
        (work / "pyproject.toml").write_text(PYPROJECT)
    ops_path = str((package / "ops.py").relative_to(work))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "calc with a clamp bug")
    base_commit = _git(work, "rev-parse", "HEAD").strip()
    _git(work, "tag", "-a", "v1.0", "-m", "release 1.0")
    patch = _diff_after(work, ops_path, OPS_FIXED)
    test_patch = _diff_after(work, "tests/test_ops.py", TESTS_NEW)
    # The upstream fix, committed after the base: a checkout at base_commit must not reveal it.
    (package / "ops.py").write_text(OPS_FIXED)
    _git(work, "commit", "-q", "-am", "fix clamp above hi")
    _git(work, "tag", "v1.1")
    if bare:
        final = repos_dir / f"{owner}{entry_style}{name}"
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(final)], check=True)
        subprocess.run(["rm", "-rf", str(work)], check=True)
    instance = {
        "instance_id": "wren-fixtures__calc-1",
        "repo": REPO,
        "base_commit": base_commit,
        "patch": patch,
        "test_patch": test_patch,
        "problem_statement": PROBLEM,
        "FAIL_TO_PASS": json.dumps(["tests/test_ops.py::test_clamp_high"]),
        "PASS_TO_PASS": ["tests/test_ops.py::test_add", "tests/test_ops.py::test_clamp_low"],
        "version": "1.0",
        "environment_setup_commit": base_commit,
        "test_cmd": TEST_CMD,
    }
    if packaged:
        del instance["test_cmd"]
    return instance


def write_jsonl(path: Path, instances: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(inst) + "\n" for inst in instances))
    return path


def copies(instance: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """`n` instances on the same repo and commit, with distinct ids."""
    return [{**instance, "instance_id": f"wren-fixtures__calc-{i + 1}"} for i in range(n)]
