"""Demonstrations without a teacher: expert runs written from a task's gold patch.

For each task with a gold patch, a fixed sequence of replies in the agent's own format: run the
failing tests, look at the code the patch touches, apply the fix with a real edit command made
from the patch, rerun the tests, submit. With checked edits the fix and the tests are one command,
and some demonstrations first make a slip (a plausible wrong edit, `slips.py`) that the tests
catch, undo it and then make the fix. The replies are executed by the ordinary agent loop in
the ordinary environment (`wren batch` with a scripted model), judged by `wren eval`, and kept
only when the judge resolves them. They teach the format and the working habit, not reasoning:
the THOUGHT lines are templates and the fix is known in advance.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from wren.bench.config import BenchWrenConfig
from wren.bench.rundir import RunDir
from wren.bench.specs import instance_spec
from wren.exceptions import ConfigError
from wren.learn.data.slips import chance, slip
from wren.validation import StrictModel

SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached"
# The tests a demonstration runs: the task shows three failing tests (synth's statements), so each id
# is one the model can copy from what it sees. With 20, the first reply was about 400 tokens, over
# the loop's 192-token reply limit, and a third of the trained tokens were ids copied from the task.
MAX_TEST_IDS = 3
# The submit command (77 characters) is named, as in the few-shot turns; a test command with its ids
# is not: a tuned model copied long ones over and over, in the THOUGHT and the block.
MAX_NAMED_COMMAND = 80
# A checked edit shows the end of the test output only: the summary says whether the fix worked, and
# the record stays short enough that the edits are a large share of its trained tokens.
CHECK_TAIL = 15
# What a test run's output says when the tests did not all pass (pytest's summary, a traceback).
_FAILING = re.compile(r"\b(failed|errors?|FAILED|ERROR|Traceback)\b")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    """One hunk of a patch as text to find and text to put in its place."""

    path: str
    start: int
    old: str
    new: str
    deleted: bool = False
    """The patch deletes the file (`+++ /dev/null`)."""


def _lines_kept(text: str) -> list[str]:
    # Not str.splitlines: a form feed or a lone carriage return inside a source line is no break.
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def parse_patch(patch: str) -> list[Hunk]:
    """The hunks of a unified diff (git's or difflib's)."""
    hunks: list[Hunk] = []
    path = source = ""
    deleted = False
    current: Hunk | None = None
    # Lines of the current hunk still to come, old and new side, from its header: a removed line
    # that reads "-- x" looks like a file header, and only the counts tell them apart.
    old_left = new_left = 0
    last = " "
    for line in _lines_kept(patch):
        if current is not None and line.startswith("\\"):
            # "\ No newline at end of file": the line before it had none.
            if last in "- " and current.old.endswith("\n"):
                current.old = current.old[:-1]
            if last in "+ " and current.new.endswith("\n"):
                current.new = current.new[:-1]
            continue
        if current is not None and (old_left > 0 or new_left > 0):
            last = line[:1] if line[:1] in "+-" else " "
            body = line[1:] if line[:1] in " +-" else line
            if last != "+":
                current.old += body
                old_left -= 1
            if last != "-":
                current.new += body
                new_left -= 1
            continue
        match = _HUNK.match(line)
        if match:
            current = Hunk(path, int(match.group(1)), "", "", deleted)
            hunks.append(current)
            old_left = int(match.group(2) if match.group(2) is not None else 1)
            new_left = int(match.group(4) if match.group(4) is not None else 1)
        elif line.startswith("--- "):
            source = line[4:].strip()
            source = source[2:] if source.startswith("a/") else source
        elif line.startswith("+++ "):
            target = line[4:].strip()
            deleted = target == "/dev/null"
            path = source if deleted else target[2:] if target.startswith("b/") else target
    return [h for h in hunks if h.old != h.new]


def _lines(text: str) -> list[str]:
    return [line.removesuffix("\n") for line in _lines_kept(text)]


def _changed_lines(hunk: Hunk) -> tuple[int, list[str], list[str]]:
    """The first changed line of `hunk` (1-based, in the old file), its old lines and its new lines."""
    old, new = _lines(hunk.old), _lines(hunk.new)
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return hunk.start + head, old[head : len(old) - tail], new[head : len(new) - tail]


def _sed_text(lines: list[str]) -> str:
    # sed's a/c text: a backslash is doubled, and every line but the last ends with one. Text that
    # starts with an empty line goes on the line after the command (`Nc\`, newline, text): in GNU
    # sed's one-line form (`Nc\text`) an empty first line makes `Nc\\`, which sed rejects, or, for
    # a lone empty line, a bare `Nc\` that deletes the line instead of blanking it.
    text = "\\\n".join(line.replace("\\", "\\\\") for line in lines)
    return "\n" + text if lines[0] == "" else text


def sed_script(hunks: list[Hunk]) -> str:
    """One sed script making every hunk of one file by line number: `Nc\\new`, `Na\\new` or `M,Nd`.

    Line numbers are those of the file as the agent sees it with `nl -ba` (sed numbers input
    lines, so several edits in one script do not shift each other). A small model's fix is then
    a copy of the line it read with the mistake changed, not a search string it must reproduce.
    """
    return "\n".join(_line_command(*_changed_lines(hunk)) for hunk in hunks)


def _line_command(first: int, old: list[str], new: list[str]) -> str:
    """The sed command putting `new` in place of the lines `old` from line `first`."""
    last = first + len(old) - 1
    span = f"{first}" if last == first else f"{first},{last}"
    if not new:
        return f"{span}d"
    if not old:
        return f"{first - 1}a\\{_sed_text(new)}" if first > 1 else f"1i\\{_sed_text(new)}"
    return f"{span}c\\{_sed_text(new)}"


def edit_command(hunks: list[Hunk]) -> str:
    """`sed -i` by line number for each file the hunks touch (`printf` for a new file, `rm` for a
    deleted one)."""
    by_path: dict[str, list[Hunk]] = {}
    for hunk in hunks:
        by_path.setdefault(hunk.path, []).append(hunk)
    commands = []
    for path, group in by_path.items():
        if group[0].deleted:
            commands.append(f"rm {shlex.quote(path)}")
        elif len(group) == 1 and group[0].start == 0 and not group[0].old:
            # A new file: sed has no line to address in it.
            parent = str(Path(path).parent)
            mkdir = f"mkdir -p {shlex.quote(parent)} && " if parent != "." else ""
            commands.append(f"{mkdir}printf %s {shlex.quote(group[0].new)} > {shlex.quote(path)}")
        else:
            commands.append(f"sed -i {shlex.quote(sed_script(group))} {shlex.quote(path)}")
    return " && ".join(commands)


class DemoSettings(StrictModel):
    """How demonstrations make their fix."""

    checked_edits: bool = False
    """The fix and the tests in one command (`sed -i ... FILE && TESTS`): the edit's own output says
    whether it worked, so a model that learns it sees a wrong edit fail and can try again within
    one step, instead of editing once and submitting."""
    slips: float = Field(default=0.0, ge=0.0, le=1.0)
    """With checked_edits: the share of demonstrations (a one-line fix, chosen by instance id) whose
    first edit is a slip (the wrong line rewritten as it reads, or the fix with one operator,
    keyword or number changed). The tests show it fails; the next reply undoes it (`git checkout
    -- FILE`) and makes the fix. The slip is never trained on, and a demonstration whose slip the
    tests do not catch is rejected."""

    @model_validator(mode="after")
    def _slips_need_checked_edits(self) -> DemoSettings:
        if self.slips and not self.checked_edits:
            raise ValueError("slips needs checked_edits=true (a slip is caught by the edit's own test run)")
        return self


def _test_command(inst: dict[str, Any], specs: dict[str, Any], tail: int = 40) -> str:
    """The instance's test command, narrowed to the tests the task is about when they are pytest ids."""
    spec = instance_spec(inst, specs)
    # Without a test patch the failing tests are already in the checkout; with one they arrive
    # only at judging time, so the demonstration runs the tests that exist.
    ids = inst["FAIL_TO_PASS"] if not inst.get("test_patch", "").strip() else []
    ids = ids or inst["PASS_TO_PASS"]
    if inst.get("test_cmd") and ids and all("::" in t for t in ids):
        # A test command that names its own directory runs the ids instead of it.
        base = re.sub(r"\s+tests/?\s*$", "", spec.test_cmd)
        return f"{base} {' '.join(shlex.quote(t) for t in ids[:MAX_TEST_IDS])} 2>&1 | tail -n {tail}"
    return f"{spec.test_cmd} 2>&1 | tail -n {tail}"


def _reply(thought: str, command: str) -> str:
    # The constrained grammar and the few-shot turns (slm.yaml) put the block on the line after the
    # THOUGHT, and a THOUGHT that ends by naming a short command makes the block its copy.
    if "\n" not in command and len(command) <= MAX_NAMED_COMMAND:
        thought = f"{thought.rstrip('.')} with: {command}"
    return f"THOUGHT: {thought}\n```bash\n{command}\n```"


# A read step shows the function from its `def` line when the change lies this close below it, else
# the lines just above the change (a long docstring would fill the window).
MAX_READ_LINES = 60
# A longer function is read from this many lines above the change.
LONG_READ_ABOVE = 20
READ_BEFORE = 5
READ_AFTER = 6


@dataclass
class Definition:
    """The function a change lies in: its name and the line of its `def` in the unpatched file."""

    name: str
    line: int


def enclosing_function(source: str, line: int) -> Definition | None:
    """The innermost function whose lines hold `line` (1-based) of Python `source`, or None."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    holding = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.lineno <= line <= (node.end_lineno or node.lineno)
    ]
    # Nested functions start below the ones that hold them: the innermost starts last.
    best = max(holding, key=lambda node: node.lineno, default=None)
    return Definition(best.name, best.lineno) if best is not None else None


def _read_command(hunks: list[Hunk], ranges: dict[str, list[tuple[int, int]]]) -> str:
    """`nl -ba FILE | sed -n 'A,Bp;...'` per file: `ranges`, then a few lines around each change
    they do not already show."""
    ranges = {path: list(spans) for path, spans in ranges.items()}
    for hunk in hunks:
        first, lines, _ = _changed_lines(hunk)
        end = first + max(len(lines), 1) - 1
        shown = ranges.setdefault(hunk.path, [])
        if not any(a <= first and end <= b for a, b in shown):
            shown.append((max(1, first - READ_BEFORE), end + READ_AFTER))
    return " && ".join(
        f"nl -ba {shlex.quote(path)} | sed -n '{';'.join(f'{a},{b}p' for a, b in spans)}'"
        for path, spans in ranges.items()
    )


def _look_commands(hunks: list[Hunk], sources: dict[str, str]) -> tuple[list[tuple[str, str]], str]:
    """The (thought, command) replies that find and read the changed code, and how the fix names it.

    With the unpatched source of a changed file, the model is shown a path it can follow
    from what it has seen: grep for the `def` of the function the change lies in (the failing
    test calls it, or the traceback names it), then read that function with line numbers from the
    `def` line grep printed. Without it (or for a change outside any function), the files the patch
    touches are read around the changes, as an expert who knows where to look would.
    """
    found = None
    for hunk in hunks:
        changed, old, _ = _changed_lines(hunk)
        source = sources.get(hunk.path)
        # An insertion has no old line: the line before it is where it goes.
        found = enclosing_function(source, changed if old else max(changed - 1, 1)) if source else None
        if found is not None:
            break
    if found is None:
        where = ", ".join(dict.fromkeys(h.path for h in hunks))
        return [(f"The failure points at {where}. I read the code there.", _read_command(hunks, {}))], where
    name, path = found.name, hunk.path
    last = max(changed + len(old) - 1, changed) + READ_AFTER
    start = found.line if last - found.line < MAX_READ_LINES else max(found.line, changed - LONG_READ_ABOVE)
    return [
        (
            f"The failing test exercises `{name}`. I find where it is defined.",
            f'grep -rn "def {name}(" --include="*.py" . | head -n 20',
        ),
        (
            f"`{name}` is defined in {path} at line {found.line}. I read it with line numbers.",
            _read_command(hunks, {path: [(start, last)]}),
        ),
    ], f"`{name}` in {path}"


def slip_command(hunks: list[Hunk], key: str) -> str | None:
    """A `sed -i` that makes a slip in place of the fix (see `slips.slip`), or None: only a fix of
    one line in one hunk gets one."""
    if len(hunks) != 1 or hunks[0].deleted or (hunks[0].start == 0 and not hunks[0].old):
        return None
    first, old, new = _changed_lines(hunks[0])
    if len(new) != 1 or len(old) > 1:
        return None
    wrong = slip(old[0] if old else None, new[0], key)
    if wrong is None:
        return None
    return f"sed -i {shlex.quote(_line_command(first, old, [wrong]))} {shlex.quote(hunks[0].path)}"


def takes_slip(instance_id: str, settings: DemoSettings) -> bool:
    return chance(f"slip:{instance_id}") < settings.slips


def demo_replies(
    inst: dict[str, Any],
    specs: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
    settings: DemoSettings | None = None,
) -> list[str | dict[str, Any]]:
    """The replies of an expert run for `inst`, made from its gold patch (a reply not to be trained
    on is a dict with `train: False`).

    `sources`: the unpatched text of files the patch changes, by path; with them the
    demonstration finds the changed function by grep instead of knowing where to look.
    """
    from wren.bench.datasets import normalise_instance

    inst = normalise_instance(inst, where="demos")
    hunks = parse_patch(inst["patch"])
    if not hunks:
        raise ConfigError(f"instance {inst.get('instance_id')!r} has no gold patch to demonstrate")
    settings = settings or DemoSettings()
    tests = _test_command(inst, specs or {})
    looks, where = _look_commands(hunks, sources or {})
    replies: list[str | dict[str, Any]] = [
        _reply("I start by running the failing tests to see the failure for myself.", tests),
        *(_reply(thought, command) for thought, command in looks),
    ]
    fix = edit_command(hunks)
    if not settings.checked_edits:
        return [
            *replies,
            _reply(f"I see the mistake in {where}. I fix it by line number with sed.", fix),
            _reply("Now I rerun the tests to check that the fix works and breaks nothing.", tests),
            _reply("The tests pass. I submit the change.", SUBMIT),
        ]
    check = _test_command(inst, specs or {}, tail=CHECK_TAIL)
    first_try = f"I see the mistake in {where}. I fix it by line number with sed and rerun the tests."
    wrong = slip_command(hunks, inst["instance_id"]) if takes_slip(inst["instance_id"], settings) else None
    if wrong is not None:
        undo = f"git checkout -- {shlex.quote(hunks[0].path)}"
        replies += [
            {"content": _reply(first_try, f"{wrong} && {check}"), "train": False},
            _reply(
                "The tests still fail, so that edit was not the fix. I undo it and change the line again.",
                f"{undo} && {fix} && {check}",
            ),
        ]
    else:
        replies.append(_reply(first_try, f"{fix} && {check}"))
    return [*replies, _reply("The tests pass. I submit the change.", SUBMIT)]


def slip_caught(messages: list[dict[str, Any]]) -> bool:
    """Whether the output after every reply not trained on (a slip) shows failing tests."""
    for i, message in enumerate(messages):
        if message.get("role") == "assistant" and message.get("train") is False:
            after = messages[i + 1] if i + 1 < len(messages) else {}
            if not _FAILING.search(str(after.get("content") or "")):
                return False
    return True


def original_sources(inst: dict[str, Any], repos_dir: str | Path) -> dict[str, str]:
    """The unpatched text, at the instance's base commit, of the files its gold patch changes."""
    from wren.bench.repos import WorkspaceError, find_repo

    try:
        source = find_repo(repos_dir, inst.get("repo", ""))
    except WorkspaceError:
        return {}
    texts = {}
    for path in dict.fromkeys(h.path for h in parse_patch(inst.get("patch", ""))):
        shown = subprocess.run(
            ["git", "-C", str(source), "show", f"{inst.get('base_commit') or 'HEAD'}:{path}"],
            capture_output=True,
            text=True,
            errors="replace",
        )
        if shown.returncode == 0:
            texts[path] = shown.stdout
    return texts


def write_demos(
    instances: list[dict[str, Any]],
    config: BenchWrenConfig,
    output_dir: str | Path,
    *,
    workers: int = 1,
    eval_timeout: float | None = None,
    settings: DemoSettings | None = None,
) -> dict[str, Any]:
    """Run the expert replies of every instance with a gold patch, judge them, keep the resolved
    (and, with slips, those whose slip the tests caught).

    `output_dir` ends up a run directory (per-instance trajectories, preds.json) holding only the
    resolved demonstrations, with the judge's report in `report.json` and the others under
    `rejected/`. Finished instances are skipped when run again.
    """
    from wren.bench.batch import PredictionsStore, process_instance
    from wren.bench.datasets import normalise_instance
    from wren.bench.evaluate import evaluate, judge_config

    instances = [normalise_instance(inst, where="demos") for inst in instances]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    store = PredictionsStore(output_dir)
    rejected_dir = output_dir / "rejected"
    rejected = (
        set(json.loads((rejected_dir / "ids.json").read_text()))
        if (rejected_dir / "ids.json").is_file()
        else set()
    )
    todo, skipped = [], []
    for inst in instances:
        if inst["instance_id"] in store.done() or inst["instance_id"] in rejected:
            continue
        try:
            repos = config.bench.workspace.repos
            sources = original_sources(inst, repos) if repos else {}
            todo.append((inst, demo_replies(inst, config.bench.specs, sources, settings)))
        except ConfigError:
            skipped.append(inst["instance_id"])
    from concurrent.futures import ThreadPoolExecutor

    def run_one(item: tuple[dict[str, Any], list[str | dict[str, Any]]]) -> dict[str, Any]:
        inst, replies = item
        cfg = config.model_copy(deep=True)
        cfg.model.model_class = "scripted"
        cfg.model.name = "wren-demo"
        cfg.model.outputs = replies
        # The script is as long as it is: the limits meant for a model's runs do not apply.
        cfg.agent.step_limit = 0
        cfg.agent.cost_limit = 0
        if not cfg.bench.workspace.root:
            cfg.bench.workspace.root = str(output_dir / ".workspaces")
        return process_instance(inst, cfg, output_dir)

    results = []
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        results = list(pool.map(run_one, todo))
    for result in results:
        store.record(result)
    by_id = {inst["instance_id"]: inst for inst in instances}
    fresh = {r["instance_id"]: store.preds[r["instance_id"]] for r in results}
    run = RunDir(output_dir)
    report_path = run.report
    previous = run.read_verdicts(run.judged_report())
    verdicts = dict(previous)
    if fresh:
        eval_config = judge_config(
            config, workers=max(workers, 1), timeout=eval_timeout or config.bench.eval_timeout
        )
        summary = evaluate([by_id[i] for i in fresh], fresh, eval_config, RunDir(output_dir / "eval").report)
        verdicts.update(summary["instances"])
    from wren.trajectory import read_run

    # Only demonstrations with slips have a check to fail: without them no trajectory is read again.
    paths = run.trajectories() if settings is not None and settings.slips else {}
    uncaught = {i for i in fresh if i in paths and not slip_caught(read_run(paths[i]).messages)}
    newly_rejected = sorted(
        i for i in fresh if verdicts.get(i, {}).get("outcome") != "resolved" or i in uncaught
    )
    if newly_rejected:
        rejected_dir.mkdir(exist_ok=True)
        for instance_id in newly_rejected:
            target = rejected_dir / instance_id
            shutil.rmtree(target, ignore_errors=True)
            if run.instance_dir(instance_id).exists():
                shutil.move(str(run.instance_dir(instance_id)), str(target))
        store.forget(set(newly_rejected))
        rejected |= set(newly_rejected)
        (rejected_dir / "ids.json").write_text(json.dumps(sorted(rejected)))
    kept = {i: v for i, v in verdicts.items() if i in store.done()}
    report = {
        "resolved_ids": sorted(kept),
        "rejected_ids": sorted(rejected),
        "no_gold_patch_ids": skipped,
        "instances": kept,
    }
    report_path.write_text(json.dumps(report, indent=2))
    return report
