"""Test files pytest could not collect because of the environment, not the patch.

An installed package that raises while a test module imports it (a binding whose native library
is missing: `RuntimeError: Cannot find the ecCodes library`) stops the whole file from being
collected, and every test in it counts as failed. That says nothing about the patch when the
import chain runs through no file the patch changed and ends inside an installed package.
"""

from __future__ import annotations

import re

from wren.bench.specs import files_in_patch

_HEADER = re.compile(r"^_{3,} ERROR collecting (\S+) _{3,}$", re.MULTILINE)
_FRAME = re.compile(r"^(\S+\.py):\d+: in ", re.MULTILINE)
_ERROR = re.compile(r"^E\s+(\S.*)$", re.MULTILINE)
_INSTALLED = ("/site-packages/", "/dist-packages/")


def _sections(output: str) -> list[tuple[str, str]]:
    """(test file, its traceback) for each `ERROR collecting` section of pytest's output."""
    heads = list(_HEADER.finditer(output))
    sections = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(output)
        body = re.split(r"^={3,}", output[head.end() : end], maxsplit=1, flags=re.MULTILINE)[0]
        sections.append((head.group(1), body))
    return sections


def broken_by_environment(output: str, patch: str) -> dict[str, str]:
    """{test file: the error} for each test file that failed to collect because an installed
    package raised, reached through no file `patch` changes."""
    changed = set(files_in_patch(patch)) if patch.strip() else set()
    broken = {}
    for test_file, body in _sections(output):
        frames, errors = _FRAME.findall(body), _ERROR.findall(body)
        if not frames or not errors or not any(d in frames[-1] for d in _INSTALLED):
            continue
        if any(frame.removeprefix("./") in changed for frame in frames):
            continue
        broken[test_file] = errors[-1].strip()
    return broken


def failures_from_environment(output: str, patch: str, failing: list[str]) -> dict[str, str]:
    """The broken test files (see `broken_by_environment`) when every failing test is in one of
    them, else {}: a test that ran and failed is the patch's to answer for."""
    broken = broken_by_environment(output, patch)
    if not broken or not failing:
        return {}
    files = {test.split("::")[0] for test in failing}
    return broken if files <= set(broken) else {}
