"""Synthesis labels tests in the environment the judge builds: a test that passes only because Wren's
own virtualenv holds an optional package is never named in a task, and the judge resolves the
gold patch of what synthesis made."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.peers.wheelhouse import env_cache, shared_dirs  # noqa: F401 (fixtures)
from wren.bench.evaluate import EvalConfig, evaluate
from wren.synth.pipeline import SynthConfig, synthesize
from wren.synth.testrun import SynthError

# Installed where Wren runs, and no dependency of the tiny project below.
OPTIONAL = "wcwidth"

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tinycalc"
version = "1.0"
dependencies = [{dependencies}]

[tool.setuptools]
packages = ["tinycalc"]
package-dir = {{"" = "{where}"}}
"""

CORE = """def add(a, b):
    return a + b


def halve(n):
    return n // 2
"""

TESTS = f"""from tinycalc.core import add, halve


def test_add():
    assert add(2, 3) == 5


def test_halve():
    assert halve(9) == 4


def test_add_widths():
    import {OPTIONAL}

    assert add({OPTIONAL}.wcwidth("a"), 1) == 2
"""


def _project(root: Path, dependencies: str = "", where: str = ".") -> Path:
    package = root / where / "tinycalc"
    package.mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(dependencies=dependencies, where=where))
    (package / "__init__.py").write_text("")
    (package / "core.py").write_text(CORE)
    (root / "tests" / "test_core.py").write_text(TESTS)
    return root


def _config(project: Path, out: Path, **more) -> SynthConfig:
    settings = {"workers": 1, "progress": False, "mutators": ["change_operator"], **more}
    return SynthConfig(repo_dir=str(project), output=str(out / "tasks.jsonl"), **settings)


def _tasks(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]


def _named(tasks: list[dict]) -> set[str]:
    return {t for task in tasks for t in [*task["FAIL_TO_PASS"], *task["PASS_TO_PASS"]]}


@pytest.mark.skipif(importlib.util.find_spec(OPTIONAL) is None, reason=f"needs {OPTIONAL} where Wren runs")
def test_only_what_the_judge_sees_is_labelled_and_the_gold_patch_resolves(tmp_path: Path, env_cache: Path):  # noqa: F811
    project = _project(tmp_path / "tinycalc")
    # With Wren's own interpreter, the optional package makes the test pass: it is labelled.
    mine = tmp_path / "mine"
    synthesize(_config(project, mine, python=sys.executable, cache_dir=str(tmp_path / "c1")))
    assert "tests/test_core.py::test_add_widths" in _named(_tasks(mine))

    out = tmp_path / "judged"
    report = synthesize(_config(project, out, env_cache=str(env_cache), cache_dir=str(tmp_path / "c2")))
    tasks = _tasks(out)
    assert report.validated == len(tasks) > 0
    assert "tests/test_core.py::test_add_widths" not in _named(tasks)
    assert (report.tests, report.stable_tests) == (3, 2)

    task = tasks[0]
    preds = {task["instance_id"]: {"instance_id": task["instance_id"], "model_patch": task["patch"]}}
    config = EvalConfig(
        workspace={"repos": report.repos_entry.rsplit("/", 1)[0], "env_cache": str(env_cache)}
    )
    summary = evaluate([task], preds, config, tmp_path / "eval" / "report.json")
    assert summary["resolved_ids"] == [task["instance_id"]], summary
    # The judge found the environment synthesis built, and built no other.
    assert len([p for p in env_cache.iterdir() if p.is_dir()]) == 1


def test_an_environment_that_cannot_be_built_is_a_clear_error(tmp_path: Path, env_cache: Path):  # noqa: F811
    project = _project(tmp_path / "tinycalc", dependencies='"wren-no-such-dependency>=1"')
    with pytest.raises(SynthError) as caught:
        synthesize(_config(project, tmp_path / "out", env_cache=str(env_cache)))
    said = str(caught.value)
    assert "cannot build the environment the judge would test local/tinycalc in" in said
    assert "wren-no-such-dependency" in said and "--python" in said


def test_tests_that_would_import_an_installed_copy_are_refused(tmp_path: Path, env_cache: Path):  # noqa: F811
    """A src layout tested without PYTHONPATH=src imports the judge's installed checkout, where no
    mutation would be seen."""
    project = _project(tmp_path / "tinycalc", where="src")
    config = _config(project, tmp_path / "out", env_cache=str(env_cache), test_cmd="python -m pytest -rA")
    with pytest.raises(
        SynthError, match="would not test the repository's own code: .*'tinycalc' imports from"
    ):
        synthesize(config)
