"""Bad input, as a careless user types it: one line naming the key or option and what is allowed."""

from __future__ import annotations

import json

import pytest

from tests.test_cli_run import wren

MODEL = ["-m", "openai/any-model", "-c", "model.api_base=http://127.0.0.1:9/v1", "--yolo"]


def _one_line_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_a_missing_task_file(tmp_path):
    line = _one_line_error(wren("run", "-t", "@missing.md", *MODEL, cwd=tmp_path))
    assert "-t @missing.md" in line and "No such file" in line


def test_a_missing_working_directory(tmp_path):
    line = _one_line_error(wren("run", "-t", "hi", "--cwd", "/nonexistent", *MODEL, cwd=tmp_path))
    assert "environment.cwd" in line and "/nonexistent is not a directory" in line


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("environment.timeout=-1", "greater than 0"),
        ("environment.output_cap=-5", "greater than 0"),
        ("agent.step_limit=-3", "greater than or equal to 0"),
        ("agent.cost_limit=-1", "greater than or equal to 0"),
    ],
)
def test_negative_limits(tmp_path, override, allowed):
    line = _one_line_error(wren("run", "-t", "hi", *MODEL, "-c", override, cwd=tmp_path))
    key = override.split("=")[0]
    assert f"config key '{key}'" in line and allowed in line, line


def test_eval_timeout_must_be_positive(tmp_path):
    (tmp_path / "preds.json").write_text(json.dumps({}))
    (tmp_path / "d.jsonl").write_text("")
    line = _one_line_error(
        wren("eval", "-p", "preds.json", "-d", "d.jsonl", "-o", "r.json", "--timeout", "-5", cwd=tmp_path)
    )
    assert "--timeout must be more than 0" in line


def test_batch_slice_must_not_be_negative(tmp_path):
    row = {"instance_id": "a__b-1", "repo": "a/b", "base_commit": "x", "problem_statement": "p"}
    (tmp_path / "d.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "repos").mkdir()
    args = ["batch", "-d", "d.jsonl", "-o", "out", "--slice", "-5", "--repos", "repos", *MODEL[:4]]
    line = _one_line_error(wren(*args, cwd=tmp_path))
    assert "--slice '-5'" in line and "0 or more" in line
    assert not (tmp_path / "out").exists(), "nothing ran"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "exactly one of --model DIR"),
        (["--model", "m", "--adapter", "a"], "exactly one of --model DIR"),
        (["--adapter", "nowhere"], "nowhere is not a PEFT adapter"),
    ],
)
def test_learn_gguf_needs_one_model_or_adapter(tmp_path, args, expected):
    line = _one_line_error(wren("learn", "gguf", *args, "-o", "out.gguf", cwd=tmp_path))
    assert expected in line, line


def test_serve_refuses_a_missing_adapter(tmp_path):
    proc = wren("serve", "--lora", "missing.gguf", "--port", "9", cwd=tmp_path)
    assert proc.returncode != 0
    assert "LoRA adapter missing.gguf does not exist" in proc.stderr, proc.stderr
