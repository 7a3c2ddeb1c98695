"""Demonstrations from gold patches on a real git repo: run by the agent loop, judged by `wren eval`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.fixture_repo import build_calc_repo, write_jsonl
from tests.peers.git_repo import make_git_repo
from wren.bench.config import BenchWrenConfig
from wren.config.assemble import assemble_config
from wren.learn.data.demos import (
    MAX_NAMED_COMMAND,
    Definition,
    demo_replies,
    edit_command,
    enclosing_function,
    original_sources,
    parse_patch,
    write_demos,
)
from wren.learn.data.episodes import load_episodes
from wren.learn.data.rewards import RewardConfig, reward_terms
from wren.models.actions import parse_text_action

PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch) -> tuple[Path, list[dict]]:
    monkeypatch.setenv("PATH", PATH_ENV)  # the instances' `python3 -m pytest` finds pytest
    good = build_calc_repo(tmp_path / "repos")
    # A gold patch that does not fix the bug: its demonstration runs, and the judge rejects it.
    wrong = {
        **good,
        "instance_id": "wren-fixtures__calc-2",
        "patch": good["patch"].replace("return hi", "return lo"),
    }
    return tmp_path, [good, wrong]


def test_parse_patch_gives_exact_replacements():
    patch = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n x = 1\n-y = 2\n+y = 3\n z = 4\n"
        "@@ -10,2 +10,2 @@\n p = 0\n-q = 1\n\\ No newline at end of file\n+q = 2\n\\ No newline at end of file\n"
    )
    hunks = parse_patch(patch)
    assert [(h.path, h.start, h.old, h.new) for h in hunks] == [
        ("a.py", 1, "x = 1\ny = 2\nz = 4\n", "x = 1\ny = 3\nz = 4\n"),
        ("a.py", 10, "p = 0\nq = 1", "p = 0\nq = 2"),
    ]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


BASE = "".join(f"line {i}\n" for i in range(1, 30))
DASHES = "a\n-- x\n++ y\nb\n"


@pytest.mark.parametrize(
    "changed",
    [
        {"a.py": BASE.replace("line 5\n", "  x = 'q' \\ \"y\" & z / w\n")},  # quotes, a backslash
        {"a.py": BASE.replace("line 5\n", "line 5\n    ins\n\n  ins2\n").replace("line 20\n", "")},
        {"a.py": BASE.replace("line 1\n", "first\n"), "b/c.py": "x\n" + BASE, "new/d.py": "hi\n 'there'\n"},
        {"a.py": BASE.replace("line 29\n", "last\f form\n")},  # a form feed is not a line break
        {"a.py": BASE + "\n\ndef added():\n    return 1\n"},  # new text that starts with empty lines
        {"a.py": BASE.replace("line 7\n", "\n"), "b/c.py": "\n" + BASE},  # a line blanked, one added
        {"b/c.py": None, "a.py": BASE.replace("line 3\n", "")},  # a file deleted
        {"d.py": DASHES.replace("-- x\n", "")},  # a removed line that reads like a file header
    ],
)
def test_edit_command_makes_what_git_apply_makes(tmp_path: Path, changed: dict[str, str | None]):
    make_git_repo(tmp_path, {"a.py": BASE, "b/c.py": BASE, "d.py": DASHES})
    for name, text in changed.items():
        if text is None:
            (tmp_path / name).unlink()
            continue
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "add", "-A")
    patch = _git(tmp_path, "diff", "--cached")
    _git(tmp_path, "reset", "-q", "--hard")
    command = edit_command(parse_patch(patch))
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
    after = {name: (tmp_path / name).read_text() if (tmp_path / name).exists() else None for name in changed}
    assert after == changed


def test_enclosing_function_is_the_innermost_def_holding_the_line():
    source = (
        "import os\n"  # 1
        "\n"
        "class A:\n"  # 3
        "    @property\n"
        "    def size(self):\n"  # 5
        "        def inner():\n"  # 6
        "            return 1\n"  # 7
        "        return inner()\n"  # 8
        "\n"
        "async def fetch(x,\n"  # 10
        "                y):\n"
        "    return x\n"  # 12
    )
    found = {line: enclosing_function(source, line) for line in (1, 3, 5, 7, 8, 11, 12)}
    assert found == {
        1: None,
        3: None,
        5: Definition("size", 5),
        7: Definition("inner", 6),
        8: Definition("size", 5),
        11: Definition("fetch", 10),
        12: Definition("fetch", 10),
    }
    assert enclosing_function("def broken(:\n    pass\n", 2) is None  # not Python: no guess


def test_demo_replies_are_single_actions(tasks):
    tmp_path, (good, _) = tasks
    sources = original_sources(good, tmp_path / "repos")
    assert set(sources) == {"calc/ops.py"} and "return x\n" in sources["calc/ops.py"]
    without, found = demo_replies(good), demo_replies(good, sources=sources)
    # Without the source, one read around the change; with it, grep for the function, then read it.
    assert [len(without), len(found)] == [5, 6]
    for replies in (without, found):
        commands = [parse_text_action(r).command for r in replies]
        assert "tests/test_ops.py::test_add" in commands[0]
        assert commands[-3].startswith("sed -i '")
        # One THOUGHT line, then the block (the constrained grammar's shape); only a short command is named.
        assert all(r.count("\n```bash\n") == 1 and "\n\n" not in r.split("```bash")[0] for r in replies)
        for reply, command in zip(replies, commands, strict=True):
            named = reply.split("\n")[0].endswith(f" with: {command}")
            assert named == ("\n" not in command and len(command) <= MAX_NAMED_COMMAND), reply
        assert commands[-1].startswith("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    commands = [parse_text_action(r).command for r in found]
    assert commands[1] == 'grep -rn "def clamp(" --include="*.py" . | head -n 20'
    assert commands[2].startswith("nl -ba calc/ops.py | sed -n '")


def test_demos_are_kept_only_when_the_judge_resolves_them(tasks, scripted_server):
    tmp_path, instances = tasks
    # A step limit shorter than the script (as a loop sets for model runs) does not cut demonstrations.
    config = assemble_config(
        [f"bench.workspace.repos={tmp_path / 'repos'}", "agent.step_limit=2"],
        env_kind="local",
        schema=BenchWrenConfig,
    )
    out = tmp_path / "demos"
    report = write_demos(instances, config, out, workers=2)
    assert report["resolved_ids"] == ["wren-fixtures__calc-1"]
    assert report["rejected_ids"] == ["wren-fixtures__calc-2"]
    assert set(json.loads((out / "preds.json").read_text())) == {"wren-fixtures__calc-1"}
    assert (out / "rejected" / "wren-fixtures__calc-2").is_dir()

    write_jsonl(tmp_path / "tasks.jsonl", instances)
    (episode,) = load_episodes(out, report=out / "report.json", dataset=tmp_path / "tasks.jsonl")
    assert episode.resolved and episode.submitted and episode.n_steps == 6
    assert not episode.format_error_steps()
    # Every step follows from what the run showed: grep printed the def's file and line, the read
    # starts at that line, and the edit changes a line the read printed.
    outputs = [episode.messages[i + 1]["content"] for i in episode.assistant_indices()]
    commands = [
        parse_text_action(episode.messages[i]["content"]).command for i in episode.assistant_indices()
    ]
    grep_line = next(line for line in outputs[1].splitlines() if ":def clamp(" in line)
    path, def_line = grep_line.split(":")[:2]
    assert path == "./calc/ops.py" and commands[2].startswith(f"nl -ba calc/ops.py | sed -n '{def_line},")
    read_lines = {line.split()[0] for line in outputs[2].splitlines() if line.strip()[:1].isdigit()}
    edited = commands[3].split("'")[1].split("c\\")[0].split("a\\")[0]
    assert edited.split(",")[0] in read_lines, (edited, read_lines)
    terms = reward_terms(episode, RewardConfig(weights={"resolved": 1, "tests": 1, "similarity": 1}))
    assert terms == {"resolved": 1.0, "tests": 1.0, "similarity": 1.0}
    # The edit ran in the real checkout, and succeeded.
    edit_output = episode.messages[episode.assistant_indices()[3] + 1]["content"]
    assert "<returncode>0</returncode>" in edit_output

    # Run again: nothing is redone (resumable), the verdicts stay.
    again = write_demos(instances, config, out, workers=2)
    assert again["resolved_ids"] == report["resolved_ids"] and again["rejected_ids"] == report["rejected_ids"]

    # The CLI writes TRL datasets from the kept demonstrations; without the learn extra it can only
    # estimate token counts, and is told to.
    counted = importlib.util.find_spec("transformers") is not None
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wren.cli.main",
            "learn",
            "export",
            str(out),
            "-d",
            str(tmp_path / "tasks.jsonl"),
        ]
        + ["-o", str(tmp_path / "data"), "--max-tokens", "1024"]
        + ([] if counted else ["--tokenizer", "approx"]),
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"WREN_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    # Tokens are counted by the bundled model's tokenizer, rebuilt from its GGUF once and kept.
    if counted:
        said = " ".join(proc.stderr.split())  # the console wraps long lines
        assert "(tokens counted by" in said and ".gguf)" in said, said
        assert list((tmp_path / "home" / "tokenizers").glob("*/tokenizer_config.json"))
    sft = [json.loads(line) for line in (tmp_path / "data" / "sft.jsonl").read_text().splitlines()]
    assert sft and all(r["instance_id"] == "wren-fixtures__calc-1" for r in sft)
    assert sum(m["role"] == "assistant" for r in sft for m in r["messages"]) == 6
    value = (tmp_path / "data" / "value.jsonl").read_text().splitlines()
    assert len(value) == 6

    # The held-out next-step check over the kept demonstrations, against a server that only lists files.
    server = scripted_server(["THOUGHT: Look around.\n\n```bash\nls\n```"])
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "learn", "probe", str(out), "--model", server.url]
        + ["-d", str(tmp_path / "tasks.jsonl"), "-c", "model.api_key=k", "-o", str(tmp_path / "probe.jsonl")]
        + ["--samples", "2", "--repos", str(tmp_path / "repos")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "1 demonstrations, 6 steps" in said and "read 1.00 / 0.00" in said and "test 0.00 / 0.00" in said
    assert "edit step, 2 samples at temperature 0.7: fixed 0.00 of 1 tasks (pass@2)" in said, said
    assert len(server.completions) == 8 and len((tmp_path / "probe.jsonl").read_text().splitlines()) == 6
    (edits,) = json.loads((tmp_path / "probe.edits.json").read_text())["per_task"].values()
    assert edits["verdicts"] == {"ls": "no change"} and edits["samples"] == 2


def test_the_read_step_shows_every_changed_line(tmp_path: Path):
    padding = "".join(f"X{i} = {i}\n" for i in range(40))
    pkg = "def first(a):\n    return a + 1\n\n" + padding + "def second(b):\n    return b * 2\n"
    make_git_repo(tmp_path, {"pkg.py": pkg, "other.py": padding})
    patch_files = {
        "pkg.py": pkg.replace("a + 1", "a - 1").replace("b * 2", "b * 3"),
        "other.py": padding.replace("X30 = 30", "X30 = -30"),
    }
    for name, text in patch_files.items():
        (tmp_path / name).write_text(text)
    patch = _git(tmp_path, "diff")
    _git(tmp_path, "checkout", "-q", ".")
    inst = {"instance_id": "x-1", "repo": "o/x", "patch": patch, "test_cmd": "true", "FAIL_TO_PASS": []}
    inst |= {"PASS_TO_PASS": [], "problem_statement": "", "base_commit": "HEAD"}
    replies = demo_replies(inst, sources={"pkg.py": pkg})
    grep, read = (parse_text_action(r).command for r in replies[1:3])
    assert grep == 'grep -rn "def first(" --include="*.py" . | head -n 20'
    out = subprocess.run(
        ["bash", "-c", read], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    shown = [line.split("\t", 1)[1] for line in out.splitlines()]
    assert "def first(a):" in shown  # from the def line grep printed
    assert {"    return a + 1", "    return b * 2", "X30 = 30"} <= set(shown)
