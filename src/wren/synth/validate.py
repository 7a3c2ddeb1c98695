"""Validating one candidate: apply it in a private copy, run the tests that reach it, keep it only if
some of them fail, and fail again on a rerun.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.synth.baseline import Baseline
from wren.synth.discover import Candidate
from wren.synth.snapshot import Snapshot, export
from wren.synth.testrun import PytestServer, TestCommand

VALIDATED = "validated"
# Why a candidate was dropped.
SYNTAX, TIMEOUT, CRASHED, PYTEST_ERROR, NO_FAILING, FLAKY, NO_PASS_TO_PASS, DUPLICATE = (
    "syntax_error",
    "timeout",
    "crashed",
    "pytest_error",
    "no_failing_test",
    "flaky",
    "no_pass_to_pass",
    "duplicate",
)


@dataclass(frozen=True)
class ValidationSettings:
    """How long a validation run may take and how often failures are confirmed."""

    timeout: float = 60.0
    """Most seconds one run may take."""
    min_timeout: float = 3.0
    """Seconds every run may take, however fast its tests were on the clean code."""
    slowdown: float = 10.0
    """A run may take this many times its tests' clean duration (plus min_timeout)."""
    confirm_runs: int = 1
    """Reruns of the failing tests; a test must fail in each to count."""

    def timeout_for(self, durations: float) -> float:
        return min(self.timeout, self.min_timeout + self.slowdown * durations)


@dataclass
class Verdict:
    """The outcome of validating one candidate."""

    candidate: Candidate
    status: str
    reason: str = ""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    collect_errors: list[dict[str, str]] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    selected: int = 0
    broken_text: str = ""
    elapsed: float = 0.0

    @property
    def validated(self) -> bool:
        return self.status == VALIDATED


class Workspace:
    """A private copy of the clean snapshot with its own pytest server."""

    # Every write gets a new mtime, so Python never trusts a byte-code file of another version.
    _stamps = itertools.count(1_500_000_000)

    def __init__(
        self,
        index: int,
        snapshot: Snapshot,
        root: Path,
        python: str,
        command: TestCommand,
        own_packages: frozenset[str],
        environ: dict[str, str] | None = None,
    ):
        self.index = index
        self.dir = export(snapshot, snapshot.commit, Path(root) / f"copy{index}")
        self.server = PytestServer(
            python,
            self.dir,
            command,
            Path(root) / f"scratch{index}",
            own_packages=own_packages,
            pycache=Path(root) / "pycache",
            environ=environ,
        )

    def _stamp(self, path: Path) -> None:
        stamp = next(self._stamps)
        os.utime(path, (stamp, stamp))

    def write(self, relpath: str, text: str) -> None:
        path = self.dir / relpath
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        self._stamp(path)

    def close(self) -> None:
        self.server.close()


def _compiles(text: str, path: str) -> bool:
    try:
        compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def validate(
    candidate: Candidate, workspace: Workspace, baseline: Baseline, settings: ValidationSettings
) -> Verdict:
    """Apply the candidate in the workspace, run its tests, restore the file, and judge."""
    started = time.monotonic()
    verdict = Verdict(candidate=candidate, status="dropped")
    broken = candidate.mutated_text()
    verdict.broken_text = broken
    if not _compiles(broken, candidate.path):
        verdict.reason = SYNTAX
        return verdict
    selected = baseline.tests_reaching(candidate.path, candidate.start_line, candidate.end_line)
    verdict.selected = len(selected)
    timeout = settings.timeout_for(sum(baseline.durations.get(t, 0.0) for t in selected))
    workspace.write(candidate.path, broken)
    try:
        first = workspace.server.run(select_ids=selected, timeout=timeout)
        failing = [t for t in selected if not first.passed(t)]
        confirmed = list(failing)
        reason = _problem(first)
        if not reason and len(failing) == len(baseline.stable):
            reason = NO_PASS_TO_PASS  # everything broke (an import-time error): no rerun can change that
        for _ in range(settings.confirm_runs):
            if reason or not confirmed:
                break
            again = workspace.server.run(select_ids=confirmed, timeout=timeout)
            reason = _problem(again)
            confirmed = [t for t in confirmed if not again.passed(t)]
    finally:
        workspace.write(candidate.path, candidate.file.text)
        verdict.elapsed = time.monotonic() - started
    verdict.failures = {t: first.failures[t] for t in confirmed if t in first.failures}
    verdict.collect_errors = first.collect_errors
    verdict.flaky = [t for t in failing if t not in confirmed]
    if reason:
        verdict.reason = reason
    elif not failing:
        verdict.reason = NO_FAILING
    elif not confirmed:
        verdict.reason = FLAKY
    else:
        failed = set(failing)
        verdict.fail_to_pass = confirmed
        verdict.pass_to_pass = [t for t in baseline.stable if t not in failed]
        if verdict.pass_to_pass:
            verdict.status = VALIDATED
        else:
            verdict.reason = NO_PASS_TO_PASS
    return verdict


def _problem(run) -> str:
    if run.status == "timeout":
        return TIMEOUT
    if run.status != "done":
        return CRASHED
    if run.exit_code in (3, 4):  # pytest's internal error / usage error: nothing to learn from
        return PYTEST_ERROR
    return ""
