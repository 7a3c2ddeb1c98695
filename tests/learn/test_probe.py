"""The held-out next-step check against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import bash
from tests.peers.fixture_repo import build_calc_repo, write_jsonl
from wren.bench.config import BenchWrenConfig
from wren.config.assemble import assemble_config
from wren.learn.data.demos import write_demos
from wren.learn.data.episodes import Episode, load_episodes
from wren.learn.data.export import ExportConfig
from wren.learn.data.windows import approx_tokens
from wren.learn.probe import EditCheck, corrective_pairs, edit_prompt, judge_edits, probe_url, sample_edits
from wren.models.actions import parse_text_action

TEST = "python3 -m pytest -q tests/test_ops.py::test_clamp"
GREP = 'grep -rn "def clamp(" --include="*.py" .'
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"
PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
LONG_OUTPUT = "FAILED tests/test_ops.py::test_clamp\n" + "E   assert 3 == 5\n" * 200


def demonstration(instance_id: str) -> Episode:
    messages = [
        {"role": "system", "content": "You fix bugs."},
        {"role": "user", "content": "Fix clamp."},
        {"role": "assistant", "content": bash(TEST, "Run the failing test.")},
        {"role": "user", "content": LONG_OUTPUT},
        {"role": "assistant", "content": bash(GREP, "Find clamp.")},
        {"role": "user", "content": "./calc/ops.py:3:def clamp(x, lo, hi):"},
        {"role": "assistant", "content": bash(SUBMIT, "Submit.")},
        {"role": "user", "content": ""},
    ]
    return Episode(
        instance_id=instance_id,
        messages=messages,
        exit_status="Submitted",
        patch="",
        opening=2,
        history={"max_observation_tokens": 40},
    )


def test_each_step_gets_the_demonstrations_prompt_and_is_compared_by_kind_and_exactly(scripted_server):
    # First demonstration: the test exactly, a read where the demonstration greps, no action at the
    # submit. Second: the test with spaces after it (the same command), the grep, the submit.
    server = scripted_server(
        [
            bash(TEST),
            bash("cat calc/ops.py"),
            "I think we are done.",
            bash(TEST + "   "),
            bash(GREP),
            bash(SUBMIT),
        ]
    )
    episodes = [demonstration("a"), demonstration("b")]
    config = assemble_config(
        [
            "model.name=openai/scripted",
            f"model.api_base={server.url}",
            "model.api_key=k",
            "model.temperature=0.9",
        ]
    )
    result = probe_url(episodes, config)

    # Every prompt is the one the demonstration's reply had, with the run's history settings
    # applied: the long test output capped as the agent capped it.
    # Greedy, whatever the run config's temperature.
    assert {r["body"]["temperature"] for r in server.completions} == {0.0}
    prompts = [[m["content"] for m in r["body"]["messages"]] for r in server.completions]
    expected = [episodes[0].shown(episodes[0].messages[:i]) for i in episodes[0].assistant_indices()]
    assert prompts == [[m["content"] for m in p] for p in expected] * 2
    shown_output = prompts[1][3]
    assert shown_output.startswith("FAILED tests/test_ops.py::test_clamp") and len(shown_output) < 400

    summary = result["summary"]
    assert summary["overall"] == {"n": 6, "same_kind": 4 / 6, "exact": 4 / 6}
    assert summary["by_step"]["1"] == {"n": 2, "same_kind": 1.0, "exact": 1.0}
    assert summary["by_step"]["2"] == {"n": 2, "same_kind": 0.5, "exact": 0.5}
    assert summary["by_kind"]["submit"] == {"n": 2, "same_kind": 0.5, "exact": 0.5}
    assert summary["confusion"] == {
        "test": {"test": 2},
        "find": {"find": 1, "read": 1},
        "submit": {"submit": 1, "no action": 1},
    }
    # Pairs for training: the demonstration's reply over each reply that missed its command, with
    # the prompt both had.
    pairs = list(corrective_pairs(episodes, result["items"], ExportConfig(max_tokens=4096), approx_tokens))
    assert [(p["instance_id"], p["step"]) for p in pairs] == [("a", 2), ("a", 3)]
    assert pairs[0]["chosen"][0]["content"] == episodes[0].messages[4]["content"]
    assert pairs[0]["rejected"][0]["content"] == bash("cat calc/ops.py")
    assert [m["content"] for m in pairs[0]["prompt"]] == prompts[1]
    first = [it for it in result["items"] if it["instance_id"] == "a"]
    assert [it["reply_kind"] for it in first] == ["test", "read", "no action"]
    assert first[2]["expected"] == SUBMIT and first[2]["reply"] == "I think we are done."


def test_sampled_edits_are_applied_in_a_checkout_and_judged(tmp_path, scripted_server, monkeypatch):
    monkeypatch.setenv("PATH", PATH_ENV)  # the instance's `python3 -m pytest` finds pytest
    instance = build_calc_repo(tmp_path / "repos")
    repos = tmp_path / "repos"
    config = assemble_config([f"bench.workspace.repos={repos}"], env_kind="local", schema=BenchWrenConfig)
    write_demos([instance], config, tmp_path / "demos")
    write_jsonl(tmp_path / "tasks.jsonl", [instance])
    (episode,) = load_episodes(
        tmp_path / "demos", report=tmp_path / "demos" / "report.json", dataset=tmp_path / "tasks.jsonl"
    )
    prompt, step = edit_prompt(episode)
    fix = parse_text_action(episode.messages[episode.assistant_indices()[step - 1]]["content"]).command
    assert prompt == episode.shown(episode.messages[: episode.assistant_indices()[step - 1]])
    wrong = "sed -i 's/return lo/return hi/' calc/ops.py"
    server = scripted_server([bash(wrong), bash(fix), bash(fix), "I would rather not."])
    config = assemble_config(
        [f"bench.workspace.repos={repos}", f"model.api_base={server.url}"]
        + ["model.name=openai/scripted", "model.api_key=k"],
        env_kind="local",
        schema=BenchWrenConfig,
    )
    commands = sample_edits([episode], config.model, EditCheck(samples=4, temperature=0.9))
    assert commands == {episode.instance_id: [wrong, fix, fix, None]}
    bodies = [r["body"] for r in server.completions]
    assert {b["temperature"] for b in bodies} == {0.9} and len({b["seed"] for b in bodies}) == 4

    result = judge_edits([episode], commands, config, tmp_path / "judge")
    assert result["tasks"] == 1 and result["fix_rate"] == 1.0 and result["sample_fix_rate"] == 0.5
    task = result["per_task"][episode.instance_id]
    assert task["distinct"] == 2 and task["fixed"] == 2
    assert task["outcomes"] == {"unresolved": 1, "resolved": 1}
    assert task["verdicts"] == {wrong: "unresolved", fix: "resolved"}
    # Each sample ran in its own checkout, gone afterwards; the repository itself is untouched.
    assert not list((tmp_path / "judge").glob("*/sample-*"))
    source = repos / "wren-fixtures__calc"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout == ""
