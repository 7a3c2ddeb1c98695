"""RunDir: the one place that names a run directory's files."""

from __future__ import annotations

import json

import pytest

from wren.bench.rundir import RunDir
from wren.exceptions import ConfigError


def test_trajectories_prefer_the_final_file_and_fall_back_to_the_jsonl(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a.traj.json").write_text("{}")
    (tmp_path / "a" / "trajectory.jsonl").write_text("")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "trajectory.jsonl").write_text("")
    (tmp_path / "single.traj.json").write_text("{}")
    found = RunDir(tmp_path).trajectories()
    assert found == {
        "a": tmp_path / "a" / "a.traj.json",
        "b": tmp_path / "b" / "trajectory.jsonl",
        "single": tmp_path / "single.traj.json",
    }


def test_report_and_predictions_are_read_only_once_written(tmp_path):
    run = RunDir(tmp_path)
    assert run.judged_report() is None and run.read_preds() == {}
    run.preds.write_text(json.dumps({"x": {"instance_id": "x", "model_patch": "p"}}))
    run.report.write_text(json.dumps({"instances": {"x": {"outcome": "resolved"}}}))
    assert run.judged_report() == tmp_path / "report.json"
    assert run.read_preds()["x"]["model_patch"] == "p"
    assert run.read_verdicts(run.judged_report()) == {"x": {"outcome": "resolved"}}
    assert run.exit_statuses == tmp_path / "exit_statuses.json"


def test_a_broken_file_or_a_missing_directory_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path)
    run.preds.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read predictions"):
        run.read_preds()
    with pytest.raises(ConfigError, match="does not exist"):
        RunDir(tmp_path / "nowhere").require()
