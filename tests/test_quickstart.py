"""`wren quickstart`: the whole job on the sample project, with a scripted model in place of the SLM."""

from __future__ import annotations

import json

from tests.conftest import SUBMIT
from tests.peers.openai_server import ScriptedOpenAIServer
from tests.test_cli_run import wren


def test_quickstart_synthesizes_runs_judges_and_reports_the_tasks(tmp_path):
    out = tmp_path / "qs"
    with ScriptedOpenAIServer([SUBMIT]) as server:
        proc = wren(
            "quickstart", "-o", str(out), "--tasks", "2", "-m", "openai/scripted-model",
            "-c", f"model.api_base={server.url}", timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == 2
    # Each stage is shown as the command a user would type.
    for stage in ("$ wren synth", "$ wren batch", "$ wren eval"):
        assert stage in proc.stderr
    report = json.loads((out / "runs" / "report.json").read_text())
    assert report["total_instances"] == 2 and report["resolved_instances"] == 0  # it only submitted
    html = (out / "runs" / "report.html").read_text()
    assert all(t["instance_id"] in html for t in tasks)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == (
        f"resolved 0 of 2; report: {out / 'runs' / 'report.html'}; trajectories: {out / 'runs'}/<task>/; "
        f"look at them: wren inspect {out / 'runs'}"
    )
    for task in tasks:
        assert (out / "runs" / task["instance_id"] / f"{task['instance_id']}.traj.json").is_file()
    # The sample project itself is left as shipped: the tasks live in the snapshot repository.
    assert "def dedupe" in (out / "textkit" / "textkit" / "lists.py").read_text()


def test_quickstart_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "x").write_text("mine")
    proc = wren(
        "quickstart", "-o", str(tmp_path), "-m", "openai/x", "-c", "model.api_base=http://127.0.0.1:9/v1"
    )
    assert proc.returncode != 0 and "is not empty" in proc.stderr
    assert (tmp_path / "x").read_text() == "mine"
