"""The hint ladder on real synthesized tasks: each rung adds exactly its hint, the fix shows only at L4,
L0 names no test, file or line, and the judge's inputs never change; rewriting a tasks file at a rung
gives what synthesis at that rung gives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wren.synth.ladder import (
    LEVELS,
    LadderError,
    at_level,
    hint,
    missing_fields,
    mutation_change,
    split_lines,
    statement_at,
)
from wren.synth.statement import names_of_tests

WREN = [sys.executable, "-m", "wren.cli.main"]
JUDGE_INPUTS = (
    "instance_id",
    "repo",
    "base_commit",
    "patch",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "environment_setup_commit",
    "test_cmd",
    "version",
)


def _tasks(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _git_show(entry: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=entry, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def tasks(synth_run) -> list[dict]:
    out = _tasks(Path(synth_run["config"].output))
    assert len(out) >= 20
    return out


def _block(lines: list[str]) -> str:
    return "\n".join(line.strip() for line in lines)


def _flat(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


def test_each_rung_adds_exactly_its_hint(tasks):
    for task in tasks:
        assert task["hint_level"] == 1 and task["problem_statement"] == task["statement_l1"]
        texts = {level: statement_at(task, level) for level in LEVELS}
        assert texts[1] == task["problem_statement"]
        for level in (2, 3, 4):
            below, added = texts[level - 1].rstrip("\n"), hint(task, level)
            assert texts[level] == f"{below}\n\n{added}\n", (task["instance_id"], level)
        mutation = task["mutation"]
        place, lines, fix = hint(task, 2), hint(task, 3), hint(task, 4)
        # L2 names the file and the function and no line.
        assert f"`{mutation['file']}`" in place and f"`{mutation['function']}`" in place
        assert not re.search(r"\d", place.replace(mutation["file"], "").replace(mutation["function"], ""))
        # L3 names the line(s) as they read now, or the line after which something is missing.
        assert str(mutation["line"]) in lines
        shown = mutation["now"] or [mutation["after"]]
        assert all(line in lines for line in shown)
        # L4 holds every line as it must read.
        assert all(line in fix for line in mutation["must"])


def test_the_fix_never_shows_below_l4(tasks):
    for task in tasks:
        must = _block(task["mutation"]["must"])
        if not must:
            continue
        for level in (0, 1, 2, 3):
            assert must not in _flat(statement_at(task, level)), (task["instance_id"], level)
        assert must in _flat(statement_at(task, 4))


def test_the_hints_are_true_of_the_broken_and_the_clean_code(synth_run, tasks):
    """L3's lines are what the broken file holds there; putting L4's lines in their place gives the fix."""
    entry = synth_run["report"].repos_entry
    kinds = set()
    for task in tasks:
        mutation = task["mutation"]
        broken = split_lines(_git_show(entry, task["base_commit"], mutation["file"]))
        clean = split_lines(_git_show(entry, task["clean_commit"], mutation["file"]))
        start, now = mutation["line"], mutation["now"]
        if now:
            assert broken[start - 1 : start - 1 + len(now)] == now
            fixed = broken[: start - 1] + mutation["must"] + broken[start - 1 + len(now) :]
            kinds.add("several lines" if len(now) > 1 else "one line")
        else:
            assert broken[start - 1] == mutation["after"]
            fixed = broken[:start] + mutation["must"] + broken[start:]
            kinds.add("removal")
        assert fixed == clean, task["instance_id"]
    assert kinds == {"one line", "several lines", "removal"}


def test_l0_names_no_test_file_or_line(tasks):
    for task in tasks:
        text = statement_at(task, 0)
        names = names_of_tests(task["FAIL_TO_PASS"])
        assert names, task["instance_id"]
        for name in names:
            assert not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text), (task["instance_id"], name)
        assert ".py" not in text and task["mutation"]["file"] not in text
        assert not re.search(r"\bline \d+|:\d+:", text)
        assert "test_" not in text
    # Most L0 statements say what was observed and what was expected, as an issue would.
    observed = sum("where `" in statement_at(t, 0) or " raises " in statement_at(t, 0) for t in tasks)
    assert observed >= len(tasks) // 2


def test_judge_inputs_are_the_same_at_every_rung(tasks):
    for task in tasks:
        for level in LEVELS:
            rewritten = at_level(task, level)
            assert rewritten["hint_level"] == level
            assert {k: rewritten[k] for k in JUDGE_INPUTS} == {k: task[k] for k in JUDGE_INPUTS}
            assert rewritten["problem_statement"] == statement_at(task, level)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WREN, "synth", *args], capture_output=True, text=True, timeout=600, env=os.environ
    )


def test_rewriting_a_tasks_file_equals_synthesis_at_that_rung(synth_run, tmp_path: Path):
    """`wren synth --from-tasks` at L3 gives, byte for byte, the tasks `wren synth --hint-level 3` makes."""
    mutators = "remove_call,invert_if_else,flip_comparison"
    env_flaky = {"SYNTH_FIXTURE_FLAKY": str(tmp_path / "state")}
    (tmp_path / "state").mkdir()
    made = {}
    for level in (1, 3):
        out = tmp_path / f"l{level}" / "tasks.jsonl"
        proc = subprocess.run(
            [*WREN, "synth", str(synth_run["project"]), "-o", str(out), "--mutators", mutators]
            + ["-w", "2", "--quiet", "--hint-level", str(level), "--python", sys.executable],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **env_flaky},
        )
        assert proc.returncode == 0, proc.stderr
        made[level] = out
    direct = made[3].read_text()
    assert len(direct.splitlines()) >= 5
    assert all(t["hint_level"] == 3 for t in _tasks(made[3]))
    rewritten = tmp_path / "rewritten.jsonl"
    proc = _cli("--from-tasks", str(made[1]), "--hint-level", "3", "-o", str(rewritten))
    assert proc.returncode == 0, proc.stderr
    assert f"{len(direct.splitlines())} tasks at hint level 3" in proc.stderr
    assert rewritten.read_text() == direct
    # And back down: nothing of L1 was lost on the way up.
    back = tmp_path / "back.jsonl"
    assert _cli("--from-tasks", str(rewritten), "--hint-level", "1", "-o", str(back)).returncode == 0
    assert back.read_text() == made[1].read_text()


def test_older_tasks_files_get_a_clear_error_above_what_they_hold(synth_run, tmp_path: Path):
    old = []
    for task in _tasks(Path(synth_run["config"].output))[:3]:
        task = {k: v for k, v in task.items() if k not in ("statement_l0", "statement_l1", "hint_level")}
        task["mutation"] = {k: task["mutation"][k] for k in ("file", "function", "lines")}
        old.append(task)
    source = tmp_path / "old.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in old))
    assert missing_fields(old[0], 1) == [] and missing_fields(old[0], 2) == []
    assert missing_fields(old[0], 4) == ["mutation.line", "mutation.now", "mutation.must"]
    assert missing_fields(old[0], 0) == ["statement_l0"]

    out = tmp_path / "l2.jsonl"
    proc = _cli("--from-tasks", str(source), "--hint-level", "2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    l2 = _tasks(out)
    assert [t["problem_statement"] for t in l2] == [statement_at(t, 2) for t in old]
    assert all(t["statement_l1"] == o["problem_statement"] for t, o in zip(l2, old, strict=True))

    out3 = tmp_path / "l3.jsonl"
    proc = _cli("--from-tasks", str(source), "--hint-level", "3", "-o", str(out3))
    assert proc.returncode == 1
    assert "hint level 3 needs mutation.line, mutation.now" in proc.stderr
    assert old[0]["instance_id"] in proc.stderr
    assert not out3.exists()  # nothing half written
    # An L2 file cannot go back to L1 without its L1 statement.
    bare = {k: v for k, v in l2[0].items() if k != "statement_l1"}
    with pytest.raises(LadderError, match="needs statement_l1"):
        statement_at(bare, 1)


def test_cli_refuses_unclear_requests(synth_run, tmp_path: Path):
    tasks_file = synth_run["config"].output
    both = _cli(str(synth_run["project"]), "--from-tasks", tasks_file, "-o", str(tmp_path / "x.jsonl"))
    assert both.returncode == 2 and "either REPO_DIR" in both.stderr
    neither = _cli("-o", str(tmp_path / "x.jsonl"))
    assert neither.returncode == 2 and "either REPO_DIR" in neither.stderr
    bad = _cli("--from-tasks", tasks_file, "--hint-level", "5", "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "hint-level" in bad.stderr
    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep\n")
    proc = _cli("--from-tasks", tasks_file, "--hint-level", "2", "-o", str(existing))
    assert proc.returncode == 1 and "--overwrite" in proc.stderr
    assert existing.read_text() == "keep\n"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instance_id": "a"}\nnot json\n')
    proc = _cli("--from-tasks", str(broken), "--hint-level", "1", "-o", str(tmp_path / "y.jsonl"))
    assert proc.returncode == 1 and "broken.jsonl:2: not JSON" in proc.stderr


# The cases the fixture repository has no example of, on texts.


def test_a_replaced_line_with_quotes_and_backticks():
    broken = 'def f(x):\n    return "it\'s" + `x`\n'
    clean = "def f(x):\n    return 'it\"s' + ``` + x\n"
    change = mutation_change(broken, clean)
    assert change == {
        "line": 2,
        "now": ['    return "it\'s" + `x`'],
        "must": ["    return 'it\"s' + ``` + x"],
    }
    task = {
        "instance_id": "t",
        "statement_l1": "s\n",
        "mutation": {"file": "m.py", "function": "f", **change},
    }
    fix = hint(task, 4)
    assert "````python\n    return 'it\"s' + ``` + x\n````" in fix  # a fence its content cannot close
    assert "It must read:" in fix and "Line 2 of `m.py` is wrong" in hint(task, 3)


def test_a_statement_over_several_lines():
    broken = "def f(a, b):\n    return g(\n        a,\n        b - 1,\n    )\n"
    clean = "def f(a, b):\n    return g(\n        a,\n        b + 1,\n    )\n"
    assert mutation_change(broken, clean) == {
        "line": 4,
        "now": ["        b - 1,"],
        "must": ["        b + 1,"],
    }
    removed = "def f(a, b):\n    x = 1\n    return x\n"
    had = "def f(a, b):\n    x = 1\n    log(\n        a,\n    )\n    return x\n"
    change = mutation_change(removed, had)
    assert change == {"line": 2, "now": [], "must": ["    log(", "        a,", "    )"], "after": "    x = 1"}
    task = {
        "instance_id": "t",
        "statement_l1": "s\n",
        "mutation": {"file": "m.py", "function": "f", **change},
    }
    assert hint(task, 3).startswith("Something is missing after line 2 of `m.py`, which reads:")
    assert hint(task, 4) == "Insert after line 2:\n\n```python\n    log(\n        a,\n    )\n```"
    several = {**task, "mutation": {**task["mutation"], **mutation_change("a\nb\nc\n", "a\nB\nC\n")}}
    assert hint(several, 3).startswith("Lines 2-3 of `m.py` are wrong. They read now:")
    assert hint(several, 4) == "They must read:\n\n```python\nB\nC\n```"
    first = {**task, "mutation": {**task["mutation"], **mutation_change("b\n", "a\nb\n")}}
    assert hint(first, 3) == "Something is missing at the start of `m.py`."
    assert hint(first, 4) == "Insert at the start of the file:\n\n```python\na\n```"


def _eval(tasks: list[dict], repos: str, out: Path) -> tuple[dict, str, str]:
    out.mkdir(parents=True)
    preds = {t["instance_id"]: {"instance_id": t["instance_id"], "model_name_or_path": "x", "model_patch": t["patch"]}
             for t in tasks}  # fmt: skip
    (out / "preds.json").write_text(json.dumps(preds))
    (out / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [*WREN, "eval", "-p", str(out / "preds.json"), "-d", str(out / "tasks.jsonl"), "--repos", repos]
        + ["-o", str(out / "report.json"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "report.json").read_text()), (out / "report.html").read_text(), proc.stderr


def test_eval_reports_resolve_rates_per_hint_level(synth_run, tasks, tmp_path: Path):
    repos = str(Path(synth_run["report"].repos_entry).parent)
    sample = [at_level(tasks[0], 0), at_level(tasks[1], 4), at_level(tasks[2], 4)]
    report, html, stderr = _eval(sample, repos, tmp_path / "levels")
    assert report["per_hint_level"] == {
        "L0": {
            "total": 1,
            "resolved": 1,
            "unresolved": 0,
            "patch_failed": 0,
            "error": 0,
            "resolved_rate": 1.0,
        },
        "L4": {
            "total": 2,
            "resolved": 2,
            "unresolved": 0,
            "patch_failed": 0,
            "error": 0,
            "resolved_rate": 1.0,
        },
    }
    assert report["instances"][sample[1]["instance_id"]]["hint_level"] == 4
    assert "Per hint level" in html and "<td>L4</td>" in html
    assert "L4: resolved 2/2" in stderr
    # A dataset whose tasks carry no level shows nothing of levels.
    plain = [{k: v for k, v in t.items() if k != "hint_level"} for t in sample[:1]]
    report, html, stderr = _eval(plain, repos, tmp_path / "plain")
    assert "per_hint_level" not in report and "hint_level" not in report["instances"][plain[0]["instance_id"]]
    assert "Per hint level" not in html and "L0:" not in stderr
