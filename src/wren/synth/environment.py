"""The environment a synthesis run labels tests in.

A task's FAIL_TO_PASS and PASS_TO_PASS are only right if the judge (`wren eval`) sees the same
outcomes, so by default the tests run in the environment the judge builds for a synthesized task:
its virtualenv (pytest and the repository's declared dependencies, the repository installed, from
the judge's environment cache) and its allowlisted variables. Packages that happen to be installed
where Wren runs are not there, so no test that passes only thanks to them is labelled. An
interpreter the user names (`--python`) is used as it is, with this process's variables.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wren.bench.repos import WorkspaceError
from wren.bench.selfcheck import EnvironmentCheckError, check_package, package_probe
from wren.bench.specs import instance_spec
from wren.bench.workspace import WorkspaceConfig, open_workspace
from wren.exceptions import ConfigError
from wren.synth.snapshot import Snapshot
from wren.synth.tasks import task_version
from wren.synth.testrun import SynthError
from wren.synth.validate import Workspace


@dataclass(frozen=True)
class SuiteEnvironment:
    """Where the tests run: the interpreter and the variables they see."""

    python: str
    environ: dict[str, str] | None
    """The only variables the tests see (None: this process's)."""
    key: str
    """What identifies the environment in the baseline's cache key."""
    judge: bool
    """Built as the judge builds it (not chosen by the user)."""


@contextlib.contextmanager
def suite_environment(
    snapshot: Snapshot, test_cmd: str, *, python: str, env_cache: str, scratch: Path
) -> Iterator[SuiteEnvironment]:
    """The user's `python`, or else the judge's environment for the snapshot's tasks, which lasts as
    long as the context (its checkout and thin virtualenv live in `scratch`; the shared virtualenv
    stays in `env_cache`, '' = the judge's default cache)."""
    if python:
        if not shutil.which(python):
            raise SynthError(f"--python {python} is not an executable")
        yield SuiteEnvironment(python, None, python, judge=False)
        return
    inst = {
        "instance_id": f"{snapshot.owner}__{snapshot.name}-environment",
        "repo": snapshot.repo,
        "version": task_version(snapshot),
        "base_commit": snapshot.commit,
        "test_cmd": test_cmd,
    }
    workspace = WorkspaceConfig(repos=str(snapshot.entry.parent), env_cache=env_cache, root=str(scratch))
    with contextlib.ExitStack() as stack:
        try:
            ws = stack.enter_context(
                open_workspace(
                    inst, instance_spec(inst), {"environment_class": "local"}, workspace, judge=True
                )
            )
        except (WorkspaceError, ConfigError, OSError, subprocess.SubprocessError) as e:
            raise SynthError(
                f"cannot build the environment the judge would test {snapshot.repo} in "
                f"(pytest and the repository's declared dependencies): {e}\n"
                "fix the repository's packaging, or name an interpreter that has them with --python"
            ) from e
        if ws.venv is None or ws.shared_venv is None:
            raise SynthError(
                f"the judge made no virtualenv for {snapshot.repo}: {' '.join(ws.setup_log)[-1000:]}"
            )
        yield SuiteEnvironment(
            str(ws.venv / "bin" / "python"), ws.test_environ, f"judge:{ws.shared_venv.name}", judge=True
        )


def check_imports_from_copy(workspace: Workspace, packages: frozenset[str]) -> None:
    """Raise SynthError unless each of the repository's packages imports from the workspace copy
    (a mutation in the copy would otherwise go unseen), as the judge checks its checkout."""
    server = workspace.server
    for name in sorted(packages):
        if not any((workspace.dir / root / name / "__init__.py").is_file() for root in (".", "src")):
            continue  # a module or namespace of the repository's, imported only by what uses it
        proc = subprocess.run(
            [server.python, "-c", package_probe(name)],
            cwd=workspace.dir,
            env=server.environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            check_package(proc.stdout + proc.stderr, name, str(workspace.dir))
        except EnvironmentCheckError as e:
            raise SynthError(f"the tests would not test the repository's own code: {e}") from e
