"""The hint ladder: one task's problem statement at five rungs, each adding one hint to the one below.

- L0: an issue as a user would file it: what goes wrong, with no test, file or line named;
- L1: the failing tests, their messages and the package frames of their tracebacks;
- L2: L1 and the file and function that hold the mistake;
- L3: L2 and the lines as they read now, named as wrong (for a removed statement: the line after
  which something is missing);
- L4: L3 and the lines as they must read.

Only the statement changes between rungs; the judge's inputs (tests, patches, commits) never do. A
task record carries what every rung needs (`statement_l0`, `statement_l1` and the `mutation`
fields), so a tasks file can be rewritten at another rung without synthesizing it again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wren.exceptions import WrenError

LEVELS = (0, 1, 2, 3, 4)
DEFAULT_LEVEL = 1
RUNG_NAMES = {
    0: "issue (no test, file or line named)",
    1: "failing tests and their messages",
    2: "+ the file and function",
    3: "+ the wrong lines as they read now",
    4: "+ the lines as they must read",
}
# What each rung reads from a task, beyond what the rungs below it read.
_NEEDS: dict[int, tuple[str, ...]] = {
    0: ("statement_l0",),
    1: ("statement_l1",),
    2: ("mutation.file", "mutation.function"),
    3: ("mutation.line", "mutation.now"),
    4: ("mutation.must",),
}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class LadderError(WrenError):
    """A task cannot be written at the rung asked for."""


def split_lines(text: str) -> list[str]:
    """Lines as Python's tokenizer counts them (not str.splitlines, which also splits on \\f and more)."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def mutation_change(broken: str, clean: str) -> dict[str, Any]:
    """Where the broken file differs from the clean one, as one region (all changed lines at once).

    `line` is the first changed line of the broken file (1-based); `now` the lines there as they read
    in the broken file, `must` the lines that belong there. For a removal `now` is empty, `line` is
    the line after which the missing lines go (0: the file's start) and `after` is that line's text.
    """
    old, new = split_lines(broken), split_lines(clean)
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    now, must = old[start:end_old], new[start:end_new]
    if now:
        return {"line": start + 1, "now": now, "must": must}
    return {"line": start, "now": [], "must": must, "after": old[start - 1] if start else ""}


def _field(task: dict[str, Any], name: str) -> Any:
    value: Any = task
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _l1(task: dict[str, Any]) -> str | None:
    """The L1 statement: its own field, or the problem statement of a task written before levels existed."""
    if task.get("statement_l1") is not None:
        return task["statement_l1"]
    if task.get("hint_level", DEFAULT_LEVEL) == DEFAULT_LEVEL:
        return task.get("problem_statement")
    return None


def missing_fields(task: dict[str, Any], level: int) -> list[str]:
    """The fields rung `level` needs that the task lacks."""
    needs = list(_NEEDS[0]) if level == 0 else [f for rung in range(1, level + 1) for f in _NEEDS[rung]]
    missing = []
    for name in needs:
        value = _l1(task) if name == "statement_l1" else _field(task, name)
        if value is None:
            missing.append(name)
    removal = level >= 3 and "mutation.now" not in missing and not _field(task, "mutation.now")
    if removal and _field(task, "mutation.after") is None:
        missing.append("mutation.after")
    return missing


def _fence(lines: list[str]) -> str:
    """A fenced code block that no run of backticks inside the lines can close early."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n" + "\n".join(lines) + f"\n{fence}"


def _span(line: int, count: int) -> str:
    return f"Line {line}" if count == 1 else f"Lines {line}-{line + count - 1}"


def hint(task: dict[str, Any], level: int) -> str:
    """The text rung `level` (2, 3 or 4) adds to the rung below it."""
    mutation = task["mutation"]
    path = mutation["file"]
    if level == 2:
        return f"The mistake is in `{path}`, in the function `{mutation['function']}`."
    now, line = list(mutation["now"]), int(mutation["line"])
    if level == 3:
        if not now:
            if line == 0:
                return f"Something is missing at the start of `{path}`."
            return f"Something is missing after line {line} of `{path}`, which reads:\n\n" + _fence(
                [mutation["after"]]
            )
        verb = "is wrong. It reads" if len(now) == 1 else "are wrong. They read"
        return f"{_span(line, len(now))} of `{path}` {verb} now:\n\n" + _fence(now)
    if level == 4:
        must = list(mutation["must"])
        if not now:
            where = "at the start of the file" if line == 0 else f"after line {line}"
            return f"Insert {where}:\n\n" + _fence(must)
        if not must:
            return "They must be removed." if len(now) > 1 else "It must be removed."
        return ("It must read:" if len(now) == 1 else "They must read:") + "\n\n" + _fence(must)
    raise ValueError(f"rung {level} adds no hint of its own")


def statement_at(task: dict[str, Any], level: int) -> str:
    """The task's problem statement at rung `level`; LadderError names what a task lacks for it."""
    if level not in LEVELS:
        raise LadderError(f"hint level {level} does not exist (0 to 4)")
    missing = missing_fields(task, level)
    if missing:
        raise LadderError(
            f"{task.get('instance_id', '?')}: hint level {level} needs {', '.join(missing)}, which this "
            "task lacks (it was written by an older `wren synth`; synthesize it again to get every level)"
        )
    if level == 0:
        return task["statement_l0"]
    text = str(_l1(task)).rstrip("\n")
    for rung in range(2, level + 1):
        text += "\n\n" + hint(task, rung)
    return text + "\n"


def at_level(task: dict[str, Any], level: int) -> dict[str, Any]:
    """A copy of the task whose statement is at rung `level`; everything the judge reads is unchanged."""
    statement = statement_at(task, level)
    out = dict(task)
    if out.get("statement_l1") is None:
        out["statement_l1"] = _l1(task)
    out["problem_statement"] = statement
    out["hint_level"] = level
    return out


def read_tasks(path: str | Path) -> list[dict[str, Any]]:
    """Every task of a JSONL tasks file; a line that is not a JSON object is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise LadderError(f"tasks file {path} does not exist")
    tasks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            task = json.loads(line)
        except json.JSONDecodeError as e:
            raise LadderError(f"{path}:{number}: not JSON ({e.msg})") from None
        if not isinstance(task, dict):
            raise LadderError(f"{path}:{number}: not a task (a JSON object)")
        tasks.append(task)
    return tasks


def write_tasks(tasks: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write tasks as JSONL, atomically (the file is whole or as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    with open(tmp, "w") as f:
        for task in tasks:
            f.write(json.dumps(task) + "\n")
            count += 1
    tmp.replace(path)
    return count


def rewrite_tasks(source: str | Path, level: int, output: str | Path, *, overwrite: bool = False) -> int:
    """Write every task of `source` at rung `level` to `output`; returns how many. Every task is
    checked before anything is written, so a file with one task that lacks a field is not half done."""
    output = Path(output)
    if output.exists() and not overwrite and output.resolve() != Path(source).resolve():
        raise LadderError(f"{output} exists; give --overwrite to replace it")
    rewritten = [at_level(task, level) for task in read_tasks(source)]
    return write_tasks(rewritten, output)
