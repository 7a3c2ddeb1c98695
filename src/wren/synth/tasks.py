"""Task records in SWE-bench's format, and the fix patch of each."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from wren.synth.ladder import DEFAULT_LEVEL, mutation_change, statement_at
from wren.synth.snapshot import Snapshot
from wren.synth.validate import Verdict

NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(path: str, before: str, after: str) -> str:
    """A git-style patch turning `before` into `after` for one file (what `git apply` takes)."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    out = [f"diff --git a/{path} b/{path}\n"]
    for line in difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", n=3):
        if line.startswith(("---", "+++")):
            out.append(line.rstrip("\n") + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:  # the last line of a file without a final newline
            out.append(line + "\n" + NO_NEWLINE)
    return "".join(out) if len(out) > 1 else ""


def task_version(snapshot: Snapshot) -> str:
    """The `version` of every task made from `snapshot` (specs and overrides are chosen by it)."""
    return f"synth-{snapshot.commit[:8]}"


def instance_id(snapshot: Snapshot, verdict: Verdict) -> str:
    return f"{snapshot.owner}__{snapshot.name}-{verdict.candidate.id}"


def task_record(
    snapshot: Snapshot,
    verdict: Verdict,
    *,
    base_commit: str,
    patch: str,
    test_cmd: str,
    statement: str,
    statement_source: str,
    issue: str,
    hint_level: int = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """One SWE-bench instance; `base_commit` is the broken state, `patch` the fix.

    `statement` is the L1 statement and `issue` the L0 one; the problem statement is written at
    `hint_level` (see `wren.synth.ladder`), and the record keeps what every other rung needs.
    """
    candidate = verdict.candidate
    record = {
        "instance_id": instance_id(snapshot, verdict),
        "repo": snapshot.repo,
        "base_commit": base_commit,
        "patch": patch,
        "test_patch": "",
        "problem_statement": statement,
        "hints_text": "",
        "FAIL_TO_PASS": sorted(verdict.fail_to_pass),
        "PASS_TO_PASS": sorted(verdict.pass_to_pass),
        "version": task_version(snapshot),
        "environment_setup_commit": base_commit,
        "test_cmd": test_cmd,
        "created_at": "",
        "mutator": candidate.mutator,
        "mutation": {
            "file": candidate.path,
            "function": candidate.function,
            "lines": [candidate.start_line, candidate.end_line],
            **mutation_change(verdict.broken_text, candidate.file.text),
        },
        "clean_commit": snapshot.commit,
        "statement_source": statement_source,
        "statement_l0": issue,
        "statement_l1": statement,
        "hint_level": hint_level,
    }
    record["problem_statement"] = statement_at(record, hint_level)
    return record


def read_instance_ids(path: Path) -> set[str]:
    """Instance ids already in a tasks file (to resume); a torn last line is ignored."""
    ids: set[str] = set()
    if not path.is_file():
        return ids
    for line in path.read_text().splitlines():
        try:
            ids.add(json.loads(line)["instance_id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return ids
