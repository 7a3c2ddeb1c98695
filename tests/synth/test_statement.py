"""Problem statements: from the failing tests, never quoting the patch; optionally written by a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wren.synth.discover import file_candidates, parse_file
from wren.synth.mutators import get_mutator
from wren.synth.pipeline import SynthConfig, synthesize
from wren.synth.statement import StatementWriter, changed_lines, reveals, template_statement
from wren.synth.tasks import unified_diff
from wren.synth.validate import Verdict


def _tasks(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_template_statements_name_the_failures_and_never_quote_the_patch(synth_run):
    tasks = _tasks(Path(synth_run["config"].output))
    assert {t["statement_source"] for t in tasks} <= {"template", "minimal"}
    for task in tasks:
        statement = task["problem_statement"]
        assert task["FAIL_TO_PASS"][0] in statement
        assert not reveals(statement, task["patch"]), task["instance_id"]
        assert "0x7f" not in statement  # object addresses are masked, so statements are reproducible


def test_statement_shows_the_exception_and_the_package_frames(synth_run):
    tasks = _tasks(Path(synth_run["config"].output))
    ratio = next(t for t in tasks if t["mutation"]["function"] == "ratio" and t["mutator"] == "swap_operands")
    statement = ratio["problem_statement"]
    assert "assert 0.5 == 2" in statement
    describe = [
        t for t in tasks if t["mutation"]["function"] == "first_word" and t["mutator"] == "drop_return_value"
    ]
    assert any(
        "`first_word` (mathlib/core.py)" in t["problem_statement"] or "first_word" in t["problem_statement"]
        for t in describe
    )


def _clamp_verdict(project: Path) -> tuple[Verdict, str]:
    """A validated-looking verdict for flipping `value < low` in clamp, with the failure it causes."""
    candidate = next(
        c
        for c in file_candidates(parse_file(project, "mathlib/core.py"), [get_mutator("flip_comparison")])
        if c.function == "clamp" and c.start_line == 5
    )
    broken = candidate.mutated_text()
    verdict = Verdict(
        candidate=candidate,
        status="validated",
        fail_to_pass=["tests/test_core.py::test_clamp"],
        pass_to_pass=["tests/test_core.py::test_total"],
        failures={
            "tests/test_core.py::test_clamp": {
                "type": "AssertionError",
                "message": "AssertionError: assert 0 == 5\n +  where 0 = clamp(5, 0, 10)",
                "frames": [{"path": "tests/test_core.py", "function": "test_clamp", "line": 24}],
            }
        },
        broken_text=broken,
    )
    return verdict, unified_diff(candidate.path, broken, candidate.file.text)


def test_reveals_spots_a_quoted_patch_line(project: Path):
    verdict, patch = _clamp_verdict(project)
    assert changed_lines(patch) == ["if value >= low:", "if value < low:"]
    assert reveals("look: `if value < low:` is wrong", patch)
    assert not reveals(template_statement(verdict, "local/mathlib", {"mathlib/core.py"}), patch)


def test_model_written_statement(scripted_server, project: Path):
    issue = "clamp returns the lower bound for values inside the range\n\nclamp(5, 0, 10) gives 0, not 5."
    server = scripted_server([issue])
    from wren.models import get_model

    model = get_model({"name": "openai/scripted", "api_base": server.url, "api_key": "k", "retries": 1})
    verdict, patch = _clamp_verdict(project)
    text, source = StatementWriter("local/mathlib", {"mathlib/core.py"}, model).write(verdict, patch)
    assert (text, source) == (issue + "\n", "model")
    prompt = server.requests[0]["body"]["messages"][0]["content"]
    assert "tests/test_core.py::test_clamp" in prompt and "assert 0 == 5" in prompt
    assert not reveals(prompt, patch)  # the model never sees the change


def test_a_model_statement_that_quotes_the_patch_or_fails_falls_back(scripted_server, project: Path):
    from wren.models import get_model

    verdict, patch = _clamp_verdict(project)
    leaky = scripted_server(["Bug\n\n```python\nif value >= low:\n```"])
    model = get_model({"name": "openai/scripted", "api_base": leaky.url, "api_key": "k", "retries": 1})
    text, source = StatementWriter("local/mathlib", {"mathlib/core.py"}, model).write(verdict, patch)
    assert source == "template" and not reveals(text, patch)

    broken = scripted_server([{"status": 400, "content": "bad request"}])
    model = get_model({"name": "openai/scripted", "api_base": broken.url, "api_key": "k", "retries": 1})
    text, source = StatementWriter("local/mathlib", {"mathlib/core.py"}, model).write(verdict, patch)
    assert source == "template" and "test_clamp" in text


def test_cli_model_option_writes_statements_with_the_model(scripted_server, project: Path, tmp_path: Path):
    server = scripted_server(["Something is off in mathlib\n\nA function gives a wrong answer."])
    out = tmp_path / "tasks.jsonl"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "wren.cli.main", "synth", str(project), "-o", str(out), "--max", "2"),
            *(
                "-m",
                "openai/scripted",
                "-c",
                f"model.api_base={server.url}",
                "-c",
                "model.api_key=k",
                "--quiet",
                "--python",
                sys.executable,
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    tasks = _tasks(out)
    assert len(tasks) == 2
    assert all(t["statement_source"] == "model" for t in tasks)
    assert tasks[0]["problem_statement"].startswith("Something is off in mathlib")
    assert len(server.requests) == 2


def test_python_api_takes_a_model_config(scripted_server, project: Path, tmp_path: Path):
    server = scripted_server(["An issue"])
    report = synthesize(
        SynthConfig(
            repo_dir=str(project),
            output=str(tmp_path / "t.jsonl"),
            max_tasks=1,
            workers=1,
            progress=False,
            python=sys.executable,
            model={"name": "openai/scripted", "api_base": server.url, "api_key": "k"},
        )
    )
    assert report.validated == 1
    assert _tasks(tmp_path / "t.jsonl")[0]["problem_statement"] == "An issue\n"
