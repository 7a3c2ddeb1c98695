"""The clean baseline: which tests pass (every time), how long they take, and what code each reaches.

The suite runs once with line tracing and at least once more without; a test whose outcome differs
between runs is flaky and never listed in a task. The per-test lines give, for any mutation, the
tests that can notice it: only those are run to validate it.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.synth.testrun import PytestServer, RunResult, SynthError

CACHE_VERSION = 1
_WHITESPACE = re.compile(r"\s")


@dataclass
class Baseline:
    """Clean-run facts; `stable` tests pass in every clean run and can be named in a task."""

    tests: list[str]
    stable: list[str]
    flaky: list[str]
    unlisted: list[str]
    """Passing tests a task cannot name: ids with spaces (not parseable from `-rA`), or with subtests."""
    durations: dict[str, float]
    coverage: dict[str, dict[str, list[int]]]
    """test -> source file -> lines it ran."""
    outside: dict[str, list[int]]
    """source file -> lines run outside any test (imports, collection)."""
    suite_seconds: float = 0.0
    _index: dict[str, dict[int, list[int]]] = field(default_factory=dict, repr=False)
    _outside_sorted: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        position = {t: i for i, t in enumerate(self.stable)}
        for test, files in self.coverage.items():
            i = position.get(test)
            if i is None:
                continue
            for path, lines in files.items():
                by_line = self._index.setdefault(path, {})
                for line in lines:
                    by_line.setdefault(line, []).append(i)
        self._outside_sorted = {path: sorted(lines) for path, lines in self.outside.items()}

    def tests_reaching(self, path: str, start: int, end: int) -> list[str]:
        """Stable tests that ran any of lines start..end of `path`; every stable test when those
        lines also run at import time (a change there can reach any test)."""
        outside = self._outside_sorted.get(path, [])
        i = bisect.bisect_left(outside, start)
        if i < len(outside) and outside[i] <= end:
            return list(self.stable)
        by_line = self._index.get(path, {})
        hits: set[int] = set()
        for line in range(start, end + 1):
            hits.update(by_line.get(line, ()))
        return [self.stable[i] for i in sorted(hits)]

    def to_json(self) -> dict[str, Any]:
        return {
            "tests": self.tests,
            "stable": self.stable,
            "flaky": self.flaky,
            "unlisted": self.unlisted,
            "durations": self.durations,
            "coverage": self.coverage,
            "outside": self.outside,
            "suite_seconds": self.suite_seconds,
        }


def _listable(nodeid: str, subtests: set[str]) -> bool:
    return not _WHITESPACE.search(nodeid) and nodeid not in subtests


def _tail(text: str, n: int = 2500) -> str:
    return text[-n:].strip()


def combine(traced: RunResult, others: Sequence[RunResult]) -> Baseline:
    """A baseline from one traced clean run and further plain ones."""
    runs = [traced, *others]
    for run in runs:
        if run.status == "timeout":
            raise SynthError("the clean test suite did not finish in time; raise --suite-timeout")
        if run.status != "done":
            raise SynthError(f"the clean test suite crashed:\n{_tail(run.log)}")
    if not traced.outcomes:
        detail = "; ".join(
            e["message"].strip().splitlines()[-1] for e in traced.collect_errors if e["message"]
        )
        raise SynthError(
            "the clean test suite ran no tests"
            + (f" (collection errors: {detail})" if detail else "")
            + f" (pytest exit code {traced.exit_code}):\n{_tail(traced.log)}"
        )
    tests = sorted(set().union(*(run.outcomes for run in runs)))
    flaky = sorted(t for t in tests if len({run.outcomes.get(t) for run in runs}) > 1)
    subtests = set().union(*(run.subtests for run in runs))
    passing = [t for t in tests if t not in flaky and traced.passed(t)]
    stable = [t for t in passing if _listable(t, subtests)]
    unlisted = [t for t in passing if not _listable(t, subtests)]
    if not stable:
        raise SynthError(f"no test passes reliably on the clean code ({len(tests)} tests ran)")
    durations = {t: max(run.durations.get(t, 0.0) for run in runs) for t in tests}
    coverage = traced.lines
    if not any(coverage.get(t) for t in stable) and not traced.outside:
        raise SynthError(
            "the tests ran none of the repository's source files; are they importing an installed copy "
            "of the package instead of the repository (for a src layout, PYTHONPATH=src in --test-cmd)?"
        )
    return Baseline(
        tests=tests,
        stable=stable,
        flaky=flaky,
        unlisted=unlisted,
        durations=durations,
        coverage=coverage,
        outside=traced.outside,
        suite_seconds=max(run.elapsed for run in runs),
    )


def run_baseline(
    servers: Sequence[PytestServer], trace: list[str], *, runs: int = 2, timeout: float = 1800.0
) -> Baseline:
    """Run the clean suite `runs` times (the first traced), spread over the servers given."""
    if runs < 1:
        raise SynthError("the baseline needs at least one run")
    if not servers:
        raise SynthError("no test servers to run the baseline on")

    def one(i: int) -> RunResult:
        server = servers[i % len(servers)]
        return server.run(trace=trace if i == 0 else None, timeout=timeout, keep_log=True)

    if len(servers) == 1:
        results = [one(i) for i in range(runs)]
    else:
        # Runs on the same server go one after another; different servers in parallel.
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            lanes = [
                pool.submit(lambda lane: [one(i) for i in range(lane, runs, len(servers))], lane)
                for lane in range(min(len(servers), runs))
            ]
            by_index: dict[int, RunResult] = {}
            for lane, future in enumerate(lanes):
                for k, result in enumerate(future.result()):
                    by_index[lane + k * len(servers)] = result
        results = [by_index[i] for i in range(runs)]
    return combine(results[0], results[1:])


def load_cached(path: Path, key: dict[str, Any]) -> Baseline | None:
    """A baseline cached for the same snapshot, test command and interpreter, if any."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != CACHE_VERSION or data.get("key") != key:
        return None
    return Baseline(**data["baseline"])


def save_cached(path: Path, key: dict[str, Any], baseline: Baseline) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "key": key, "baseline": baseline.to_json()}))
    tmp.replace(path)
