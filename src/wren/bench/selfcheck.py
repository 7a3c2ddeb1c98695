"""The judge's check of an instance's environment before its tests run: `python` and the test
runner resolve inside the instance's virtualenv, and the package under test imports from the
workspace. Anything else makes the verdict `error`, never `resolved` or `unresolved`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from wren.bench.workspace import Workspace
from wren.exceptions import WrenError
from wren.repo_layout import SKIPPED_DIRS

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# Where the package imports from; then, with the current directory off sys.path (where a test
# runner need not put it), which meta-path finder finds it: the path-based one (the source tree is
# on sys.path, as `setup.py develop` left it), none (it runs from the checkout), or an editable
# install's import hook.
_PACKAGE_PROBE = """import importlib.machinery, os, sys
import {package} as m
print("wren-package=" + os.path.realpath(m.__file__))
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(os.getcwd())]
found = (f for f in sys.meta_path if getattr(f, "find_spec", None) and f.find_spec("{package}", None))
finder = next(found, None)
if finder is not None and finder is not importlib.machinery.PathFinder:
    name = finder.__name__ if isinstance(finder, type) else type(finder).__name__
    print("wren-package-finder=" + getattr(finder, "__module__", "?") + "." + name)"""


class EnvironmentCheckError(WrenError):
    """The instance's environment is not the one its verdict would claim to be about."""


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def package_name(repo_dir: Path, repo: str) -> str:
    """The import name of the repository's package ('' when none can be told apart)."""
    candidates: list[str] = []
    for root in (repo_dir, repo_dir / "src", repo_dir / "lib"):
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            if entry.name.startswith((".", "_")) and entry.name != "_pytest" or entry.name in SKIPPED_DIRS:
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file():
                candidates.append(entry.name)
            elif entry.suffix == ".py" and entry.stem not in ("setup", "conftest", "noxfile", "tasks"):
                candidates.append(entry.stem)
    name = _norm(repo.rpartition("/")[2])
    wanted = [name, name.removesuffix("python"), name.removeprefix("python"), name.removeprefix("py")]
    for want in wanted:
        for candidate in candidates:
            if want and _norm(candidate) == want:
                return candidate
    packages = [c for c in candidates if (repo_dir / c).is_dir() or (repo_dir / "src" / c).is_dir()]
    return packages[0] if len(packages) == 1 else ""


def test_runner(test_cmd: str) -> str:
    """The program a test command starts (after variable assignments; `python -m x` is python)."""
    words = shlex.split(test_cmd.split("&&")[0].split(";")[0])
    words = [w for w in words if not _ASSIGNMENT.match(w)]
    return words[0] if words else ""


def check_command(package: str, runner: str) -> str:
    lines = ['echo "wren-python=$(command -v python)"']
    if runner and "/" not in runner:
        lines.append(f'runner="$(command -v {shlex.quote(runner)})"; echo "wren-runner=$runner"')
        # A program outside the environment is fine (sleep, make) unless it is a Python one.
        lines.append(
            '[ -f "$runner" ] && echo "wren-runner-head=$(head -c 200 "$runner" | head -n 1 | tr -d \'\\0\')"'
        )
    if package:
        lines.append(f"python -c {shlex.quote(package_probe(package))} 2>&1 | tail -n 5")
    return "\n".join(lines)


def package_probe(package: str) -> str:
    """Python code that prints where `package` imports from, for `check_package` to read."""
    return _PACKAGE_PROBE.format(package=package)


def check_package(output: str, package: str, repo_dir: str) -> str:
    """Where the probe's `output` says `package` imports from; raises EnvironmentCheckError when that
    is not inside `repo_dir` or is reached through an import hook."""
    found = dict(re.findall(r"^wren-(package|package-finder)=(.*)$", output, flags=re.MULTILINE))
    where = found.get("package", "")
    repo = os.path.realpath(repo_dir)
    if not where:
        said = output.strip().splitlines()[-1] if output.strip() else "no output"
        raise EnvironmentCheckError(f"the package under test {package!r} does not import: {said}")
    if not where.startswith(repo + os.sep):
        raise EnvironmentCheckError(
            f"the package under test {package!r} imports from {where}, not from the workspace {repo}"
        )
    if found.get("package-finder"):
        raise EnvironmentCheckError(
            f"the package under test {package!r} imports through an import hook "
            f"({found['package-finder']}), not from the workspace by path: its source tree is not "
            "on sys.path, so tools that find modules by path do not see it"
        )
    return where


def verify(ws: Workspace, output: str, package: str, runner: str) -> dict[str, Any]:
    """Read the check's output; raise EnvironmentCheckError when something resolves elsewhere."""
    found = dict(re.findall(r"^wren-(python|runner|runner-head|package)=(.*)$", output, flags=re.MULTILINE))
    allowed = [str(p / "bin") for p in (ws.venv, ws.shared_venv) if p is not None]
    result = {
        "python": found.get("python", ""),
        "runner": found.get("runner", ""),
        "package": found.get("package", ""),
    }
    if allowed:
        for what in ("python", "runner") if runner and "/" not in runner else ("python",):
            where = result[what]
            label = "python" if what == "python" else f"the test runner {runner!r}"
            if not where:
                raise EnvironmentCheckError(
                    f"{label} is not installed in the instance's environment {ws.venv}"
                )
            pythonic = (
                what == "python" or runner.startswith("python") or "python" in found.get("runner-head", "")
            )
            if pythonic and not any(where.startswith(a + os.sep) for a in allowed):
                raise EnvironmentCheckError(
                    f"{label} resolves to {where}, outside the instance's environment {ws.venv}"
                )
    if package:
        check_package(output, package, ws.repo_dir)
    return result
