"""Synthesized tasks through `wren eval`, as a user would run it: the gold patch resolves, no patch does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _eval(preds: dict, tasks: list[dict], repos: str, out: Path) -> dict:
    out.mkdir(parents=True)
    (out / "preds.json").write_text(json.dumps(preds))
    (out / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    # The tasks' test_cmd says `python`: the one with pytest comes first on PATH, as in an activated venv.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "wren.cli.main", "eval"),
            *("--predictions", str(out / "preds.json"), "--dataset", str(out / "tasks.jsonl")),
            *("--repos", repos, "-o", str(out / "report.json"), "--workers", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "report.json").read_text())


def test_gold_patch_resolves_and_empty_patch_does_not(synth_run, tmp_path: Path):
    tasks = [json.loads(line) for line in Path(synth_run["config"].output).read_text().splitlines()]
    # A few tasks of different kinds keep this quick.
    sample = list({t["mutator"]: t for t in tasks}.values())[:3]
    ids = sorted(t["instance_id"] for t in sample)
    repos = str(Path(synth_run["report"].repos_entry).parent)

    def preds(patch_of) -> dict:
        return {
            t["instance_id"]: {
                "instance_id": t["instance_id"],
                "model_name_or_path": "x",
                "model_patch": patch_of(t),
            }
            for t in sample
        }

    gold = _eval(preds(lambda t: t["patch"]), sample, repos, tmp_path / "gold")
    assert gold["resolved_ids"] == ids, gold
    empty = _eval(preds(lambda t: ""), sample, repos, tmp_path / "empty")
    assert empty["resolved_instances"] == 0
    assert sorted(empty["unresolved_ids"]) == ids
    for instance in empty["instances"].values():
        assert instance["tests_status"]["FAIL_TO_PASS"]["failure"]
        assert not instance["tests_status"]["PASS_TO_PASS"]["failure"]


def test_wren_batch_runs_an_agent_on_a_synthesized_task(synth_run, tmp_path: Path):
    """A scripted agent that applies the known fix, run by `wren batch`; `wren eval` then resolves it."""
    import base64

    from tests.peers.scripted_batch import write_config

    tasks = [json.loads(line) for line in Path(synth_run["config"].output).read_text().splitlines()]
    task = next(t for t in tasks if t["mutator"] == "invert_if_else")
    encoded = base64.b64encode(task["patch"].encode()).decode()
    outputs = [
        f"THOUGHT: apply the fix\n\n```bash\necho {encoded} | base64 -d | git apply\n```",
        "THOUGHT: done\n\n```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```",
    ]
    config = write_config(tmp_path / "cfg.yaml", outputs)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    repos = str(Path(synth_run["report"].repos_entry).parent)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wren = [sys.executable, "-m", "wren.cli.main"]
    batch = subprocess.run(
        [*wren, "batch", "-d", str(tmp_path / "tasks.jsonl"), "-o", str(tmp_path / "run")]
        + ["--repos", repos, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert batch.returncode == 0, batch.stdout + batch.stderr
    preds = json.loads((tmp_path / "run" / "preds.json").read_text())
    assert preds[task["instance_id"]]["model_patch"].strip()
    evaluated = subprocess.run(
        [*wren, "eval", "-p", str(tmp_path / "run" / "preds.json"), "-d", str(tmp_path / "tasks.jsonl")]
        + ["--repos", repos, "-o", str(tmp_path / "report.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "report.json").read_text())["resolved_ids"] == [task["instance_id"]]
